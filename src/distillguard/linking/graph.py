"""The account graph: typed, weighted edges built with set-based SQL, each with its evidence.

Every edge type starts from one *incidence* table ``(kind, key, account_id, share)``: which accounts
use which shared key (an IP hash, a /24 prefix hash, a payment fingerprint, a client fingerprint, a
prompt template, a MinHash band, a 10-minute account-creation bucket) and for what share of their
requests.  Pairs are generated per key, but only inside groups of at most
``LinkConfig.group_cap`` accounts; a key shared by more accounts (a NAT, a cloud egress, a generic
template) is linked through ``LinkConfig.hubs`` hub accounts (the lowest hashes of the group), so a
group of ``n`` accounts yields ``O(n * hubs)`` pairs instead of ``n**2 / 2``, stays connected, and its
weight is damped by its size.  Timing edges (Pearson correlation of hourly request counts) are
computed only for pairs that some other edge already proposes, so the whole graph is
``O(candidate pairs)``, never ``O(accounts**2)``.

All of it is SQL over the ``events`` and ``accounts`` tables (temp tables prefixed ``_dg_link_``),
except the sums of the key pairs per account pair, a compiled pass over the members
(:mod:`distillguard.linking.pairs`); ``docs/linking.md`` gives that step's SQL and the Spark plan.

Example:
    >>> from distillguard.store.duckdb import DuckDBStore
    >>> edges = build_edges(DuckDBStore(":memory:"))
    >>> len(edges)
    0
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from distillguard.store.base import EventStore
from distillguard.store.sql import FIXED_POINT, fixed_sum

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
    # account pairs whose summed Leiden weight is below this, and that no behaviour edge binds, are left
    # out of the community graph: one shared key in a group of hundreds (a carrier prefix, a common
    # user agent, a big creation bucket) says nothing about a pair, and such pairs are most of the
    # graph at 100k accounts (docs/linking.md, "Scale")
    min_pair_weight: float = 0.1
    # content edges weaker than this are noise (two chat users who once typed the same opening) and
    # are dropped in SQL, before anything reaches Python: they bound memory at 1M+ events
    min_content_strength: float = 0.05


def _exec(store: EventStore, sql: str) -> None:
    con = getattr(store, "con", None)
    if con is None:  # pragma: no cover - only the DuckDB store exists today
        raise NotImplementedError("linking needs a SQL store with temp tables (DuckDB); see docs/linking.md for Spark")
    con.execute(sql).fetchall()


#: Incidence kinds whose pairs are weighed by the overlap of the two accounts' usage, not just by sharing.
_CONTENT_KINDS = ("tpl_prefix", "tpl_suffix", "band")


def _incidence_specs(cfg: LinkConfig) -> dict[str, str]:
    """kind → SQL of rows (key, account_id, c): account uses shared key in ``c`` requests (or 1 for account attributes)."""
    k = int(cfg.min_key_events)
    specs = {
        "ip": "SELECT ip_hash AS key, account_id, count(*) AS c FROM events WHERE ip_hash IS NOT NULL GROUP BY ALL",
        "ip_prefix": "SELECT ip_prefix_hash AS key, account_id, count(*) AS c FROM events WHERE ip_prefix_hash IS NOT NULL GROUP BY ALL",
        # client fingerprint: user agent + API-parameter habits
        "client": f"""SELECT CAST(hash(user_agent_hash, max_tokens, temperature, top_logprobs, n) % 9223372036854775807 AS BIGINT) AS key,
             account_id, count(*) AS c FROM events WHERE user_agent_hash IS NOT NULL GROUP BY ALL HAVING count(*) >= {k}""",
        "tpl_prefix": f"SELECT template_prefix_hash AS key, account_id, count(*) AS c FROM events WHERE template_prefix_hash <> 0 GROUP BY ALL HAVING count(*) >= {k}",
        "tpl_suffix": f"SELECT template_suffix_hash AS key, account_id, count(*) AS c FROM events WHERE template_suffix_hash <> 0 GROUP BY ALL HAVING count(*) >= {k}",
        "payment": "SELECT payment_hash AS key, account_id, 1 AS c FROM accounts WHERE payment_hash IS NOT NULL",
        "creation": f"SELECT CAST(floor(created_at / {float(cfg.creation_bucket_s)!r}) AS BIGINT) AS key, account_id, 1 AS c FROM accounts WHERE created_at IS NOT NULL",
    }
    if cfg.use_minhash:
        # a band shared by two accounts occurs in two requests: find those on the integer key alone
        # first (no account string in the hash table), then count accounts for them only
        bands = "(SELECT account_id, unnest(minhash_bands) AS band FROM events)"
        specs["band"] = f"""SELECT band AS key, account_id, count(*) AS c FROM {bands} b
             WHERE band IN (SELECT band FROM {bands} r GROUP BY band HAVING count(*) >= 2) GROUP BY ALL"""
    return specs


def _members_sql(kind: str, incidence: str, cfg: LinkConfig) -> str:
    """Members of the shared keys of one kind: (kind, key, aid, share, n, r), r = rank by a hash of the account.

    Keys used by one account only are dropped here, before any join: they are most of the incidence
    (every account's own IPs, prompts and bands) and can never make a pair.
    """
    # share = uses / the account's requests (x 8 bands per request for bands); account attributes count once
    uses_per_account = "1.0" if kind in ("payment", "creation") else ("a.n_acct * 8.0" if kind == "band" else "a.n_acct")
    min_n = int(cfg.min_creation_group) if kind == "creation" else 2
    return f"""INSERT INTO _dg_link_members
        WITH inc AS MATERIALIZED ({incidence}),
        shared AS (SELECT key, count(*) AS n FROM inc GROUP BY key HAVING count(*) >= {min_n} AND count(*) <= {int(cfg.max_group)})
        SELECT '{kind}' AS kind, i.key, a.aid, i.c * 1.0 / ({uses_per_account}) AS share, s.n,
               row_number() OVER (PARTITION BY i.key ORDER BY hash(i.account_id), i.account_id) AS r
        FROM inc i JOIN shared s ON i.key = s.key JOIN _dg_link_acct a ON i.account_id = a.account_id"""


#: Columns of the edge table, in order.
EDGE_COLUMNS = ["a", "b", "type", "strength", "raw_overlap", "n_keys", "example_key", "group_n"]


def build_edge_tables(store: EventStore, cfg: LinkConfig | None = None) -> None:
    """Build the temp tables ``_dg_link_acct`` (account_id, aid, n_acct) and ``_dg_link_edges`` (a, b as aids).

    ``aid`` numbers accounts from 0 in ``account_id`` order, so ``a < b`` means ``account_id(a) <
    account_id(b)``; ``n_acct`` is the account's number of events.  Both tables stay in the store until
    :func:`drop_edge_tables`, so the caller can weigh pairs in SQL and fetch integer ids only.
    """
    with _threads_at_most(store, EDGE_THREADS):
        _build_edge_tables(store, cfg or LinkConfig())


#: DuckDB threads while the edge tables are built.  Each thread keeps hash tables of its own that these
#: queries cannot spill: on the 1M-event benchmark log, 3 or 4 threads ran out of the store's 1 GB
#: memory limit (OutOfMemoryException) where 2 finish in ~17 s, so a machine with more cores than two
#: builds them with two.
EDGE_THREADS = 2


@contextmanager
def _threads_at_most(store: EventStore, n: int) -> Iterator[None]:
    con = getattr(store, "con", None)
    before = int(con.execute("SELECT current_setting('threads')").fetchall()[0][0]) if con is not None else n
    if before <= n:
        yield
        return
    con.execute(f"SET threads={int(n)}").fetchall()
    try:
        yield
    finally:
        con.execute(f"SET threads={before}").fetchall()


def _build_edge_tables(store: EventStore, cfg: LinkConfig) -> None:
    # every join and aggregate below is on integers, not strings
    _exec(
        store,
        """CREATE OR REPLACE TEMP TABLE _dg_link_acct AS
        SELECT account_id, CAST(row_number() OVER (ORDER BY account_id) - 1 AS INTEGER) AS aid, n_acct
        FROM (SELECT account_id, count(*) AS n_acct FROM events GROUP BY account_id
              UNION ALL SELECT account_id, 0 FROM accounts WHERE account_id NOT IN (SELECT account_id FROM events)) q""",
    )
    _exec(
        store,
        """CREATE OR REPLACE TEMP TABLE _dg_link_members
        (kind VARCHAR, key BIGINT, aid INTEGER, share DOUBLE, n BIGINT, r BIGINT)""",
    )
    for kind, incidence in _incidence_specs(cfg).items():  # one kind at a time: intermediate tables stay small
        _exec(store, _members_sql(kind, incidence, cfg))
    # keys with the very same members and shares make the very same key pairs: the 8 bands of one prompt,
    # the prefix of a template sent by the same accounts as often.  Pair one key of each such set and
    # count it ``mult`` times (a third of the band pairs on the 1M-event benchmark log); exact, since
    # every per-key term below depends only on the members' shares and the group size
    _exec(
        store,
        """CREATE OR REPLACE TEMP TABLE _dg_link_reps AS
        SELECT kind, min(key) AS key, count(*) AS mult FROM (
          SELECT kind, key, list(aid ORDER BY aid) AS aids, list(share ORDER BY aid) AS shares
          FROM _dg_link_members GROUP BY kind, key) k
        GROUP BY kind, aids, shares""",
    )
    _exec(
        store,
        """CREATE OR REPLACE TEMP TABLE _dg_link_members AS
        SELECT m.*, k.mult FROM _dg_link_members m JOIN _dg_link_reps k ON m.kind = k.kind AND m.key = k.key""",
    )
    _exec(store, "DROP TABLE IF EXISTS _dg_link_reps")
    # pairs per key and their sums per pair: a compiled pass over the members (pairs.py; the same
    # definition as the SQL in docs/linking.md, "Key pairs", ~20x faster than that SQL's join streamed
    # into a hash aggregate: 64M key pairs on the 1M-event benchmark log)
    pairs = _key_pair_table(store, cfg)
    _exec(store, "DROP TABLE IF EXISTS _dg_link_members")
    con = store.con  # type: ignore[attr-defined]
    con.register("_dg_link_pairs", pairs)
    # template prefix and suffix rows of one pair → one template row (mean of the two halves); a sum of
    # at most two doubles does not depend on their order
    try:
        _exec(
            store,
            f"""CREATE OR REPLACE TEMP TABLE _dg_link_edges AS
            SELECT a, b, type, least(sum(strength), 1.0) AS strength, least(sum(raw_overlap), 1.0) AS raw_overlap,
                   sum(n_keys) AS n_keys, min(example_key) AS example_key, max(group_n) AS group_n
            FROM _dg_link_pairs GROUP BY a, b, type
            HAVING type NOT IN ('template', 'near_dup') OR least(sum(strength), 1.0) >= {float(cfg.min_content_strength)!r}""",
        )
    finally:
        con.unregister("_dg_link_pairs")
    _timing_edges(store, cfg)


def _key_pair_table(store: EventStore, cfg: LinkConfig) -> pa.Table:
    """One row per account pair and key kind (a, b, type, strength, raw_overlap, n_keys, example_key, group_n).

    Sums the key pairs of ``_dg_link_members`` kind by kind with :func:`pairs.key_pair_sums`; near-duplicate
    rows under ``min_content_strength`` are left out there already (a band row is its pair's whole edge).
    """
    from distillguard.linking.pairs import KindMembers, key_pair_sums

    n_accounts = store.query("SELECT count(*) AS n FROM _dg_link_acct").column("n")[0].as_py()
    kinds = store.query("SELECT DISTINCT kind FROM _dg_link_members ORDER BY kind").column("kind").to_pylist()
    tables = []
    for kind in kinds:
        content = kind in _CONTENT_KINDS
        # the group damping of docs/linking.md: content keeps most of its overlap in big groups
        damp = "1.0 / (1.0 + 0.25 * ln(n / 2.0))" if content else "1.0 / (1.0 + ln(n / 2.0))"
        rows = store.query(
            f"""SELECT key, aid, share, r <= {int(cfg.hubs)} AS hub, {damp} AS damp, mult, n, n > {int(cfg.group_cap)} AS big
            FROM _dg_link_members WHERE kind = '{kind}' ORDER BY key, aid"""
        )
        members = KindMembers.from_sorted(**{name: rows.column(name).to_numpy() for name in rows.column_names})
        min_strength = float(cfg.min_content_strength) if kind == "band" else 0.0
        sums = key_pair_sums(members, n_accounts=n_accounts, content=content, min_strength=min_strength)
        halves = 2.0 if kind in ("tpl_prefix", "tpl_suffix") else 1.0  # a template is the mean of its two halves
        edge_type = "template" if halves == 2.0 else "near_dup" if kind == "band" else kind
        tables.append(pa.table({
            "a": sums.a, "b": sums.b,
            "type": pa.DictionaryArray.from_arrays(np.zeros(len(sums.a), np.int8), [edge_type]).cast(pa.string()),
            "strength": np.minimum(sums.strength_sum / FIXED_POINT / halves, 1.0),
            "raw_overlap": np.minimum(sums.overlap_sum / FIXED_POINT / halves, 1.0) if content else np.ones(len(sums.a)),
            "n_keys": sums.n_keys, "example_key": sums.example_key, "group_n": sums.group_n,
        }))  # fmt: skip
    # an empty list has no schema to concatenate: nothing shared, no rows, the columns still typed
    return pa.concat_tables(tables) if tables else pa.table({c: pa.array([], t) for c, t in _PAIR_TYPES.items()})


_PAIR_TYPES = {
    "a": pa.int32(), "b": pa.int32(), "type": pa.string(), "strength": pa.float64(), "raw_overlap": pa.float64(),
    "n_keys": pa.int64(), "example_key": pa.int64(), "group_n": pa.int64(),
}  # fmt: skip


def drop_edge_tables(store: EventStore) -> None:
    for name in ("_dg_link_edges", "_dg_link_acct"):
        _exec(store, f"DROP TABLE IF EXISTS {name}")


def fetch_accounts(store: EventStore) -> tuple[np.ndarray, np.ndarray]:
    """``(account_ids, n_events)`` indexed by aid, from ``_dg_link_acct``."""
    table = store.query("SELECT account_id, n_acct FROM _dg_link_acct ORDER BY aid")
    return np.asarray(table.column("account_id").to_pylist(), dtype=object), table.column("n_acct").to_numpy()


def fetch_edges(store: EventStore, account_ids: np.ndarray) -> pd.DataFrame:
    """``_dg_link_edges`` as a frame ordered by (a, b, type), without a string per row.

    ``a`` and ``b`` are categoricals over ``account_ids`` (an int32 code per row: reads as account ids,
    costs as integers), ``type`` is a categorical over :data:`EDGE_TYPES`, and ``example_key`` is a
    nullable Int64 (timing edges have no key) so 64-bit key hashes stay exact.
    """
    table = store.query(
        f"""SELECT a, b, CAST(list_position({list(EDGE_TYPES)!r}, type) - 1 AS TINYINT) AS type_code,
               strength, raw_overlap, n_keys, example_key, group_n
        FROM _dg_link_edges ORDER BY a, b, type"""
    )
    accounts = pd.Index(account_ids)
    key = table.column("example_key")
    return pd.DataFrame({
        "a": pd.Categorical.from_codes(table.column("a").to_numpy(), categories=accounts, validate=False),
        "b": pd.Categorical.from_codes(table.column("b").to_numpy(), categories=accounts, validate=False),
        "type": pd.Categorical.from_codes(table.column("type_code").to_numpy(), categories=list(EDGE_TYPES), validate=False),
        "strength": table.column("strength").to_numpy(),
        "raw_overlap": table.column("raw_overlap").to_numpy(),
        "n_keys": table.column("n_keys").to_numpy(),
        "example_key": pd.arrays.IntegerArray(key.fill_null(0).to_numpy(), key.is_null().to_numpy(zero_copy_only=False)),
        "group_n": table.column("group_n").to_numpy(),
    })  # fmt: skip


def build_edges(store: EventStore, cfg: LinkConfig | None = None) -> pd.DataFrame:
    """One row per (a, b, type) with a < b: strength (0..1), n_keys shared, example_key, group_n (largest group).

    The account ids are plain strings here; :func:`distillguard.linking.link_accounts` keeps the
    tables in SQL and fetches integer ids instead.

    Example:
        >>> from distillguard.store.duckdb import DuckDBStore
        >>> list(build_edges(DuckDBStore(":memory:")).columns)
        ['a', 'b', 'type', 'strength', 'raw_overlap', 'n_keys', 'example_key', 'group_n']
    """
    build_edge_tables(store, cfg)
    try:
        edges = fetch_edges(store, fetch_accounts(store)[0])
    finally:
        drop_edge_tables(store)
    return edges.astype({"a": object, "b": object, "type": object})


def _timing_edges(store: EventStore, cfg: LinkConfig) -> None:
    """Append 'timing' rows: Pearson r of hourly request counts, only for already-proposed pairs.

    r is computed from sums, so only non-zero hours are joined: with H hours in the scan's span,
    r = (H·Σxy − Σx·Σy) / sqrt((H·Σx² − (Σx)²)(H·Σy² − (Σy)²)).  Accounts active in fewer than
    ``timing_min_hours`` hours are left out before the join (their r would not be computed anyway).
    """
    min_h = int(cfg.timing_min_hours)
    _exec(
        store,
        """CREATE OR REPLACE TEMP TABLE _dg_link_hourly AS
        WITH acc AS (SELECT a AS aid FROM _dg_link_edges UNION SELECT b FROM _dg_link_edges)
        SELECT a.aid, CAST(floor(e.ts / 3600) AS BIGINT) AS h, count(*) * 1.0 AS c
        FROM events e JOIN _dg_link_acct a ON e.account_id = a.account_id
        WHERE a.aid IN (SELECT aid FROM acc) GROUP BY 1, 2""",
    )
    _exec(
        store,
        f"""CREATE OR REPLACE TEMP TABLE _dg_link_cand AS
        WITH active AS (SELECT aid FROM _dg_link_hourly GROUP BY aid HAVING count(*) >= {min_h})
        SELECT DISTINCT a, b FROM _dg_link_edges WHERE a IN (SELECT aid FROM active) AND b IN (SELECT aid FROM active)""",
    )
    _exec(
        store,
        f"""INSERT INTO _dg_link_edges
        WITH span AS (SELECT greatest(max(h) - min(h) + 1, 2) * 1.0 AS H FROM _dg_link_hourly),
        s AS (SELECT aid, sum(c) AS sx, sum(c * c) AS sxx FROM _dg_link_hourly GROUP BY aid),
        x AS (
          SELECT p.a, p.b, sum(ha.c * hb.c) AS sxy, count(*) AS both_hours
          FROM _dg_link_cand p
          JOIN _dg_link_hourly ha ON ha.aid = p.a
          JOIN _dg_link_hourly hb ON hb.aid = p.b AND hb.h = ha.h
          GROUP BY p.a, p.b
        ),
        r AS (
          SELECT x.a, x.b, x.both_hours,
            (span.H * x.sxy - sa.sx * sb.sx)
              / nullif(sqrt(greatest(span.H * sa.sxx - sa.sx * sa.sx, 0) * greatest(span.H * sb.sxx - sb.sx * sb.sx, 0)), 0) AS r
          FROM x JOIN s sa ON sa.aid = x.a JOIN s sb ON sb.aid = x.b CROSS JOIN span
        )
        SELECT a, b, 'timing', least(r, 1.0), least(r, 1.0), both_hours, NULL, 2 FROM r WHERE r >= {float(cfg.timing_min_r)!r}""",
    )
    for name in ("_dg_link_cand", "_dg_link_hourly"):
        _exec(store, f"DROP TABLE IF EXISTS {name}")


def pair_weights_sql(cfg: LinkConfig, edges: str = "_dg_link_edges") -> str:
    """SQL of one row per account pair (a, b, weight, binding), ordered by (a, b): the Leiden input.

    weight = Σ weight[type]·strength (a fixed-point sum, so the order of a pair's rows does not matter);
    binding = some behaviour edge reaches ``cfg.binding_min``.  Pairs lighter than
    ``cfg.min_pair_weight`` are dropped unless a behaviour edge binds them.
    """
    weight = " ".join(f"WHEN '{t}' THEN {float(w)!r}" for t, w in cfg.weights.items())
    binding = " ".join(f"WHEN '{t}' THEN raw_overlap >= {float(m)!r}" for t, m in cfg.binding_min.items())
    return f"""SELECT a, b, weight, binding FROM (
          SELECT a, b, {fixed_sum(f"strength * CASE type {weight} ELSE 0.0 END")} AS weight,
                 coalesce(bool_or(CASE type {binding} ELSE false END), false) AS binding
          FROM {edges} GROUP BY a, b) p
        WHERE weight > 0 AND (weight >= {float(cfg.min_pair_weight)!r} OR binding)
        ORDER BY a, b"""


def weighted_pairs(edges: pd.DataFrame, cfg: LinkConfig | None = None) -> pd.DataFrame:
    """:func:`pair_weights_sql` over an edge frame (columns a, b, type, strength, raw_overlap).

    Example:
        >>> e = pd.DataFrame({"a": ["x", "x"], "b": ["y", "z"], "type": ["ip", "client"],
        ...                   "strength": [1.0, 0.1], "raw_overlap": [1.0, 1.0]})
        >>> [(a, b, round(w, 6)) for a, b, w in weighted_pairs(e)[["a", "b", "weight"]].values.tolist()]
        [('x', 'y', 0.6)]
    """
    import duckdb

    cfg = cfg or LinkConfig()
    if edges.empty:
        return pd.DataFrame(columns=["a", "b", "weight", "binding"])
    con = duckdb.connect()
    try:
        con.register("_dg_link_edge_frame", edges[["a", "b", "type", "strength", "raw_overlap"]])
        return con.sql(pair_weights_sql(cfg, "_dg_link_edge_frame")).to_df()
    finally:
        con.close()
