"""Communities of the account graph with Leiden (igraph + leidenalg).

Modularity (RB configuration model, resolution 1) on the weighted graph; a fixed seed makes the
partition reproducible.  Only accounts with at least one edge are vertices, so the graph is as
large as the linked population, not the whole scan.

Example:
    >>> import numpy as np
    >>> [g.tolist() for g in leiden_communities(np.array([0, 1]), np.array([1, 2]), np.array([1.0, 1.0]))]
    [[0, 1, 2]]
"""

from __future__ import annotations

import igraph as ig
import leidenalg
import numpy as np
import pandas as pd


def pair_graph(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ig.Graph]:
    """The undirected graph of the pairs ``a``–``b``: (names, graph), vertex ``i`` being ``names[i]``.

    Vertices are numbered in order of first appearance in ``a`` then ``b``.
    """
    names = pd.unique(np.concatenate([np.asarray(a), np.asarray(b)]))
    index = pd.Index(names)
    # an (m, 2) integer array, not a list of tuples: no Python object per edge at millions of edges
    return names, ig.Graph(n=len(names), edges=np.column_stack([index.get_indexer(a), index.get_indexer(b)]), directed=False)


def leiden_communities(
    a: np.ndarray, b: np.ndarray, weight: np.ndarray, *, resolution: float = 1.0, seed: int = 0, min_size: int = 2,
) -> list[np.ndarray]:
    """Communities of at least ``min_size`` vertices: sorted arrays of the ids in ``a``/``b``, largest first, then by smallest id.

    ``a``, ``b`` are the pair ends (integer account numbers in link_accounts; any sortable ids work).
    Vertices are numbered in order of first appearance in ``a`` then ``b``, which, with the seed,
    fixes the partition.
    """
    if len(a) == 0:
        return []
    names, graph = pair_graph(a, b)
    graph.es["weight"] = np.asarray(weight, dtype=float)
    partition = leidenalg.find_partition(
        graph, leidenalg.RBConfigurationVertexPartition, weights="weight", resolution_parameter=resolution,
        seed=seed, n_iterations=2,
    )  # fmt: skip
    groups = [np.sort(names[np.asarray(c, dtype=np.int64)]) for c in partition if len(c) >= min_size]
    groups.sort(key=lambda g: (-len(g), g[0]))
    return groups
