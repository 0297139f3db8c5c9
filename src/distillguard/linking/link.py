"""``link_accounts``: graph → Leiden communities → pooled cluster scores → cluster-adjusted account scores.

How an account's score uses its cluster: a cluster may lift its members only when it is *bound*
(at least ``min_bound_share`` of its members have an edge inside the cluster of a binding type —
shared templates, near-duplicate prompts or correlated timing — at the configured strength), and
then only members that themselves carry such an edge get ``max(own score, pooled score)``.
Infrastructure (IPs, prefixes, payment, client fingerprint, creation bursts) forms clusters and
appears in the evidence, but never lifts a score on its own.

Example:
    >>> result = link_accounts(store, frame, model, threshold=0.7)   # doctest: +SKIP
    >>> [c.cluster_id for c in result.clusters if c.flagged]          # doctest: +SKIP
    ['c0000']
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from distillguard.detectors.ensemble import Ensemble
from distillguard.features.account import FEATURE_NAMES
from distillguard.linking.clusters import ClusterFinding, cluster_evidence, cluster_samples, edge_type_stats, pooled_features
from distillguard.linking.communities import leiden_communities
from distillguard.linking.graph import EDGE_TYPES, LinkConfig, build_edges, weighted_pairs
from distillguard.store.base import EventStore


@dataclass
class LinkResult:
    cluster_of: dict[str, str]  # account → cluster id, for clusters of >= 2 accounts
    clusters: list[ClusterFinding]  # highest pooled score first
    account_scores: pd.Series  # cluster-adjusted score per account (index = frame's index)
    edges: pd.DataFrame = field(default_factory=pd.DataFrame)  # a, b, type, strength, raw_overlap, n_keys, example_key, group_n
    timings_s: dict[str, float] = field(default_factory=dict)

    def write_graph(self, path: str | Path) -> Path:
        """The clustered part of the graph: ``.graphml`` (igraph) or JSON (nodes + typed edges) otherwise."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        e = self.edges
        if len(e):
            e = e[e["a"].isin(self.cluster_of.keys()) | e["b"].isin(self.cluster_of.keys())]
        nodes = sorted(set(e["a"]) | set(e["b"])) if len(e) else []
        scores = self.account_scores
        if path.suffix.lower() == ".graphml":
            import igraph as ig

            index = {n: i for i, n in enumerate(nodes)}
            g = ig.Graph(n=len(nodes), edges=[(index[a], index[b]) for a, b in zip(e["a"], e["b"], strict=True)] if len(e) else [])
            g.vs["name"] = nodes
            g.vs["cluster_id"] = [self.cluster_of.get(n, "") for n in nodes]
            g.vs["score"] = [float(scores.get(n, 0.0)) for n in nodes]
            if len(e):
                g.es["type"] = e["type"].tolist()
                g.es["strength"] = e["strength"].astype(float).tolist()
                g.es["n_keys"] = e["n_keys"].astype(int).tolist()
            g.write_graphml(str(path))
            return path
        doc = {
            "nodes": [{"id": n, "cluster_id": self.cluster_of.get(n), "score": float(scores.get(n, 0.0))} for n in nodes],
            "edges": [
                {"source": a, "target": b, "type": t, "strength": round(float(s), 4), "n_keys": int(k),
                 "example_key": None if pd.isna(x) else f"{int(x) & 0xFFFFFFFFFFFFFFFF:016x}"}
                for a, b, t, s, k, x in zip(e["a"], e["b"], e["type"], e["strength"], e["n_keys"], e["example_key"], strict=True)
            ] if len(e) else [],
            "clusters": [c.to_dict() for c in self.clusters],
        }  # fmt: skip
        path.write_text(json.dumps(doc, indent=1, default=str))
        return path


def link_accounts(
    store: EventStore, frame: pd.DataFrame, model: Ensemble, threshold: float, *, config: LinkConfig | None = None,
    min_bound_share: float = 0.5,
) -> LinkResult:
    """Link accounts into clusters, score each cluster from its pooled behaviour, adjust account scores."""
    cfg = config or LinkConfig()
    timings: dict[str, float] = {}
    own = frame["score"].astype(float) if "score" in frame else pd.Series(0.0, index=frame.index)
    t = time.perf_counter()
    edges = build_edges(store, cfg)
    timings["edges"] = time.perf_counter() - t

    t = time.perf_counter()
    pairs = weighted_pairs(edges, cfg)
    cluster_of = leiden_communities(pairs)
    timings["leiden"] = time.perf_counter() - t

    t = time.perf_counter()
    clusters, scores = _score_clusters(store, frame, model, threshold, own, edges, pairs, cluster_of, cfg, min_bound_share)
    timings["pooled_scoring"] = time.perf_counter() - t
    return LinkResult(cluster_of, clusters, scores, edges, {k: round(v, 3) for k, v in timings.items()})


def binding_units(inner_pairs: pd.DataFrame, cluster_of: dict[str, str]) -> dict[str, str]:
    """account → ``<cluster>/u<k>``: connected components (>= 2 accounts) of binding edges inside each cluster."""
    if inner_pairs.empty:
        return {}
    import igraph as ig

    names = pd.Index(pd.unique(pd.concat([inner_pairs["a"], inner_pairs["b"]], ignore_index=True)))
    g = ig.Graph(n=len(names), edges=list(zip(names.get_indexer(inner_pairs["a"]).tolist(), names.get_indexer(inner_pairs["b"]).tolist(), strict=True)))
    out: dict[str, str] = {}
    for k, comp in enumerate(sorted(g.connected_components(), key=lambda c: -len(c))):
        if len(comp) >= 2:
            for i in comp:
                out[names[i]] = f"{cluster_of[names[i]]}/u{k}"
    return out


def _score_clusters(
    store: EventStore, frame: pd.DataFrame, model: Ensemble, threshold: float, own: pd.Series, edges: pd.DataFrame,
    pairs: pd.DataFrame, cluster_of: dict[str, str], cfg: LinkConfig, min_bound_share: float,
) -> tuple[list[ClusterFinding], pd.Series]:
    final = own.copy()
    if not cluster_of:
        return [], final
    cmap = pd.Series(cluster_of)
    pa_, pb_ = pairs["a"].map(cmap), pairs["b"].map(cmap)
    inner_pairs = pairs[(pa_ == pb_) & pa_.notna() & pairs["binding"].astype(bool)]
    bound_accounts = set(inner_pairs["a"]) | set(inner_pairs["b"])
    # lifting units: connected components of binding edges (templates / near-dups / timing) inside a cluster
    unit_of = binding_units(inner_pairs, cluster_of)
    units = pd.concat([
        pd.DataFrame({"account_id": list(cluster_of), "unit_id": list(cluster_of.values())}),
        pd.DataFrame({"account_id": list(unit_of), "unit_id": list(unit_of.values())}),
    ], ignore_index=True)  # fmt: skip
    pooled = pooled_features(store, units)
    if not model.population_fitted:  # pooled rows are scored against the account population
        model.fit_population(frame[list(FEATURE_NAMES)])
    pooled_scores = pd.Series(model.score(pooled), index=pooled.index) if len(pooled) else pd.Series(dtype=float)
    samples = cluster_samples(store)

    ca, cb = edges["a"].map(cmap), edges["b"].map(cmap)
    inner_edges = edges[(ca == cb) & ca.notna()].assign(cluster_id=ca[(ca == cb) & ca.notna()])

    members_by: dict[str, list[str]] = {}
    for acct, cid in cluster_of.items():
        members_by.setdefault(cid, []).append(acct)
    stats_by = edge_type_stats(inner_edges)

    findings = []
    for cid, members in members_by.items():
        members = sorted(members)
        type_stats = stats_by.get(cid, {})
        n_bound = sum(m in bound_accounts for m in members)
        bound = n_bound >= 2 and n_bound >= min_bound_share * len(members)
        score = float(pooled_scores.get(cid, 0.0))
        member_scores = own.reindex(members).fillna(0.0)
        flagged = bool(bound and score >= threshold)
        row = pooled.loc[cid] if cid in pooled.index else None
        model_ev = model.explain(pooled, cid) if (row is not None and score >= threshold * 0.5) else []
        finding = ClusterFinding(
            cluster_id=cid, score=score, flagged=flagged, n_accounts=len(members), account_ids=members, bound=bound,
            n_events=int(row["n_events"]) if row is not None else 0,
            est_exchanges=int(row["n_success"]) if (row is not None and flagged) else 0,
            est_output_tokens=int(row["output_tokens"]) if (row is not None and flagged) else 0,
            max_member_score=float(member_scores.max()),
            edge_types={t: type_stats[t]["n_edges"] for t in EDGE_TYPES if t in type_stats},
            sample_prompts=samples.get(cid, []),
        )  # fmt: skip
        finding.evidence = cluster_evidence(cid, members, type_stats, row, model_ev, member_scores, score)
        if bound:
            # each member is lifted by the pooled score of the accounts bound to it by behaviour
            for m in members:
                if m in unit_of and m in final.index:
                    final.loc[m] = max(float(final.loc[m]), float(pooled_scores.get(unit_of[m], 0.0)))
        findings.append(finding)
    findings.sort(key=lambda f: (-f.flagged, -f.score, -f.n_accounts))
    return findings, final
