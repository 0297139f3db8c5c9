from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from distillguard.bench.quality import (
    baseline_scores,
    detection_delay,
    evaluate_scan,
    markdown_table,
    recall_at_fpr,
    replay_schedule,
)


def test_recall_at_fpr_respects_the_false_positive_budget():
    y = np.array([1] * 10 + [0] * 1000)
    scores = np.concatenate([np.linspace(0.5, 1.0, 10), np.linspace(0.0, 0.9, 1000)])
    # benign scores reach 0.9: at 0.1% FPR (1 benign allowed) only positives above the 2nd-highest benign count
    assert recall_at_fpr(y, scores, 0.001) == pytest.approx(np.mean(np.linspace(0.5, 1.0, 10) > 0.8991), abs=0.11)
    assert recall_at_fpr(y, scores, 1.0) == 1.0
    assert np.isnan(recall_at_fpr(np.ones(5), np.ones(5), 0.01))


def _frame(scores, n_events):
    return pd.DataFrame(
        {"score": scores, "n_events": n_events, "max_per_minute": [1.0] * len(scores), "events_per_active_day": n_events},
        index=[f"a{i}" for i in range(len(scores))],
    )


def test_evaluate_scan_counts_campaigns_and_hard_negatives():
    frame = _frame([0.9, 0.2, 0.95, 0.7, 0.1], [50.0, 40.0, 30.0, 5000.0, 10.0])
    labels = {
        "a0": {"is_attack": True, "campaign_id": "c1", "persona": "hydra"},
        "a1": {"is_attack": True, "campaign_id": "c2", "persona": "low_and_slow"},
        "a2": {"is_attack": True, "campaign_id": "c1", "persona": "hydra"},
        "a3": {"is_attack": False, "hard_negative": True, "persona": "batch_pipeline"},
        "a4": {"is_attack": False, "persona": "chat_user"},
    }
    result = evaluate_scan(frame, labels, threshold=0.5)
    assert result["campaign_recall"] == 0.5  # c1 found, c2 missed
    assert result["hard_negative_fp"]["batch_pipeline"] == {"accounts": 1, "flagged": 1, "rate": 1.0}
    assert result["distillguard"]["recall_at_threshold"] == pytest.approx(2 / 3)
    assert "| " in markdown_table([{**result, "scenario": "x", "events": 5, "events_per_s": 1}])


def test_volume_baseline_ranks_heavy_accounts_first():
    frame = _frame([0.0] * 3, [10.0, 100.0, 100000.0])
    z = baseline_scores(frame)["volume_z"]
    assert z[2] > z[1] > z[0]


def test_replay_schedule_is_hourly_around_each_campaign_start():
    cuts = replay_schedule(0.0, 6 * 86400.0, campaign_starts=[3 * 86400.0 + 1800])
    assert cuts[:3] == [3600.0, 7200.0, 10800.0]
    assert cuts[47] == 48 * 3600.0 and cuts[48] - cuts[47] == 6 * 3600.0  # 6-hourly after the data's first two days
    late = [c for c in cuts if 3 * 86400 < c <= 5 * 86400]
    assert 3 * 86400.0 + 1800 + 3600 in late and len(late) >= 48  # hourly again once the campaign starts
    assert cuts[-1] >= 6 * 86400.0


class _CountingModel:
    """Flags an account once it has made 5 requests: enough to check the replay bookkeeping."""

    def fit_population(self, frame):
        return self

    def score(self, frame):
        return (frame["n_events"].to_numpy() >= 5).astype(float)


def test_detection_delay_counts_exchanges_before_the_first_flag():
    from distillguard.store.duckdb import DuckDBStore
    from tests.factories import event_row, events_table

    t0 = 1_700_000_000.0
    rows = [event_row(i, account="attacker", ts=t0 + 600 * i) for i in range(60)]  # one every 10 min
    rows += [event_row(i, account="quiet", ts=t0 + 7200 * i) for i in range(3)]
    store = DuckDBStore(":memory:")
    store.append("events", events_table(rows))
    labels = {"attacker": {"is_attack": True, "campaign_id": "c1"}, "quiet": {"is_attack": False}}
    out = detection_delay(store, _CountingModel(), 0.5, labels, {})
    # the first hourly cut (t0 + 1h) sees 6 events (t0 .. t0+50min) and flags; replayed at its quarters, the
    # cut at t0 + 45min already sees 5 (t0 .. t0+40min) and flags, t0 + 30min (3 events) does not
    assert out["c1"] == {"exchanges": 60, "harvested_before_flag": 5, "share": 5 / 60, "detected": True, "via": "account"}


def test_detection_delay_counts_only_the_campaign_share_of_a_mixed_account():
    """A reseller carrying a campaign: its genuine end users' requests are not harvested exchanges."""
    from distillguard.store.duckdb import DuckDBStore
    from tests.factories import event_row, events_table

    t0 = 1_700_000_000.0
    rows = [event_row(i, account="reseller", ts=t0 + 600 * i) for i in range(60)]
    store = DuckDBStore(":memory:")
    store.append("events", events_table(rows))
    labels = {"reseller": {"is_attack": True, "campaign_id": "c1"}}
    campaign_events = {r["event_id"]: "c1" for r in rows[::4]}  # every 4th request is the campaign's
    out = detection_delay(store, _CountingModel(), 0.5, labels, campaign_events)
    # flagged at the first hourly cut, which has seen 6 requests of which 2 (events 0 and 4) are the campaign's
    assert out["c1"] == {"exchanges": 15, "harvested_before_flag": 2, "share": 2 / 15, "detected": True, "via": "account"}


class _BlindModel:
    """Flags no account: whatever is found, the end-user level found it."""

    def fit_population(self, frame):
        return self

    def score(self, frame):
        return np.zeros(len(frame))


def test_detection_delay_replays_the_end_users_sequential_test():
    """A campaign inside a reseller, 3 end-user ids far below the model path's 50 requests each, is
    flagged in the replay through the sequential test, as the scan would flag it: the three ids together
    (pooled) before any of them alone."""
    from distillguard.store.duckdb import DuckDBStore
    from distillguard.subaccounts import SubAccountConfig
    from tests.factories import event_row, events_table

    t0, rng = 1_700_000_000.0, np.random.default_rng(2)
    rows = []
    for i in range(1500):  # genuine customers: 300 end users, 5 requests each on average, 40% follow-ups
        follow = rng.random() < 0.4
        rows.append(event_row(i, account="reseller", ts=t0 + float(rng.uniform(0, 24 * 3600)), end_user_hash=int(rng.integers(0, 300)),
                              n_assistant_turns=2 if follow else 0, completion_tokens=int(rng.integers(30, 300))))  # fmt: skip
    campaign = []
    for k in range(72):  # 3 per hour over 24 h, round-robin over 3 ids: fresh prompts, long answers
        campaign.append(event_row(5000 + k, account="reseller", ts=t0 + 600 + 1200 * k, end_user_hash=10_000 + k % 3,
                                  prompt_tokens=60, completion_tokens=1000))  # fmt: skip
    store = DuckDBStore(":memory:")
    store.append("events", events_table(rows + campaign))
    labels = {"reseller": {"is_attack": True, "campaign_id": "c1"}}
    out = detection_delay(store, _BlindModel(), 0.5, labels, {r["event_id"]: "c1" for r in campaign})["c1"]
    assert out["detected"] and out["via"] == "end user (pooled test)"
    per_id_at_flag = out["harvested_before_flag"] / 3
    assert per_id_at_flag < SubAccountConfig().min_events and out["share"] < 0.5


def test_the_harvested_plot_shows_missed_campaigns_too(tmp_path):
    from distillguard.bench.quality import plot_harvested

    rows = [
        {"scenario": "a", "detection": {"c1": {"share": 0.004, "detected": True}, "c2": {"share": 1.0, "detected": False}}},
        {"scenario": "no replay"},  # a row without detection figures is left out, not an error
    ]
    plot_harvested(rows, tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
