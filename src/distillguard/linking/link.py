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

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.detectors.ensemble import Ensemble
from distillguard.features.account import FEATURE_NAMES
from distillguard.linking.clusters import ClusterFinding, cluster_evidence, cluster_samples, edge_type_stats, pooled_features
from distillguard.linking.communities import leiden_communities, pair_graph
from distillguard.linking.graph import (
    EDGE_TYPES, LinkConfig, build_edge_tables, drop_edge_tables, fetch_accounts, fetch_edges, pair_weights_sql,
)  # fmt: skip
from distillguard.store.base import EventStore

#: Between two items of graph.json's arrays, one item a line.
_SEPARATOR = b",\n  "


@dataclass
class LinkResult:
    cluster_of: dict[str, str]  # account → cluster id, for clusters of >= 2 accounts
    clusters: list[ClusterFinding]  # flagged first, then highest pooled score
    account_scores: pd.Series  # cluster-adjusted score per account (index = frame's index)
    # a, b, type, strength, raw_overlap, n_keys, example_key, group_n: every edge of the graph; a, b (account
    # ids) and type are categoricals, so millions of edges cost integers, not a string per row
    edges: pd.DataFrame = field(default_factory=pd.DataFrame)
    timings_s: dict[str, float] = field(default_factory=dict)

    def write_graph(self, path: str | Path) -> Path:
        """The clustered part of the graph (edges with a clustered end): ``.graphml`` (igraph) or JSON otherwise.

        The JSON is written edge by edge: at 100k accounts the clustered graph has millions of edges,
        and one dict per edge in memory would cost more than linking itself.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        e = self.edges
        if len(e):
            clustered = list(self.cluster_of)
            e = e[e["a"].isin(clustered) | e["b"].isin(clustered)]
        nodes = sorted(set(e["a"].unique()) | set(e["b"].unique())) if len(e) else []
        scores = self.account_scores
        if path.suffix.lower() == ".graphml":
            import igraph as ig

            index = {n: i for i, n in enumerate(nodes)}
            g = ig.Graph(n=len(nodes), edges=[(index[a], index[b]) for a, b in zip(e["a"], e["b"], strict=True)] if len(e) else [])
            g.vs["name"] = nodes
            g.vs["cluster_id"] = [self.cluster_of.get(n, "") for n in nodes]
            g.vs["score"] = [float(scores.get(n, 0.0)) for n in nodes]
            if len(e):
                g.es["type"] = e["type"].astype(str).tolist()
                g.es["strength"] = e["strength"].astype(float).tolist()
                g.es["n_keys"] = e["n_keys"].astype(int).tolist()
            g.write_graphml(str(path))
            return path
        with path.open("wb") as fh:
            fh.write(b'{"nodes": [')
            _write_items(fh, ({"id": n, "cluster_id": self.cluster_of.get(n), "score": float(scores.get(n, 0.0))} for n in nodes))
            fh.write(b'],\n "edges": [')
            for k, lines in enumerate(_edge_lines(e) if len(e) else ()):
                fh.write((b"\n  " if k == 0 else _SEPARATOR) + lines)
            fh.write(b'],\n "clusters": [')
            _write_items(fh, (c.to_dict() for c in self.clusters))
            fh.write(b"]}\n")
        return path


def _edge_lines(e: pd.DataFrame, chunk: int = 50_000) -> Iterator[bytes]:
    """graph.json's edge objects, a chunk of rows at a time: one JSON object a line, lines joined by ``,\\n  ``.

    Built column-wise with Arrow string kernels, no Python object per edge (a dict and an orjson call
    per edge took 1.5-1.8 s for the 1M-event scan's 713k clustered edges, this 0.6-0.9 s).  The bytes are what orjson writes for
    ``{"source", "target", "type", "strength" (rounded to 4 places), "n_keys", "example_key" (16 hex
    digits or null)}``: ids and type names are serialized by orjson once per distinct value, and a
    strength in [0, 1] is printed as the shortest decimal of its 4-place rounding, as orjson prints it.
    """
    json_of = {name: _json_strings(e[name].cat.categories) for name in ("a", "b", "type")}
    for lo in range(0, len(e), chunk):
        part = e.iloc[lo : lo + chunk]
        strength = part["strength"].to_numpy(dtype=float)
        if not (np.isfinite(strength).all() and (strength >= 0).all() and (strength <= 1).all()):
            raise ValueError("edge strengths must lie in [0, 1]")
        fields = [
            b'{"source":', json_of["a"].take(part["a"].cat.codes.to_numpy()),
            b',"target":', json_of["b"].take(part["b"].cat.codes.to_numpy()),
            b',"type":', json_of["type"].take(part["type"].cat.codes.to_numpy()),
            b',"strength":', _four_places(strength),
            b',"n_keys":', pc.cast(pa.array(part["n_keys"].to_numpy(dtype="int64")), pa.string()),
            b',"example_key":', _hex_or_null(part["example_key"]), b"}", _SEPARATOR,
        ]  # fmt: skip
        lines = pc.binary_join_element_wise(*(_binary(f) for f in fields), b"")
        # every line ends with the separator: the chunk is the lines' value buffer less the last separator
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
        yield lines.buffers()[2][offsets[0] : offsets[-1] - len(_SEPARATOR)].to_pybytes()


def _binary(x: bytes | pa.Array) -> pa.Scalar | pa.Array:
    return pa.scalar(x, pa.binary()) if isinstance(x, bytes) else x.cast(pa.binary())


def _json_strings(values: pd.Index) -> pa.Array:
    """Each value as a JSON string (orjson's escaping), for taking by category code."""
    return pa.array([orjson.dumps(str(v)) for v in values], pa.binary())


def _four_places(x: np.ndarray) -> pa.Array:
    """``x`` (in [0, 1]) rounded to 4 places, as the shortest decimal: "0.6", "1.0", "0.0001" (as orjson
    prints ``np.round(x, 4)``: the double nearest a 4-place decimal prints as that decimal)."""
    q = np.rint(x * 1e4).astype(np.int64)  # np.round(x, 4) is rint(x * 10**4) / 10**4
    whole = pc.cast(pa.array(q // 10_000), pa.string())
    places = pc.utf8_rtrim(pc.utf8_lpad(pc.cast(pa.array(q % 10_000), pa.string()), 4, "0"), "0")
    places = pc.if_else(pc.equal(places, ""), "0", places)
    return pc.binary_join_element_wise(whole, places, ".")


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _hex_or_null(keys: pd.Series) -> pa.Array:
    """64-bit keys as quoted 16-digit hex (two's complement), missing keys as ``null``."""
    missing = keys.isna().to_numpy()
    octets = keys.fillna(0).to_numpy(dtype="int64").astype(">i8").view(np.uint8).reshape(-1, 8)
    text = np.empty((len(keys), 18), dtype=np.uint8)
    text[:, 0] = text[:, 17] = ord('"')
    text[:, 1:17:2], text[:, 2:17:2] = _HEX_DIGITS[octets >> 4], _HEX_DIGITS[octets & 15]
    quoted = pa.array(text.view("S18").ravel(), pa.binary(18)).cast(pa.binary())
    return pc.if_else(pa.array(missing), pa.scalar(b"null", pa.binary()), quoted)


def _write_items(fh: Any, items: Iterable[dict[str, Any]], chunk: int = 256) -> None:
    """JSON array items, one per line, separated by commas (the brackets are the caller's).

    orjson per item, one write per ``chunk`` items: short-lived chunks reuse their memory, where keeping
    every item's bytes until the end made each dump ~8x slower (new pages for every output buffer).
    """
    first, lines = True, []
    for item in items:
        lines.append(orjson.dumps(item, default=str, option=orjson.OPT_SERIALIZE_NUMPY))
        if len(lines) == chunk:
            fh.write((b"\n  " if first else _SEPARATOR) + _SEPARATOR.join(lines))
            first, lines = False, []
    if lines:
        fh.write((b"\n  " if first else _SEPARATOR) + _SEPARATOR.join(lines))


def link_accounts(
    store: EventStore, frame: pd.DataFrame, model: Ensemble, threshold: float, *, config: LinkConfig | None = None,
    min_bound_share: float = 0.5,
) -> LinkResult:
    """Link accounts into clusters, score each bound cluster from its pooled behaviour, adjust account scores."""
    cfg = config or LinkConfig()
    timings: dict[str, float] = {}
    own = frame["score"].astype(float) if "score" in frame else pd.Series(0.0, index=frame.index)
    t = time.perf_counter()
    build_edge_tables(store, cfg)
    try:
        account_ids, n_events = fetch_accounts(store)
        edges = fetch_edges(store, account_ids)
        timings["edges"] = time.perf_counter() - t

        # pair weights in SQL; Python gets integer account numbers (aids) and numpy arrays only
        t = time.perf_counter()
        pairs = store.query(pair_weights_sql(cfg))
    finally:
        drop_edge_tables(store)
    graph = _Graph(
        account_ids, n_events, pairs.column("a").to_numpy(), pairs.column("b").to_numpy(),
        pairs.column("binding").to_numpy(zero_copy_only=False).astype(bool),
    )  # fmt: skip
    groups = leiden_communities(graph.a, graph.b, pairs.column("weight").to_numpy())
    del pairs
    timings["leiden"] = time.perf_counter() - t

    t = time.perf_counter()
    cluster_of, clusters, scores = _score_clusters(store, frame, model, threshold, own, edges, graph, groups, min_bound_share)
    timings["pooled_scoring"] = time.perf_counter() - t
    return LinkResult(cluster_of, clusters, scores, edges, {k: round(v, 3) for k, v in timings.items()})


@dataclass
class _Graph:
    """The community graph on account numbers (aid = index into ``account_ids``, in account_id order)."""

    account_ids: np.ndarray  # aid → account id
    n_events: np.ndarray  # aid → the account's events
    a: np.ndarray  # pair ends (aids), a < b
    b: np.ndarray
    binding: np.ndarray  # a behaviour edge binds the pair


def binding_units(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components (>= 2 vertices) of the pairs ``a``–``b``: (vertex ids, component number), largest first."""
    if len(a) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    names, g = pair_graph(a, b)
    comps = sorted((c for c in g.connected_components() if len(c) >= 2), key=lambda c: -len(c))
    vertices = np.concatenate([names[np.asarray(c, dtype=np.int64)] for c in comps])
    number = np.repeat(np.arange(len(comps)), [len(c) for c in comps])
    return vertices, number


def _score_clusters(
    store: EventStore, frame: pd.DataFrame, model: Ensemble, threshold: float, own: pd.Series, edges: pd.DataFrame,
    graph: _Graph, groups: list[np.ndarray], min_bound_share: float,
) -> tuple[dict[str, str], list[ClusterFinding], pd.Series]:
    """cluster_of, the findings and the lifted scores.  Only bound clusters are pooled and scored.

    A cluster that is not bound can neither flag nor lift (infrastructure alone never convicts), so
    its pooled behaviour would be computed for nothing: at 100k accounts such clusters are nearly all
    of them, and pooling them was most of linking's time.
    """
    final = own.copy()
    if not groups:
        return {}, [], final
    ids = graph.account_ids
    cluster_ids = [f"c{k:04d}" for k in range(len(groups))]
    cluster_idx = np.full(len(ids), -1, dtype=np.int64)  # aid → cluster number, -1 outside clusters
    for k, members in enumerate(groups):
        cluster_idx[members] = k
    sizes = np.array([len(g) for g in groups])
    cluster_of = {acct: cluster_ids[k] for k, members in enumerate(groups) for acct in ids[members].tolist()}

    ca, cb = cluster_idx[graph.a], cluster_idx[graph.b]
    inner_binding = graph.binding & (ca == cb) & (ca >= 0)
    bound_aids = np.unique(np.concatenate([graph.a[inner_binding], graph.b[inner_binding]]))
    n_bound = np.bincount(cluster_idx[bound_aids], minlength=len(groups))
    bound = (n_bound >= 2) & (n_bound >= min_bound_share * sizes)

    # pooled units: each bound cluster, and its lifting units (connected components of binding pairs)
    unit_pairs = inner_binding & bound[np.maximum(ca, 0)]
    unit_aids, unit_number = binding_units(graph.a[unit_pairs], graph.b[unit_pairs])
    unit_ids = [f"{cluster_ids[c]}/u{u}" for c, u in zip(cluster_idx[unit_aids].tolist(), unit_number.tolist(), strict=True)]
    bound_members = [groups[k] for k in np.flatnonzero(bound)]
    units = pd.DataFrame({
        "account_id": np.concatenate([ids[m] for m in bound_members] + [ids[unit_aids]]) if bound_members else [],
        "unit_id": [cluster_ids[k] for k in np.flatnonzero(bound) for _ in groups[k]] + unit_ids,
    })  # fmt: skip
    # the units' events copied once when they are fewer than all events (see pooled_features)
    unit_rows = sum(int(graph.n_events[m].sum()) for m in bound_members) + int(graph.n_events[unit_aids].sum())
    pooled = pooled_features(store, units, copy=unit_rows < int(graph.n_events.sum()))
    if not model.population_fitted:  # pooled rows are scored against the account population
        model.fit_population(frame[list(FEATURE_NAMES)])
    pooled_scores = pd.Series(model.score(pooled), index=pooled.index) if len(pooled) else pd.Series(dtype=float)
    samples = cluster_samples(store, pd.DataFrame({"account_id": list(cluster_of), "unit_id": list(cluster_of.values())}))

    ea, eb = edges["a"].cat.codes.to_numpy(), edges["b"].cat.codes.to_numpy()
    inner = (cluster_idx[ea] == cluster_idx[eb]) & (cluster_idx[ea] >= 0)
    stats_by = edge_type_stats(edges[inner].assign(cluster_id=cluster_idx[ea[inner]]))

    own_by_aid = own.reindex(pd.Index(ids)).fillna(0.0).to_numpy(dtype=float)
    # bound clusters at or near the threshold explain their pooled row, all in one pass per detector (an
    # isolation forest pass costs ~70 ms whatever its size)
    near = [cluster_ids[k] for k in np.flatnonzero(bound)
            if cluster_ids[k] in pooled.index and float(pooled_scores.get(cluster_ids[k], 0.0)) >= threshold * 0.5]  # fmt: skip
    positions = [pooled.index.get_loc(cid) for cid in near]
    model_evidence = dict(zip(near, model.explain_rows(pooled, positions), strict=True)) if near else {}
    findings = []
    for k, member_aids in enumerate(groups):
        cid, is_bound = cluster_ids[k], bool(bound[k])
        members = ids[member_aids].tolist()  # aids are in account_id order: members come sorted
        type_stats = stats_by.get(k, {})
        score = float(pooled_scores.get(cid, 0.0)) if is_bound else 0.0
        member_scores = own_by_aid[member_aids]
        flagged = bool(is_bound and score >= threshold)
        row = pooled.loc[cid] if is_bound and cid in pooled.index else None
        model_ev = model_evidence.get(cid, [])
        finding = ClusterFinding(
            cluster_id=cid, score=score, flagged=flagged, n_accounts=len(members), account_ids=members, bound=is_bound,
            scored=is_bound, n_events=int(row["n_events"]) if row is not None else int(graph.n_events[member_aids].sum()),
            est_exchanges=int(row["n_success"]) if (row is not None and flagged) else 0,
            est_output_tokens=int(row["output_tokens"]) if (row is not None and flagged) else 0,
            max_member_score=float(member_scores.max()),
            edge_types={t: type_stats[t]["n_edges"] for t in EDGE_TYPES if t in type_stats},
            sample_prompts=samples.get(cid, []),
        )  # fmt: skip
        finding.evidence = cluster_evidence(cid, members, type_stats, row, model_ev, member_scores, score, scored=is_bound)
        findings.append(finding)
    findings.sort(key=lambda f: (-f.flagged, -f.score, -f.n_accounts))

    # each member of a lifting unit is lifted by the pooled score of the accounts bound to it by behaviour
    if len(unit_aids):
        lift = pd.Series(pooled_scores.reindex(unit_ids).fillna(0.0).to_numpy(), index=pd.Index(ids[unit_aids]))
        lift = lift[lift.index.isin(final.index)]
        final.loc[lift.index] = np.maximum(final.loc[lift.index].to_numpy(), lift.to_numpy())
    return cluster_of, findings, final
