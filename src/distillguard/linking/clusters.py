"""Clusters scored from their pooled behaviour, and the :class:`ClusterFinding` that explains them.

The cluster is made the unit by a view of ``events`` in which ``account_id`` is replaced by the
cluster id; :func:`distillguard.features.account.account_features_sql` then computes the very same
features over that view (no second feature definition), and the scan's :class:`Ensemble` scores the
pooled rows against the account population it was fitted on.  A cluster of individually light
accounts thus scores as the campaign it is.

Example:
    >>> f = ClusterFinding("c0001", 0.97, True, 2, ["a", "b"], bound=True)
    >>> f.to_dict()["n_accounts"]
    2
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from distillguard.features.account import FEATURE_NAMES, account_features_sql, columns_but_account
from distillguard.findings import Evidence
from distillguard.store.base import EventStore

CLUSTER_MAP_TABLE = "_dg_link_cluster_map"  # account → cluster, every cluster (sample prompts)
POOL_MAP_TABLE = "_dg_link_pool_map"  # account → pooled unit, only the units that are scored
POOL_EVENTS_TABLE = "_dg_link_pool_events"  # the pooled units' events, account_id := unit id


@dataclass
class ClusterFinding:
    """The verdict on one linked group of accounts."""

    cluster_id: str
    score: float  # the Ensemble's score of the pooled behaviour, 0..1; 0.0 when not ``scored``
    flagged: bool  # bound by behaviour and pooled score at or over the threshold
    n_accounts: int
    account_ids: list[str]
    bound: bool = False  # enough members linked by templates / near-duplicates / timing, not only infrastructure
    # False: the cluster is not bound, so it cannot flag or lift, and its pooled behaviour was not computed
    # (at 100k accounts these are nearly all clusters); ``score`` is then 0.0 and means "not scored"
    scored: bool = True
    n_events: int = 0
    est_exchanges: int = 0  # pooled successful exchanges, when flagged
    est_output_tokens: int = 0
    max_member_score: float = 0.0
    edge_types: dict[str, int] = field(default_factory=dict)  # edge type → edges inside the cluster
    evidence: list[Evidence] = field(default_factory=list)
    sample_prompts: list[str] = field(default_factory=list)

    def explain(self) -> str:
        pooled = f"pooled score {self.score:.3f}" if self.scored else "not pooled (not bound by behaviour)"
        head = (
            f"cluster {self.cluster_id}: {self.n_accounts} accounts, {pooled}"
            f"{' FLAGGED' if self.flagged else ''} (highest member alone {self.max_member_score:.3f}); "
            f"{self.n_events:,} requests"
        )
        lines = [head] + ["  " + e.explain() for e in self.evidence] + [f"  sample: {p}" for p in self.sample_prompts]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["score"] = round(float(self.score), 6)
        d["max_member_score"] = round(float(self.max_member_score), 6)
        return d


def _register_map(store: EventStore, table: str, units: pd.DataFrame) -> None:
    """``units`` (account_id, unit_id) as the temp table ``table`` (account_id, cluster_id)."""
    con = store.con  # type: ignore[attr-defined]
    rows = pa.table({"account_id": units["account_id"].astype(str).tolist(), "cluster_id": units["unit_id"].astype(str).tolist()})
    con.register("_dg_link_map_in", rows)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM _dg_link_map_in").fetchall()
    finally:
        con.unregister("_dg_link_map_in")


def pooled_events_view() -> str:
    """Events of the pooled units' accounts with ``account_id`` replaced by the unit id (portable SQL);
    only the columns the feature query reads."""
    return f"(SELECT {columns_but_account('e')}, m.cluster_id AS account_id FROM events e JOIN {POOL_MAP_TABLE} m ON e.account_id = m.account_id)"


def pooled_features(store: EventStore, units: pd.DataFrame | dict[str, str], *, copy: bool = False) -> pd.DataFrame:
    """The account feature frame with pooled units as the unit (index = unit id).

    ``units`` has columns account_id, unit_id (an account may belong to several units, e.g. its
    cluster and the behaviour-bound part of it), or is an account → unit mapping.  ``copy`` copies
    the units' events into a temp table first: the feature query reads its source in some twenty
    parts, and each read of the view scans and joins all events, which costs more than the copy when
    the units' events are a fraction of them (10M events, 4 bound clusters: 16.4 -> 9.4-11.2 s; on the
    1M-event bench log, where the units hold 1.8M event rows, the copy cost 0.7-1 s more).
    """
    if isinstance(units, dict):
        units = pd.DataFrame({"account_id": list(units), "unit_id": list(units.values())})
    if units.empty:
        return pd.DataFrame(columns=list(FEATURE_NAMES))
    _register_map(store, POOL_MAP_TABLE, units)
    view = pooled_events_view()
    copied = nullcontext(view)
    if copy:
        copied = store.temp_table(POOL_EVENTS_TABLE, f"SELECT * FROM {view}")  # type: ignore[attr-defined]
    with copied as source:
        frame = store.query(account_features_sql(source, population="events")).to_pandas().set_index("account_id")
    for name in FEATURE_NAMES:
        frame[name] = frame[name].astype("float64").fillna(0.0)
    return frame


def cluster_samples(store: EventStore, clusters: pd.DataFrame, per_cluster: int = 3) -> dict[str, list[str]]:
    """A few redacted prompt excerpts per cluster, from different members where possible.

    ``clusters`` has columns account_id, unit_id (the cluster id).
    """
    if clusters.empty:
        return {}
    _register_map(store, CLUSTER_MAP_TABLE, clusters)
    table = store.query(
        f"""SELECT cluster_id, prompt_excerpt FROM (
              SELECT m.cluster_id, s.prompt_excerpt,
                row_number() OVER (PARTITION BY m.cluster_id ORDER BY rn, s.account_id) AS k
              FROM (SELECT account_id, prompt_excerpt, ts,
                      row_number() OVER (PARTITION BY account_id ORDER BY ts) AS rn FROM samples) s
              JOIN {CLUSTER_MAP_TABLE} m ON s.account_id = m.account_id) q
            WHERE k <= {int(per_cluster)} ORDER BY cluster_id, k"""
    )
    out: dict[str, list[str]] = {}
    for cid, text in zip(table.column("cluster_id").to_pylist(), table.column("prompt_excerpt").to_pylist(), strict=True):
        out.setdefault(cid, []).append(text)
    return out


def edge_type_stats(inner_edges: pd.DataFrame, max_keys: int = 3) -> dict[str, dict[str, dict[str, Any]]]:
    """cluster → edge type → what the evidence needs: edges, accounts reached, overlap / strength, keys.

    Computed for every cluster at once (grouped frames, no per-cluster filtering): at 100k accounts
    there are tens of thousands of clusters.  ``inner_edges`` are the edges inside clusters, with a
    ``cluster_id`` column (any hashable ids; categorical columns are grouped by the values present).

    Example:
        >>> e = pd.DataFrame({"a": ["x"], "b": ["y"], "type": ["ip"], "strength": [1.0], "raw_overlap": [1.0],
        ...                   "example_key": [255], "group_n": [2], "cluster_id": ["c0000"]})
        >>> edge_type_stats(e)["c0000"]["ip"]["linked"]
        2
    """
    if inner_edges.empty:
        return {}
    e = inner_edges.reset_index(drop=True)
    keys = ["cluster_id", "type"]
    grouped = e.groupby(keys, sort=False, observed=True)
    stats = grouped.agg(
        n_edges=("type", "size"), overlap=("raw_overlap", "mean"), r_mean=("strength", "mean"), r_max=("strength", "max"),
        largest=("group_n", "max"),
    )  # fmt: skip
    ends = pd.concat([e[keys + ["a"]].rename(columns={"a": "acct"}), e[keys + ["b"]].rename(columns={"b": "acct"})])
    stats["linked"] = ends.drop_duplicates().groupby(keys, sort=False, observed=True).size()
    ex = e.loc[e["example_key"].notna(), keys + ["example_key"]].drop_duplicates()
    stats["n_keys"] = ex.groupby(keys, sort=False, observed=True).size()
    first = ex.groupby(keys, sort=False, observed=True).head(max_keys).groupby(keys, sort=False, observed=True)["example_key"].agg(list)
    stats["keys"] = first
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (cid, t), row in stats.iterrows():
        out.setdefault(cid, {})[t] = {
            "n_edges": int(row["n_edges"]), "linked": int(row["linked"]), "overlap": float(row["overlap"]),
            "r_mean": float(row["r_mean"]), "r_max": float(row["r_max"]),
            "largest": int(row["largest"]) if pd.notna(row["largest"]) else 0,
            "n_keys": int(row["n_keys"]) if pd.notna(row["n_keys"]) else 0,
            "keys": [int(k) for k in row["keys"]] if isinstance(row["keys"], list) else [],
        }  # fmt: skip
    return out


#: The sentence for each edge type, most telling first (keys are hashed, shown as hex).
EDGE_EVIDENCE = {
    "template": "{linked} of {n} accounts share prompt templates (mean template overlap {overlap:.2f}; e.g. template hashes {keys})",
    "near_dup": "{linked} of {n} accounts send near-duplicate prompts (mean shared-band overlap {overlap:.2f}; e.g. bands {keys})",
    "timing": "activity of {linked} of {n} accounts is correlated hour by hour (mean r={r_mean:.2f}, max r={r_max:.2f})",
    "payment": "{linked} accounts share a payment fingerprint ({n_keys} fingerprint(s): {keys})",
    "ip": "{linked} accounts share IP addresses (e.g. ip hashes {keys})",
    "ip_prefix": "{linked} accounts share a network prefix (largest group {largest} accounts; e.g. prefix hashes {keys})",
    "client": "{linked} accounts share a client fingerprint: user agent + max_tokens/temperature/top_logprobs/n habits ({keys})",
    "creation": "{linked} accounts were created within the same 10 minutes",
}


def cluster_evidence(
    cid: str, members: list[str], type_stats: dict[str, dict[str, Any]], pooled_row: pd.Series | None,
    model_evidence: list[Evidence], member_scores: np.ndarray, pooled_score: float, *, scored: bool = True,
) -> list[Evidence]:
    """Readable sentences: why these accounts are linked, and what their pooled behaviour shows.

    ``type_stats`` is this cluster's entry of :func:`edge_type_stats`; ``scored`` False says the
    cluster was not pooled (it is not bound, so it could not flag).
    """
    ev: list[Evidence] = []
    n = len(members)
    for t, template in EDGE_EVIDENCE.items():
        st = type_stats.get(t)
        if not st or not st["linked"]:
            continue
        detail = template.format(
            linked=st["linked"], n=n, n_keys=st["n_keys"], overlap=st["overlap"], r_mean=st["r_mean"], r_max=st["r_max"],
            largest=st["largest"], keys=", ".join(f"{k & 0xFFFFFFFFFFFFFFFF:016x}" for k in st["keys"]),
        )  # fmt: skip
        ev.append(Evidence("linking", f"linked: {t}", detail, round(st["linked"] / max(n, 1), 3)))
    if pooled_row is not None:
        tpl_accounts = type_stats.get("template", {}).get("linked", 0)
        if pooled_row["distinct_prompt_share"] >= 0.9 and tpl_accounts >= max(2, n // 2):
            ev.append(Evidence(
                "linking", "one dataset partitioned across accounts",
                f"pooled prompts are {pooled_row['distinct_prompt_share']:.0%} distinct across {int(pooled_row['n_events']):,} "
                f"requests while {tpl_accounts} accounts share templates: complementary slices of one prompt set",
                0.8,
            ))  # fmt: skip
        ev.append(Evidence(
            "linking", "pooled behaviour",
            f"pooled score {pooled_score:.3f} over {int(pooled_row['n_events']):,} requests; "
            f"highest member alone {float(np.max(member_scores)):.3f}, median member {float(np.median(member_scores)):.3f}",
            float(pooled_score),
        ))  # fmt: skip
    elif not scored:
        ev.append(Evidence(
            "linking", "not pooled",
            f"not bound by behaviour: fewer than half of the {n} accounts share templates, near-duplicate prompts or hourly "
            f"timing strongly enough, and a cluster that is not bound cannot flag, so its pooled behaviour was not scored; "
            f"highest member alone {float(np.max(member_scores)):.3f}",
            0.0,
        ))  # fmt: skip
    ev += [Evidence("pooled:" + e.detector, e.title, e.detail, e.weight, e.rule_id) for e in model_evidence[:4]]
    return ev
