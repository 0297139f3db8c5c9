from __future__ import annotations

import collections

import numpy as np
import pandas as pd
import pytest

from distillguard.features.account import (
    FEATURE_NAMES, SOURCE_COLUMNS, account_features_sql, compute_account_features, feature_matrix,
)  # fmt: skip
from distillguard.store.duckdb import DuckDBStore
from tests.factories import event_row, events_table

T0 = 1_700_000_000.0


def _store(rows) -> DuckDBStore:
    store = DuckDBStore(":memory:")
    store.append("events", events_table(rows))
    return store


def test_every_catalogued_feature_is_computed_one_row_per_account():
    rows = [event_row(i, account=f"a{i % 3}", ts=T0 + 60 * i) for i in range(30)]
    frame = compute_account_features(_store(rows))
    assert sorted(frame.index) == ["a0", "a1", "a2"]
    assert set(FEATURE_NAMES) <= set(frame.columns)
    assert frame["n_events"].tolist() == [10, 10, 10]
    assert np.isfinite(feature_matrix(frame)).all()


def test_session_structure_and_templates():
    chat = [event_row(i, account="chat", ts=T0 + 100 * i, n_assistant_turns=i % 4, conversation_hash=i // 4) for i in range(40)]
    harvest = [event_row(i, account="harv", ts=T0 + 100 * i, template_prefix_hash=42) for i in range(40)]
    frame = compute_account_features(_store(chat + harvest))
    assert frame.loc["harv", "single_turn_share"] == 1.0
    assert frame.loc["chat", "single_turn_share"] == pytest.approx(0.25)
    assert frame.loc["chat", "conversations_per_event"] == pytest.approx(10 / 40)
    assert frame.loc["harv", "top_prefix_share"] == 1.0
    assert frame.loc["chat", "top_prefix_share"] == pytest.approx(1 / 40)


def test_near_duplicates_are_found_by_shared_minhash_band():
    rows = [event_row(i, account="dup", ts=T0 + i) for i in range(10)]
    rows[1]["minhash_bands"] = [rows[0]["minhash_bands"][2], 1, 2, 3]  # shares one band with event 0
    frame = compute_account_features(_store(rows))
    assert frame.loc["dup", "near_dup_share"] == pytest.approx(0.2)


def test_near_dup_share_is_the_share_of_requests_with_a_band_repeated_in_the_account():
    rng = np.random.default_rng(7)
    rows, expected = [], {}
    for a in range(6):
        bands = [[int(b) for b in rng.integers(0, 40 + 30 * a, size=int(rng.choice([0, 1, 3, 8])))] for _ in range(25)]
        bands[0] = [5, 5]  # a band twice in one request counts as repeated
        counts = collections.Counter(b for bl in bands for b in bl)
        expected[f"a{a}"] = sum(any(counts[b] > 1 for b in bl) for bl in bands) / len(bands)
        rows += [event_row(a * 100 + i, account=f"a{a}", ts=T0 + i, minhash_bands=bl) for i, bl in enumerate(bands)]
    frame = compute_account_features(_store(rows))
    assert frame["near_dup_share"].to_dict() == pytest.approx(expected)
    assert len(set(expected.values())) > 3  # the accounts differ


def test_distinct_counts_and_clock_features_match_a_plain_reading_of_their_definitions():
    """Each distinct count and the clock features (active days and hours, hour-of-day spread) against pandas."""
    rng = np.random.default_rng(11)
    rows = []
    for a in range(5):
        n = int(rng.integers(5, 60))
        ts = np.sort(T0 + rng.integers(0, 9 * 86400, n) + rng.random(n))  # fractions of seconds, across days
        for i in range(n):
            rows.append(event_row(
                a * 1000 + i, account=f"a{a}", ts=float(ts[i]),
                prompt_hash=int(rng.integers(0, 8)), conversation_hash=int(rng.integers(0, 5)),
                capability=str(rng.choice(["chat", "code", "math"])), script=str(rng.choice(["latin", "cjk"])),
                benchmark_name=rng.choice([None, "gsm8k", "mmlu"]), temperature=float(rng.choice([0.0, 0.7, 1.0])),
                end_user_hash=rng.choice([None, 1, 2, 3]), ip_prefix_hash=rng.choice([None, 7, 8]),
            ))  # fmt: skip
    frame = compute_account_features(_store(rows))
    df = pd.DataFrame(rows)
    df["hour"] = np.floor(df["ts"] / 3600).astype("int64")
    by = df.groupby("account_id")
    n = by.size()
    active_days = by["ts"].apply(lambda t: np.floor(t / 86400).nunique())
    entropy = by["hour"].apply(lambda h: float(-(p := (h % 24).value_counts(normalize=True)).mul(np.log(p)).sum() / np.log(24)))
    expected = {
        "active_days": active_days,
        "hours_per_active_day": by["hour"].nunique() / active_days,
        "hour_entropy": entropy,
        "conversations_per_event": by["conversation_hash"].nunique() / n,
        "distinct_prompt_share": by["prompt_hash"].nunique() / n,
        "n_capabilities": by["capability"].nunique(),
        "n_scripts": by["script"].nunique(),
        "n_benchmarks": by["benchmark_name"].nunique(),
        "distinct_temperatures": by["temperature"].nunique(),
        "distinct_end_users": by["end_user_hash"].nunique(),
        "ip_prefixes_per_event": by["ip_prefix_hash"].nunique() / n,
    }
    for name, values in expected.items():
        assert frame[name].to_dict() == pytest.approx(values.astype(float).to_dict(), abs=1e-9), name
    assert frame["active_days"].nunique() > 1 and frame["n_benchmarks"].max() == 2  # the accounts differ


def test_timing_machine_rhythm_vs_bursty_human():
    rng = np.random.default_rng(1)
    machine = [event_row(i, account="m", ts=T0 + 3600 * i) for i in range(48)]
    human_ts = T0 + np.cumsum(rng.exponential(300, 48)) + np.repeat(np.arange(4) * 86400, 12)
    human = [event_row(i, account="h", ts=float(t)) for i, t in enumerate(human_ts)]
    frame = compute_account_features(_store(machine + human))
    assert frame.loc["m", "gap_cv"] < 0.05 < 0.8 < frame.loc["h", "gap_cv"]
    assert frame.loc["m", "hour_entropy"] == pytest.approx(1.0)
    assert frame.loc["h", "hour_entropy"] < 0.8


def test_parameter_fingerprints_and_shared_prefix():
    rows = [event_row(i, account="lp", ts=T0 + i, logprobs=True, top_logprobs=20, max_tokens=1, n=1) for i in range(10)]
    rows += [event_row(i, account="ms", ts=T0 + i, n=4, temperature=0.2 * (i % 5), seed=7, ip_prefix_hash=99) for i in range(10)]
    rows += [event_row(i, account="nat", ts=T0 + i, ip_prefix_hash=99) for i in range(3)]
    frame = compute_account_features(_store(rows))
    assert frame.loc["lp", "logprobs_share"] == 1.0 and frame.loc["lp", "mean_top_logprobs"] == 20
    assert frame.loc["lp", "max_tokens_tiny_share"] == 1.0
    assert frame.loc["ms", "multi_sample_share"] == 1.0 and frame.loc["ms", "distinct_temperatures"] == 5
    assert frame.loc["ms", "seed_share"] == 1.0
    assert frame.loc["ms", "ip_prefix_accounts"] == 2 and frame.loc["lp", "ip_prefix_accounts"] == 1


def test_new_model_share_marks_traffic_right_after_a_release():
    old = [event_row(i, account="early", ts=T0 + 3600 * i, model="old") for i in range(30)]
    pivot = [event_row(i, account="pivot", ts=T0 + 3 * 86400 + 60 * i, model="new") for i in range(30)]
    late = [event_row(i, account="late", ts=T0 + 8 * 86400 + 60 * i, model="new") for i in range(30)]
    frame = compute_account_features(_store(old + pivot + late))
    assert frame.loc["pivot", "new_model_share"] == 1.0
    assert frame.loc["late", "new_model_share"] == 0.0 and frame.loc["early", "new_model_share"] == 0.0


def test_until_restricts_the_window():
    rows = [event_row(i, account="a", ts=T0 + 60 * i) for i in range(10)]
    assert compute_account_features(_store(rows), until=T0 + 60 * 5)["n_events"].tolist() == [5]


def test_spark_dialect_differs_only_in_list_explode_and_row_numbers():
    duck, spark = account_features_sql(dialect="duckdb"), account_features_sql(dialect="spark")
    assert duck.replace("unnest(", "explode(").replace("row_number() OVER ()", "monotonically_increasing_id()") == spark


def test_a_pooled_unit_is_placed_against_the_whole_population():
    """A subset of the traffic must not make an old model look newly released (or a prefix unshared)."""
    day = 86400.0
    rows = [event_row(i, account="early", ts=i * 3600.0, model="m", ip_prefix_hash=7) for i in range(5)]
    rows += [event_row(100 + i, account="late", ts=3 * day + i * 3600.0, model="m", ip_prefix_hash=7) for i in range(5)]
    rows += [event_row(200 + i, account="other", ts=1 * day + i * 3600.0, model="x", ip_prefix_hash=9) for i in range(5)]
    store = DuckDBStore(":memory:")
    store.append("events", events_table(rows))
    subset = "(SELECT * FROM events WHERE account_id IN ('late', 'other'))"
    alone = store.query(account_features_sql(subset)).to_pandas().set_index("account_id")
    placed = store.query(account_features_sql(subset, population="events")).to_pandas().set_index("account_id")
    full = compute_account_features(store)
    assert alone.at["late", "new_model_share"] == 1.0  # inside the subset, "m" first appears on day 3
    assert placed.at["late", "new_model_share"] == full.at["late", "new_model_share"] == 0.0
    assert alone.at["late", "ip_prefix_accounts"] == 1 and placed.at["late", "ip_prefix_accounts"] == 2


def test_the_query_reads_only_its_source_columns():
    """A view or copy of events holding only SOURCE_COLUMNS (the pooled units' events) is enough."""
    rows = [event_row(i, account=f"a{i % 2}", ts=T0 + 60 * i) for i in range(20)]
    store = _store(rows)
    columns = ", ".join(f'"{c}"' for c in SOURCE_COLUMNS)
    narrow = store.query(account_features_sql(f"(SELECT {columns} FROM events)", population="events")).to_pandas()
    narrow = narrow.set_index("account_id")[list(FEATURE_NAMES)].astype("float64").fillna(0.0)
    assert narrow.equals(compute_account_features(store)[list(FEATURE_NAMES)])
    for dropped in SOURCE_COLUMNS[1:]:  # each listed column is read
        rest = ", ".join(f'"{c}"' for c in SOURCE_COLUMNS if c != dropped)
        with pytest.raises(Exception, match=dropped):
            store.query(account_features_sql(f"(SELECT {rest} FROM events)", population="events"))
