"""Campaign detection: link accounts into hydra clusters and score each cluster from its pooled behaviour.

Modules: ``graph`` (typed, weighted edges in SQL), ``communities`` (Leiden), ``clusters`` (pooled
scoring, :class:`ClusterFinding`), ``link`` (:func:`link_accounts`, :class:`LinkResult`).
"""

from distillguard.linking.clusters import ClusterFinding
from distillguard.linking.graph import LinkConfig, build_edges
from distillguard.linking.link import LinkResult, link_accounts

__all__ = ["ClusterFinding", "LinkConfig", "LinkResult", "build_edges", "link_accounts"]
