"""The account graph: typed, weighted edges built with set-based SQL, each with its evidence.

Every edge type starts from one *incidence* table ``(kind, key, account_id, share)``: which accounts
use which shared key (an IP hash, a /24 prefix hash, a payment fingerprint, a client fingerprint, a
prompt template, a MinHash band, a 10-minute account-creation bucket) and for what share of their
requests.  Pairs are generated per key with a self-join, but only inside groups of at most
``LinkConfig.group_cap`` accounts; a key shared by more accounts (a NAT, a cloud egress, a generic
template) is linked through ``LinkConfig.hubs`` hub accounts (the lowest hashes of the group), so a
group of ``n`` accounts yields ``O(n * hubs)`` pairs instead of ``n**2 / 2``, stays connected, and its
weight is damped by its size.  Timing edges (Pearson correlation of hourly request counts) are
computed only for pairs that some other edge already proposes, so the whole graph is
``O(candidate pairs)``, never ``O(accounts**2)``.

All of it is SQL over the ``events`` and ``accounts`` tables (temp tables prefixed ``_dg_link_``);
see ``docs/linking.md`` for the Spark equivalent.

Example:
    >>> from distillguard.store.duckdb import DuckDBStore
    >>> edges = build_edges(DuckDBStore(":memory:"))
    >>> len(edges)
    0
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from distillguard.store.base import EventStore

#: Edge types about where traffic comes from; alone they never lift a cluster.
INFRA_TYPES = ("ip", "ip_prefix", "payment", "client", "creation")
#: Edge types about what the accounts do together; one of these must bind a cluster before it can lift.
BINDING_TYPES = ("template", "near_dup", "timing")
EDGE_TYPES = INFRA_TYPES + BINDING_TYPES

#: Readable name of each edge type, for evidence.
EDGE_LABELS = {
    "ip": "share IP addresses",
    "ip_prefix": "share a network prefix (/24 or /48)",
    "payment": "share a payment fingerprint",
    "client": "share a client fingerprint (user agent + max_tokens/temperature/top_logprobs/n habits)",
    "creation": "were created within the same 10 minutes",
    "template": "share prompt templates",
    "near_dup": "send near-duplicate prompts (shared MinHash bands)",
    "timing": "have correlated hourly activity",
}


@dataclass
class LinkConfig:
    """Knobs of the graph; the defaults are the documented ones (docs/linking.md)."""

    group_cap: int = 200  # keys shared by more accounts are linked through hubs, not all pairs
    hubs: int = 4  # hub accounts per oversized group
    max_group: int = 1_000_000  # keys shared by more accounts than this are ignored entirely
    min_key_events: int = 2  # an account "uses" a template / client fingerprint if it sent it this often
    creation_bucket_s: float = 600.0
    min_creation_group: int = 3  # fewer accounts created in one bucket is not a burst
    timing_min_r: float = 0.5
    timing_min_hours: int = 3  # active hours each account needs before its series is correlated
    # Leiden edge weight = sum over types of weight[type] * strength (strength in 0..1)
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "ip": 0.6, "ip_prefix": 0.25, "payment": 1.0, "client": 0.3, "creation": 0.3,
            "template": 2.0, "near_dup": 1.5, "timing": 1.0,
        }
    )  # fmt: skip
    # a pair is bound by behaviour when one binding type reaches this strength
    binding_min: dict[str, float] = field(default_factory=lambda: {"template": 0.3, "near_dup": 0.3, "timing": 0.8})
    use_minhash: bool = True
    # content edges weaker than this are noise (two chat users who once typed the same opening) and
    # are dropped in SQL, before anything reaches Python: they bound memory at 1M+ events
    min_content_strength: float = 0.05


def _exec(store: EventStore, sql: str) -> None:
    con = getattr(store, "con", None)
    if con is None:  # pragma: no cover - only the DuckDB store exists today
        raise NotImplementedError("linking needs a SQL store with temp tables (DuckDB); see docs/linking.md for Spark")
    con.execute(sql).fetchall()


def _incidence_sql(cfg: LinkConfig) -> str:
    """Rows (kind, key, account_id, share): account uses shared key for ``share`` of its requests."""
    k = int(cfg.min_key_events)
    parts = [
        "SELECT 'ip' AS kind, ip_hash AS key, account_id, count(*) * 1.0 / max(n_acct) AS share FROM ev WHERE ip_hash IS NOT NULL GROUP BY ip_hash, account_id",
        "SELECT 'ip_prefix', ip_prefix_hash, account_id, count(*) * 1.0 / max(n_acct) FROM ev WHERE ip_prefix_hash IS NOT NULL GROUP BY ip_prefix_hash, account_id",
        # client fingerprint: user agent + API-parameter habits
        f"""SELECT 'client', CAST(hash(user_agent_hash, max_tokens, temperature, top_logprobs, n) % 9223372036854775807 AS BIGINT),
             account_id, count(*) * 1.0 / max(n_acct) FROM ev WHERE user_agent_hash IS NOT NULL
             GROUP BY 2, account_id HAVING count(*) >= {k}""",
        f"SELECT 'tpl_prefix', template_prefix_hash, account_id, count(*) * 1.0 / max(n_acct) FROM ev WHERE template_prefix_hash <> 0 GROUP BY 2, account_id HAVING count(*) >= {k}",
        f"SELECT 'tpl_suffix', template_suffix_hash, account_id, count(*) * 1.0 / max(n_acct) FROM ev WHERE template_suffix_hash <> 0 GROUP BY 2, account_id HAVING count(*) >= {k}",
        "SELECT 'payment', payment_hash, account_id, 1.0 FROM accounts WHERE payment_hash IS NOT NULL",
        f"SELECT 'creation', CAST(floor(created_at / {float(cfg.creation_bucket_s)!r}) AS BIGINT), account_id, 1.0 FROM accounts WHERE created_at IS NOT NULL",
    ]
    if cfg.use_minhash:
        parts.append(
            "SELECT 'band', band, account_id, count(*) * 1.0 / max(n_acct) / 8.0 FROM "
            "(SELECT account_id, n_acct, unnest(minhash_bands) AS band FROM ev) b GROUP BY band, account_id"
        )
    body = "\nUNION ALL\n".join(parts)
    return f"""
WITH ev AS (SELECT e.*, c.n_acct FROM events e JOIN (SELECT account_id, count(*) AS n_acct FROM events GROUP BY account_id) c USING (account_id))
{body}"""


def build_edges(store: EventStore, cfg: LinkConfig | None = None) -> pd.DataFrame:
    """One row per (a, b, type) with a < b: strength (0..1), n_keys shared, example_key, group_n (largest group)."""
    cfg = cfg or LinkConfig()
    cap, hubs = int(cfg.group_cap), int(cfg.hubs)
    _exec(store, f"CREATE OR REPLACE TEMP TABLE _dg_link_ak AS {_incidence_sql(cfg)}")
    _exec(
        store,
        f"""CREATE OR REPLACE TEMP TABLE _dg_link_groups AS
        SELECT kind, key, count(*) AS n FROM _dg_link_ak GROUP BY kind, key
        HAVING count(*) >= 2 AND count(*) <= {int(cfg.max_group)}
           AND (kind <> 'creation' OR count(*) >= {int(cfg.min_creation_group)})""",
    )
    # members of shared keys, with their rank (by a hash of the account) inside the group
    _exec(
        store,
        """CREATE OR REPLACE TEMP TABLE _dg_link_members AS
        SELECT a.kind, a.key, a.account_id, a.share, g.n,
               row_number() OVER (PARTITION BY a.kind, a.key ORDER BY hash(a.account_id), a.account_id) AS r
        FROM _dg_link_ak a JOIN _dg_link_groups g ON a.kind = g.kind AND a.key = g.key""",
    )
    # pairs per key: all pairs in small groups; member-hub pairs in oversized ones
    # per-key weight: content keeps most of its overlap in big groups, infrastructure is damped hard
    _exec(
        store,
        f"""CREATE OR REPLACE TEMP TABLE _dg_link_keypairs AS
        SELECT least(x.account_id, y.account_id) AS a, greatest(x.account_id, y.account_id) AS b, x.kind, x.key, x.n,
               CASE WHEN x.kind IN ('tpl_prefix', 'tpl_suffix', 'band') THEN least(x.share, y.share)
                    ELSE 1.0 END AS overlap,
               CASE WHEN x.kind IN ('tpl_prefix', 'tpl_suffix', 'band') THEN 1.0 / (1.0 + 0.25 * ln(x.n / 2.0))
                    ELSE 1.0 / (1.0 + ln(x.n / 2.0)) END AS damp
        FROM _dg_link_members x JOIN _dg_link_members y
          ON x.kind = y.kind AND x.key = y.key AND x.account_id <> y.account_id
        WHERE (x.n <= {cap} AND x.account_id < y.account_id)
           OR (x.n > {cap} AND y.r <= {hubs} AND (x.r > {hubs} OR x.r < y.r))""",
    )
    _exec(
        store,
        """CREATE OR REPLACE TEMP TABLE _dg_link_pairs AS
        SELECT a, b,
          CASE WHEN kind IN ('tpl_prefix', 'tpl_suffix') THEN 'template' WHEN kind = 'band' THEN 'near_dup' ELSE kind END AS type,
          CASE WHEN kind IN ('tpl_prefix', 'tpl_suffix') THEN least(sum(overlap * damp) / 2.0, 1.0)
               WHEN kind = 'band' THEN least(sum(overlap * damp), 1.0)
               ELSE least(sum(damp), 1.0) END AS strength,
          CASE WHEN kind IN ('tpl_prefix', 'tpl_suffix', 'band') THEN least(sum(overlap) / (CASE WHEN kind = 'band' THEN 1.0 ELSE 2.0 END), 1.0)
               ELSE 1.0 END AS raw_overlap,
          count(*) AS n_keys, min(key) AS example_key, max(n) AS group_n
        FROM _dg_link_keypairs GROUP BY a, b,
          CASE WHEN kind IN ('tpl_prefix', 'tpl_suffix') THEN 'template' WHEN kind = 'band' THEN 'near_dup' ELSE kind END, kind""",
    )
    # template prefix and suffix rows of one pair → one template row (mean of the two halves)
    _exec(
        store,
        f"""CREATE OR REPLACE TEMP TABLE _dg_link_edges AS
        SELECT a, b, type, least(sum(strength), 1.0) AS strength, least(sum(raw_overlap), 1.0) AS raw_overlap,
               sum(n_keys) AS n_keys, min(example_key) AS example_key, max(group_n) AS group_n
        FROM _dg_link_pairs GROUP BY a, b, type
        HAVING type NOT IN ('template', 'near_dup') OR least(sum(strength), 1.0) >= {float(cfg.min_content_strength)!r}""",
    )
    _timing_edges(store, cfg)
    edges = store.query("SELECT * FROM _dg_link_edges ORDER BY a, b, type").to_pandas()
    for name in ("_dg_link_ak", "_dg_link_members", "_dg_link_keypairs", "_dg_link_pairs", "_dg_link_groups"):
        _exec(store, f"DROP TABLE IF EXISTS {name}")
    return edges


def _timing_edges(store: EventStore, cfg: LinkConfig) -> None:
    """Append 'timing' rows: Pearson r of hourly request counts, only for already-proposed pairs.

    r is computed from sums, so only non-zero hours are joined: with H hours in the scan's span,
    r = (H·Σxy − Σx·Σy) / sqrt((H·Σx² − (Σx)²)(H·Σy² − (Σy)²)).
    """
    _exec(
        store,
        """CREATE OR REPLACE TEMP TABLE _dg_link_cand AS SELECT DISTINCT a, b FROM _dg_link_edges""",
    )
    _exec(
        store,
        """CREATE OR REPLACE TEMP TABLE _dg_link_hourly AS
        WITH acc AS (SELECT a AS account_id FROM _dg_link_cand UNION SELECT b FROM _dg_link_cand)
        SELECT e.account_id, CAST(floor(e.ts / 3600) AS BIGINT) AS h, count(*) * 1.0 AS c
        FROM events e JOIN acc ON e.account_id = acc.account_id GROUP BY 1, 2""",
    )
    min_h = int(cfg.timing_min_hours)
    _exec(
        store,
        f"""INSERT INTO _dg_link_edges
        WITH span AS (SELECT greatest(max(h) - min(h) + 1, 2) * 1.0 AS H FROM _dg_link_hourly),
        s AS (SELECT account_id, sum(c) AS sx, sum(c * c) AS sxx, count(*) AS nh FROM _dg_link_hourly GROUP BY account_id),
        x AS (
          SELECT p.a, p.b, sum(ha.c * hb.c) AS sxy, count(*) AS both_hours
          FROM _dg_link_cand p
          JOIN _dg_link_hourly ha ON ha.account_id = p.a
          JOIN _dg_link_hourly hb ON hb.account_id = p.b AND hb.h = ha.h
          GROUP BY p.a, p.b
        ),
        r AS (
          SELECT x.a, x.b, x.both_hours,
            (span.H * x.sxy - sa.sx * sb.sx)
              / nullif(sqrt(greatest(span.H * sa.sxx - sa.sx * sa.sx, 0) * greatest(span.H * sb.sxx - sb.sx * sb.sx, 0)), 0) AS r
          FROM x JOIN s sa ON sa.account_id = x.a JOIN s sb ON sb.account_id = x.b CROSS JOIN span
          WHERE sa.nh >= {min_h} AND sb.nh >= {min_h}
        )
        SELECT a, b, 'timing', least(r, 1.0), least(r, 1.0), both_hours, NULL, 2 FROM r WHERE r >= {float(cfg.timing_min_r)!r}""",
    )
    for name in ("_dg_link_cand", "_dg_link_hourly"):
        _exec(store, f"DROP TABLE IF EXISTS {name}")


def weighted_pairs(edges: pd.DataFrame, cfg: LinkConfig | None = None) -> pd.DataFrame:
    """One row per account pair: Leiden weight (sum of weight[type] * strength) and whether behaviour binds it."""
    cfg = cfg or LinkConfig()
    if edges.empty:
        return pd.DataFrame(columns=["a", "b", "weight", "binding"])
    e = edges.copy()
    e["w"] = e["type"].map(cfg.weights).fillna(0.0) * e["strength"].astype(float)
    e["bind"] = e["raw_overlap"].astype(float) >= e["type"].map(cfg.binding_min).fillna(np.inf)
    out = e.groupby(["a", "b"], sort=False).agg(weight=("w", "sum"), binding=("bind", "any")).reset_index()
    return out[out["weight"] > 0]
