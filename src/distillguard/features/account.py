"""Account features: set-based SQL over the events table.

Each feature is a named column of one query (``account_features_sql``) written
in the SQL that DuckDB and Spark SQL share (window functions, ``count(DISTINCT)``,
``stddev_samp``, ``ln``); the only dialect difference, exploding a list column,
is a parameter.  ``FEATURES`` is the catalogue: a description for evidence and
a ``kind`` that tells detectors how to scale the value.

The same query can be restricted to a time range (``until``) so the benchmark
can replay a scenario hour by hour, and the gateway can recompute features of
the accounts it has seen over a micro-batch.

Example:
    >>> from distillguard.store.duckdb import DuckDBStore
    >>> frame = compute_account_features(DuckDBStore(":memory:"))
    >>> list(frame.columns)[:3]
    ['n_events', 'n_success', 'active_days']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from distillguard.store.base import EventStore
from distillguard.store.sql import exact_cv, fixed_sum


@dataclass(frozen=True)
class AccountFeature:
    name: str
    kind: str  # "count" (log-scaled), "ratio" (log-scaled), "share" (0..1), "score" (as is)
    description: str


FEATURES: tuple[AccountFeature, ...] = (
    # volume and rate
    AccountFeature("n_events", "count", "requests in the period"),
    AccountFeature("n_success", "count", "successful requests in the period"),
    AccountFeature("active_days", "count", "days with at least one request"),
    AccountFeature("events_per_active_day", "ratio", "requests per active day"),
    AccountFeature("max_per_minute", "count", "most requests started in one minute (concurrency)"),
    # token economics
    AccountFeature("output_tokens", "count", "completion tokens received"),
    AccountFeature("mean_completion_tokens", "ratio", "mean completion tokens per request"),
    AccountFeature("output_input_ratio", "ratio", "completion tokens per prompt token"),
    AccountFeature("max_tokens_high_share", "share", "share of requests asking for >= 2,048 output tokens"),
    AccountFeature("max_tokens_tiny_share", "share", "share of requests capping output at <= 16 tokens"),
    # timing
    AccountFeature("hours_per_active_day", "ratio", "distinct hours active per active day"),
    AccountFeature("hour_entropy", "share", "spread of requests over the 24 hours (1 = round the clock)"),
    AccountFeature("gap_cv", "ratio", "variation of time between requests (low = machine rhythm)"),
    # session structure
    AccountFeature("single_turn_share", "share", "share of requests with no earlier turns in the conversation"),
    AccountFeature("followup_share", "share", "share of requests that continue a conversation"),
    AccountFeature("conversations_per_event", "share", "distinct conversations per request"),
    AccountFeature("system_prompt_share", "share", "share of requests carrying a system prompt"),
    # diversity and templates
    AccountFeature("distinct_prompt_share", "share", "distinct prompts per request"),
    AccountFeature("near_dup_share", "share", "share of prompts with a near-duplicate in the same account"),
    AccountFeature("top_prefix_share", "share", "share of prompts opening with the account's commonest template"),
    AccountFeature("top_suffix_share", "share", "share of prompts closing with the account's commonest template"),
    AccountFeature("capability_entropy", "share", "spread of prompts over capabilities (code, math, writing, ...)"),
    AccountFeature("n_capabilities", "count", "distinct capabilities asked for"),
    AccountFeature("non_latin_share", "share", "share of prompts not in Latin script"),
    AccountFeature("n_scripts", "count", "distinct writing systems in prompts"),
    # content signals
    AccountFeature("reasoning_elicit_share", "share", "share of prompts asking the model to write out its reasoning"),
    AccountFeature("completion_reasoning_share", "share", "share of answers that are worked reasoning traces"),
    AccountFeature("rubric_share", "share", "share of prompts using the model as a grader / reward model"),
    AccountFeature("benchmark_share", "share", "share of prompts overlapping public benchmarks / datasets"),
    AccountFeature("n_benchmarks", "count", "distinct public benchmarks touched"),
    # API-parameter fingerprints
    AccountFeature("logprobs_share", "share", "share of requests asking for logprobs"),
    AccountFeature("mean_top_logprobs", "ratio", "mean top_logprobs requested"),
    AccountFeature("multi_sample_share", "share", "share of requests with n > 1"),
    AccountFeature("distinct_temperatures", "count", "distinct temperatures used (sweeps)"),
    AccountFeature("seed_share", "share", "share of requests with a fixed seed"),
    AccountFeature("tools_share", "share", "share of requests declaring tools"),
    AccountFeature("tool_call_share", "share", "share of responses that call a tool"),
    AccountFeature("new_model_share", "share", "share of requests to a model within 48 h of its first appearance"),
    # identity spread
    AccountFeature("distinct_end_users", "count", "distinct end-user ids"),
    AccountFeature("ip_prefixes_per_event", "share", "distinct network prefixes per request (proxy rotation)"),
    AccountFeature("ip_prefix_accounts", "count", "accounts sharing this account's main network prefix"),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
FEATURE_BY_NAME = {f.name: f for f in FEATURES}

#: The event columns the feature query reads: a view or copy of events that relabels accounts (pooled
#: clusters, end users) needs no others.
SOURCE_COLUMNS = (
    "account_id", "ts", "status", "model", "prompt_tokens", "completion_tokens", "max_tokens", "temperature", "n",
    "seed", "logprobs", "top_logprobs", "tools_count", "response_tool_calls", "n_assistant_turns", "has_system",
    "conversation_hash", "prompt_hash", "template_prefix_hash", "template_suffix_hash", "minhash_bands", "script",
    "capability", "reasoning_elicit", "completion_has_reasoning", "rubric_grading", "benchmark_name",
    "end_user_hash", "ip_prefix_hash",
)  # fmt: skip


def columns_but_account(alias: str = "") -> str:
    """``SOURCE_COLUMNS`` but ``account_id``, quoted and comma-separated, for a view that relabels accounts.

    Example:
        >>> columns_but_account("e").split(", ")[:2]
        ['e."ts"', 'e."status"']
    """
    prefix = f"{alias}." if alias else ""
    return ", ".join(f'{prefix}"{c}"' for c in SOURCE_COLUMNS if c != "account_id")


_EXPLODE = {"duckdb": "unnest", "spark": "explode"}
#: The per-account distinct counts of the query: name -> the column counted
_DISTINCT_COUNTS = {
    "n_conversations": "conversation_hash", "n_distinct_prompts": "prompt_hash", "n_capabilities": "capability",
    "n_scripts": "script", "n_benchmarks": "benchmark_name", "distinct_temperatures": "temperature",
    "distinct_end_users": "end_user_hash", "n_ip_prefixes": "ip_prefix_hash",
}
#: A number unique to each row of one scan: near-duplicate counting numbers events and accounts with it
#: and joins and groups 8 band rows per event on integers, not on event_id and account_id strings
#: (the account feature query 4.9 -> 2.1 s on 1M events at a 1 GB memory limit: nothing left to spill)
_ROW_NUMBER = {"duckdb": "row_number() OVER ()", "spark": "monotonically_increasing_id()"}


def account_features_sql(events: str = "events", *, dialect: str = "duckdb", population: str | None = None) -> str:
    """The query computing every feature in ``FEATURES``, one row per account_id.

    ``population`` is where the features that place a unit among all traffic look (when the
    period starts, when each model first appeared, how many accounts share a network prefix);
    by default ``events`` itself.  Pooled units (linked clusters, end users inside a shared
    account) pass the whole events table, so that a subset of the traffic does not make a model
    look newly released or a prefix look unshared.
    """
    explode, row_number = _EXPLODE[dialect], _ROW_NUMBER[dialect]
    pop = population or events
    # each distinct count in its own grouping: in one GROUP BY with the other aggregates, DuckDB first
    # materialised every column they read (~2.3 of the query's ~15 CPU s at 1M events)
    distinct_counts = "".join(
        f"{name} AS (SELECT account_id, count(DISTINCT {column}) AS {name} FROM {events} e GROUP BY account_id),\n"
        for name, column in _DISTINCT_COUNTS.items()
    )
    distinct_joins = "".join(f"JOIN {name} ON b.account_id = {name}.account_id\n" for name in _DISTINCT_COUNTS)
    # each part reads ``events`` itself rather than through one shared CTE: DuckDB materialised that
    # CTE (every column, spilled to disk past memory_limit at 10M events); direct scans read only the
    # columns each part needs (docs/linking.md, "Scale")
    return f"""
WITH span AS (SELECT min(ts) AS t0 FROM {pop} e),
model_first AS (SELECT model, min(ts) AS first_ts FROM {pop} e GROUP BY model),
base AS (
  SELECT account_id,
    count(*) AS n_events,
    sum(CASE WHEN coalesce(status, 'success') = 'success' THEN 1 ELSE 0 END) AS n_success,
    sum(coalesce(completion_tokens, 0)) AS output_tokens,
    sum(coalesce(prompt_tokens, 0)) AS input_tokens,
    avg(CASE WHEN max_tokens >= 2048 THEN 1.0 ELSE 0.0 END) AS max_tokens_high_share,
    avg(CASE WHEN max_tokens <= 16 THEN 1.0 ELSE 0.0 END) AS max_tokens_tiny_share,
    avg(CASE WHEN coalesce(n_assistant_turns, 0) = 0 THEN 1.0 ELSE 0.0 END) AS single_turn_share,
    avg(CASE WHEN has_system THEN 1.0 ELSE 0.0 END) AS system_prompt_share,
    avg(CASE WHEN script <> 'latin' THEN 1.0 ELSE 0.0 END) AS non_latin_share,
    avg(CASE WHEN reasoning_elicit THEN 1.0 ELSE 0.0 END) AS reasoning_elicit_share,
    avg(CASE WHEN completion_has_reasoning THEN 1.0 ELSE 0.0 END) AS completion_reasoning_share,
    avg(CASE WHEN rubric_grading THEN 1.0 ELSE 0.0 END) AS rubric_share,
    avg(CASE WHEN benchmark_name IS NOT NULL THEN 1.0 ELSE 0.0 END) AS benchmark_share,
    avg(CASE WHEN logprobs OR coalesce(top_logprobs, 0) > 0 THEN 1.0 ELSE 0.0 END) AS logprobs_share,
    avg(coalesce(top_logprobs, 0)) AS mean_top_logprobs,
    avg(CASE WHEN coalesce(n, 1) > 1 THEN 1.0 ELSE 0.0 END) AS multi_sample_share,
    avg(CASE WHEN seed IS NOT NULL THEN 1.0 ELSE 0.0 END) AS seed_share,
    avg(CASE WHEN coalesce(tools_count, 0) > 0 THEN 1.0 ELSE 0.0 END) AS tools_share,
    avg(CASE WHEN coalesce(response_tool_calls, 0) > 0 THEN 1.0 ELSE 0.0 END) AS tool_call_share,
    min(ts) AS first_ts, max(ts) AS last_ts
  FROM {events} e GROUP BY account_id
),
{distinct_counts}-- clock hours with requests: active hours and days, and the hour-of-day profile, from one grouping
hourly AS (
  SELECT account_id, CAST(floor(ts / 3600) AS BIGINT) AS hour, count(*) AS c FROM {events} e
  GROUP BY account_id, CAST(floor(ts / 3600) AS BIGINT)
),
active AS (
  SELECT account_id, count(*) AS active_hours, count(DISTINCT CAST(floor(hour / 24) AS BIGINT)) AS active_days
  FROM hourly GROUP BY account_id
),
gaps AS (
  SELECT account_id, ts - lag(ts) OVER (PARTITION BY account_id ORDER BY ts) AS gap FROM {events} e
),
gap_stats AS (
  SELECT account_id, {exact_cv('gap')} AS gap_cv FROM gaps WHERE gap IS NOT NULL GROUP BY account_id
),
hod AS (SELECT account_id, hour % 24 AS h, sum(c) AS c FROM hourly GROUP BY account_id, hour % 24),
hod_entropy AS (
  SELECT account_id, -{fixed_sum('p * ln(p)')} / ln(24) AS hour_entropy
  FROM (SELECT account_id, c * 1.0 / sum(c) OVER (PARTITION BY account_id) AS p FROM hod) q GROUP BY account_id
),
cap AS (SELECT account_id, capability, count(*) AS c FROM {events} e GROUP BY account_id, capability),
cap_entropy AS (
  SELECT account_id, -{fixed_sum('p * ln(p)')} / ln(8) AS capability_entropy
  FROM (SELECT account_id, c * 1.0 / sum(c) OVER (PARTITION BY account_id) AS p FROM cap) q GROUP BY account_id
),
per_minute AS (
  SELECT account_id, max(c) AS max_per_minute
  FROM (SELECT account_id, count(*) AS c FROM {events} e GROUP BY account_id, CAST(floor(ts / 60) AS BIGINT)) q GROUP BY account_id
),
prefix AS (
  SELECT account_id, max(c) AS top_prefix_n
  FROM (SELECT account_id, count(*) AS c FROM {events} e WHERE template_prefix_hash <> 0 GROUP BY account_id, template_prefix_hash) q
  GROUP BY account_id
),
suffix AS (
  SELECT account_id, max(c) AS top_suffix_n
  FROM (SELECT account_id, count(*) AS c FROM {events} e WHERE template_suffix_hash <> 0 GROUP BY account_id, template_suffix_hash) q
  GROUP BY account_id
),
-- ordered: the same numbers however often an engine evaluates this (Spark inlines CTEs; row_n below
-- is read from one evaluation only, aid from two)
acct_n AS (SELECT account_id, row_number() OVER (ORDER BY account_id) AS aid FROM (SELECT DISTINCT account_id FROM {events} e) q),
bands AS (
  SELECT a.aid, q.row_n, {explode}(q.minhash_bands) AS band
  FROM (SELECT account_id, {row_number} AS row_n, minhash_bands FROM {events} e) q JOIN acct_n a ON q.account_id = a.account_id
),
-- counted from a second unnest, not from ``bands``: read twice, ``bands`` (8 rows an event) was
-- materialised (~1.4 CPU s at 1M events); the counts need no row numbers
band_counts AS (
  SELECT aid, band, count(*) AS c FROM (
    SELECT a.aid, {explode}(q.minhash_bands) AS band
    FROM (SELECT account_id, minhash_bands FROM {events} e) q JOIN acct_n a ON q.account_id = a.account_id
  ) u GROUP BY aid, band
),
near_dup AS (
  SELECT a.account_id, nd.near_dup_n FROM acct_n a JOIN (
    SELECT b.aid, count(DISTINCT b.row_n) AS near_dup_n
    FROM bands b JOIN band_counts bc ON b.aid = bc.aid AND b.band = bc.band
    WHERE bc.c > 1 GROUP BY b.aid) nd ON a.aid = nd.aid
),
new_model AS (
  SELECT e.account_id,
    avg(CASE WHEN mf.first_ts > s.t0 + 86400 AND e.ts - mf.first_ts < 172800 THEN 1.0 ELSE 0.0 END) AS new_model_share
  FROM {events} e JOIN model_first mf ON e.model = mf.model CROSS JOIN span s GROUP BY e.account_id
),
acct_prefix AS (
  SELECT account_id, ip_prefix_hash, count(*) AS c FROM {events} e WHERE ip_prefix_hash IS NOT NULL GROUP BY account_id, ip_prefix_hash
),
main_prefix AS (
  SELECT account_id, ip_prefix_hash FROM (
    SELECT account_id, ip_prefix_hash,
      row_number() OVER (PARTITION BY account_id ORDER BY c DESC, ip_prefix_hash) AS r FROM acct_prefix) q
  WHERE r = 1
),
prefix_accounts AS (
  SELECT ip_prefix_hash, count(DISTINCT account_id) AS n FROM {"acct_prefix" if population is None else pop + " p WHERE ip_prefix_hash IS NOT NULL"} GROUP BY ip_prefix_hash
),
shared_prefix AS (
  SELECT mp.account_id, pa.n AS ip_prefix_accounts FROM main_prefix mp JOIN prefix_accounts pa ON mp.ip_prefix_hash = pa.ip_prefix_hash
)
SELECT b.account_id,
  b.n_events, b.n_success, ac.active_days,
  b.n_events * 1.0 / ac.active_days AS events_per_active_day,
  coalesce(pm.max_per_minute, 0) AS max_per_minute,
  b.output_tokens,
  b.output_tokens * 1.0 / b.n_events AS mean_completion_tokens,
  b.output_tokens * 1.0 / greatest(b.input_tokens, 1) AS output_input_ratio,
  b.max_tokens_high_share, b.max_tokens_tiny_share,
  ac.active_hours * 1.0 / ac.active_days AS hours_per_active_day,
  coalesce(he.hour_entropy, 0) AS hour_entropy,
  coalesce(g.gap_cv, 1.0) AS gap_cv,
  b.single_turn_share, 1.0 - b.single_turn_share AS followup_share,
  n_conversations.n_conversations * 1.0 / b.n_events AS conversations_per_event,
  b.system_prompt_share,
  n_distinct_prompts.n_distinct_prompts * 1.0 / b.n_events AS distinct_prompt_share,
  coalesce(nd.near_dup_n, 0) * 1.0 / b.n_events AS near_dup_share,
  coalesce(px.top_prefix_n, 0) * 1.0 / b.n_events AS top_prefix_share,
  coalesce(sx.top_suffix_n, 0) * 1.0 / b.n_events AS top_suffix_share,
  coalesce(ce.capability_entropy, 0) AS capability_entropy,
  n_capabilities.n_capabilities, b.non_latin_share, n_scripts.n_scripts,
  b.reasoning_elicit_share, b.completion_reasoning_share, b.rubric_share, b.benchmark_share, n_benchmarks.n_benchmarks,
  b.logprobs_share, b.mean_top_logprobs, b.multi_sample_share, distinct_temperatures.distinct_temperatures, b.seed_share,
  b.tools_share, b.tool_call_share,
  coalesce(nm.new_model_share, 0) AS new_model_share,
  distinct_end_users.distinct_end_users,
  n_ip_prefixes.n_ip_prefixes * 1.0 / b.n_events AS ip_prefixes_per_event,
  coalesce(sp.ip_prefix_accounts, 1) AS ip_prefix_accounts,
  b.first_ts, b.last_ts
FROM base b
{distinct_joins}JOIN active ac ON b.account_id = ac.account_id
LEFT JOIN gap_stats g ON b.account_id = g.account_id
LEFT JOIN hod_entropy he ON b.account_id = he.account_id
LEFT JOIN cap_entropy ce ON b.account_id = ce.account_id
LEFT JOIN per_minute pm ON b.account_id = pm.account_id
LEFT JOIN prefix px ON b.account_id = px.account_id
LEFT JOIN suffix sx ON b.account_id = sx.account_id
LEFT JOIN near_dup nd ON b.account_id = nd.account_id
LEFT JOIN new_model nm ON b.account_id = nm.account_id
LEFT JOIN shared_prefix sp ON b.account_id = sp.account_id
ORDER BY b.account_id
"""


def compute_account_features(
    store: EventStore, *, until: float | None = None, accounts: Sequence[str] | None = None
) -> pd.DataFrame:
    """One row per account (index ``account_id``): every feature in ``FEATURES`` plus first_ts / last_ts.

    ``until`` restricts the events to ``ts < until`` (replays, online re-scoring).  ``accounts``
    keeps only those accounts' rows; the features that compare an account with the others
    (``ip_prefix_accounts``, ``new_model_share``) are still computed over all events.
    """
    source = "events" if until is None else f"(SELECT * FROM events WHERE ts < {float(until)!r})"
    sql, params = account_features_sql(source), None
    if accounts is not None:
        sql, params = f"SELECT * FROM ({sql}) f WHERE f.account_id IN (SELECT unnest(?::VARCHAR[]))", [list(accounts)]
    frame = store.query(sql, params).to_pandas()
    frame = frame.set_index("account_id")
    for name in FEATURE_NAMES:
        frame[name] = frame[name].astype("float64").fillna(0.0)
    return frame


def feature_matrix(frame: pd.DataFrame, names: tuple[str, ...] = FEATURE_NAMES) -> np.ndarray:
    """Features scaled for models: counts and ratios log1p'd, shares as they are."""
    cols = []
    for name in names:
        values = frame[name].to_numpy(dtype="float64")
        if FEATURE_BY_NAME[name].kind in ("count", "ratio"):
            values = np.log1p(np.clip(values, 0, None))
        cols.append(values)
    return np.column_stack(cols) if cols else np.empty((len(frame), 0))


def population_percentiles(frame: pd.DataFrame, names: tuple[str, ...] = FEATURE_NAMES) -> pd.DataFrame:
    """Each account's percentile (0..100) of each feature among all accounts in ``frame``."""
    return frame[list(names)].rank(pct=True, method="average") * 100.0
