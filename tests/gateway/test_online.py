"""Online scoring: simulated traffic in, risk records out, with the batch scan's features and detectors."""

from __future__ import annotations

import time

import numpy as np
import pytest

from distillguard.detectors.ensemble import Ensemble
from distillguard.features.account import FEATURE_NAMES, compute_account_features
from distillguard.gateway.online import OnlineScorer
from distillguard.gateway.state import ONLINE, MemoryState
from distillguard.store.duckdb import DuckDBStore
from distillguard.subaccount_ids import sub_account_id
from tests.factories import CAMPAIGN_END_USERS, event_row, events_table, small_share_rows


def _feed(scorer: OnlineScorer, events, chunks: int = 4) -> None:
    """Feed events as the recorder's flushes would, letting the scorer step after each."""
    step = -(-events.num_rows // chunks)
    for i in range(0, events.num_rows, step):
        scorer.observe(events.slice(i, step))
        scorer.step()


@pytest.fixture(scope="module")
def scored(demo_traffic):
    events, labels = demo_traffic
    state = MemoryState()
    scorer = OnlineScorer(state.risk, rescore_interval_s=0.0)
    _feed(scorer, events)
    return state, scorer, labels


def _records(state, labels, persona):
    out = [state.risk.get(ONLINE, a) for a, lab in labels.items() if lab["persona"] == persona]
    return [r for r in out if r is not None]


def test_harvesting_accounts_rise_above_the_threshold_and_benign_ones_do_not(scored):
    state, scorer, labels = scored
    for persona in ("reasoning_coercion", "logprob_harvest", "naive_bulk", "tool_use_harvest"):
        records = _records(state, labels, persona)
        assert records, persona
        assert all(r["flagged"] and r["score"] >= scorer.threshold for r in records), (persona, records)
    coercion = _records(state, labels, "reasoning_coercion")[0]
    assert "reasoning_trace_coercion" in coercion["rule_ids"]
    assert "Reasoning-trace coercion" in coercion["evidence"][0]
    benign = [r for a, lab in labels.items() if not lab["is_attack"] and (r := state.risk.get(ONLINE, a))]
    assert len(benign) >= 20
    assert not [r for r in benign if r["flagged"]], "a genuine account was flagged online"
    for persona in ("batch_pipeline", "eval_run", "chat_user", "corporate_nat"):  # hard negatives included
        assert all(r["score"] < scorer.threshold for r in _records(state, labels, persona))


def test_online_scores_equal_the_batch_scans_on_the_same_events(demo_traffic, scored):
    events, _ = demo_traffic
    state, scorer, _ = scored
    batch_store = DuckDBStore(":memory:")
    batch_store.append("events", events)
    frame = compute_account_features(batch_store)
    batch = Ensemble.load()
    batch.fit_population(frame[list(FEATURE_NAMES)])
    want = dict(zip(frame.index, batch.score(frame), strict=True))
    scorer.rescore(list(frame.index), refit=True)  # population fitted on the whole window, as the batch scan does
    got = {a: state.risk.get(ONLINE, a)["score"] for a in frame.index if frame.loc[a, "n_events"] >= scorer.min_events}
    assert got
    np.testing.assert_allclose([got[a] for a in got], [want[a] for a in got], atol=1e-5)


def test_only_changed_accounts_are_rescored(demo_traffic, scored):
    state, scorer, _ = scored
    before = scorer.stats.accounts_scored
    t_end = max(demo_traffic[0].column("ts").to_pylist())
    rows = [event_row(i, "acct-late", t_end + i * 30.0) for i in range(6)]
    scorer.observe(events_table(rows))
    records = scorer.step()
    assert [r.subject for r in records] == ["acct-late"]
    assert scorer.stats.accounts_scored == before + 1
    assert state.risk.get(ONLINE, "acct-late")["n_events"] == 6


def test_window_evicts_by_event_time_and_caps_events():
    scorer = OnlineScorer(MemoryState().risk, window_s=3600.0, max_events=50, rescore_interval_s=3600.0)
    scorer.observe(events_table([event_row(i, "old", 1.7e9 + i) for i in range(30)]))
    scorer.observe(events_table([event_row(i, "new", 1.7e9 + 7200 + i) for i in range(80)]))
    scorer.ingest_pending()
    left = scorer.store.query("SELECT account_id, count(*) AS n FROM events GROUP BY 1").to_pylist()
    assert left == [{"account_id": "new", "n": 50}]
    assert scorer.stats.events_in_window == 50
    scorer.observe(events_table([event_row(i, "new", 1.7e9 + 7200 + i) for i in range(80)]))  # replayed: no duplicates
    scorer.ingest_pending()
    assert scorer.stats.events_in_window == 50


def test_few_events_are_not_scored_and_observe_never_blocks():
    state = MemoryState()
    scorer = OnlineScorer(state.risk, rescore_interval_s=0.0, min_events=5, max_pending_batches=2)
    rows = [event_row(i, "light", 1.7e9 + i * 60.0) for i in range(3)]
    for _ in range(3):
        scorer.observe(events_table(rows))
    assert scorer.stats.batches_dropped == 1
    assert scorer.step() == [] and state.risk.get(ONLINE, "light") is None


def test_background_thread_scores_and_stops(demo_traffic):
    events, labels = demo_traffic
    state = MemoryState()
    scorer = OnlineScorer(state.risk, rescore_interval_s=0.05).start()
    try:
        scorer.observe(events)
        harvester = next(a for a, lab in labels.items() if lab["persona"] == "logprob_harvest")
        deadline = time.monotonic() + 20
        while state.risk.get(ONLINE, harvester) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.risk.get(ONLINE, harvester)["flagged"]
    finally:
        scorer.close()
    assert scorer.stats.errors == 0


def test_a_busy_account_is_rescored_at_most_every_min_rescore_interval():
    state = MemoryState()
    scorer = OnlineScorer(state.risk, rescore_interval_s=10.0, rescore_after_events=20, min_rescore_interval_s=5.0)
    assert scorer.min_rescore_interval_s == 5.0
    t, n = 1000.0, 0

    def burst(account: str, k: int) -> None:
        nonlocal n
        scorer.observe(events_table([event_row(n + i, account, 1.7e9 + n + i) for i in range(k)]))
        n += k

    burst("hot", 30)
    assert [r.subject for r in scorer.step(now=t)] == ["hot"]  # crossed rescore_after_events
    for dt in (1.0, 2.0, 3.0, 4.0):  # keeps crossing it every second, but waits out its 5 s
        burst("hot", 30)
        assert scorer.step(now=t + dt) == [] and not scorer.due(now=t + dt)
    assert scorer.stats.rescores == 1 and scorer._new_events["hot"] == 120  # its new events are kept
    burst("hot", 30)
    burst("quiet", 6)  # an early rescore takes every eligible changed account along
    assert [r.subject for r in scorer.step(now=t + 5.0)] == ["hot", "quiet"]
    assert not scorer._new_events
    burst("quiet", 6)  # below rescore_after_events: waits for the periodic rescore
    assert scorer.step(now=t + 6.0) == [] and scorer.step(now=t + 14.0) == []
    assert [r.subject for r in scorer.step(now=t + 15.0)] == ["quiet"]  # the periodic sweep
    assert not scorer.due(now=t + 100.0)  # nothing new: no rescore, no statement


def test_min_rescore_interval_never_exceeds_the_periodic_interval():
    scorer = OnlineScorer(MemoryState().risk, rescore_interval_s=0.0)
    assert scorer.min_rescore_interval_s == 0.0


CAMPAIGN = CAMPAIGN_END_USERS


def _reseller_traffic(seed: int = 7) -> list[dict]:
    return sorted(small_share_rows(seed), key=lambda r: r["ts"])


@pytest.mark.parametrize("restarted", [False, True], ids=["same-scorer", "restarted-scorer"])
def test_a_harvesting_end_user_inside_a_reseller_is_flagged_online_and_cleared_when_it_stops(restarted):
    """Cleared by the scorer that flagged it, or by a new one (a restart; shared state keeps the records)."""
    state = MemoryState()
    scorer = OnlineScorer(state.risk, rescore_interval_s=0.0, min_rescore_interval_s=0.0, window_s=3 * 86400.0)
    _feed(scorer, events_table(_reseller_traffic()))
    campaign = {sub_account_id("R", u) for u in CAMPAIGN}
    for subject in campaign:
        record = state.risk.get(ONLINE, subject)
        assert record is not None and record["flagged"] and record["score"] >= scorer.threshold, subject
        assert record["extra"]["account_id"] == "R" and record["extra"]["flagged_by"] in ("sequential test", "pooled test", "model")
    reseller = state.risk.get(ONLINE, "R")
    assert reseller["extra"]["flagged_end_users"] == len(CAMPAIGN) and set(reseller["extra"]["flagged_end_user_ids"]) == campaign
    assert not reseller["flagged"]  # its own score: the policy does not fall on its 300 genuine customers
    assert "flagged_end_users" not in state.risk.get(ONLINE, "G")["extra"]
    flagged_subjects = {k for k in state.risk.keys(ONLINE, 100_000) if "#eu:" in k and state.risk.get(ONLINE, k)["flagged"]}
    assert flagged_subjects == campaign  # no genuine end user of R or G
    assert scorer.stats.end_users_flagged == len(CAMPAIGN)

    # four days later R's customers are still there and the campaign is gone: it leaves the window, its records clear
    later = [dict(r, event_id=f"later-{r['event_id']}", ts=r["ts"] + 4 * 86400.0) for r in _reseller_traffic(seed=8)
             if not (r["account_id"] == "R" and r["end_user_hash"] in CAMPAIGN)]  # fmt: skip
    if restarted:
        scorer = OnlineScorer(state.risk, rescore_interval_s=0.0, min_rescore_interval_s=0.0, window_s=3 * 86400.0)
    _feed(scorer, events_table(later))
    assert all(not state.risk.get(ONLINE, s)["flagged"] for s in campaign)
    assert "flagged_end_users" not in state.risk.get(ONLINE, "R")["extra"]
    assert scorer.stats.end_users_flagged == 0


def test_end_users_are_not_judged_online_when_switched_off():
    state = MemoryState()
    scorer = OnlineScorer(state.risk, rescore_interval_s=0.0, min_rescore_interval_s=0.0, window_s=3 * 86400.0, end_users=None)
    _feed(scorer, events_table(_reseller_traffic()))
    assert state.risk.get(ONLINE, "R") is not None
    assert not [k for k in state.risk.keys(ONLINE, 100_000) if "#eu:" in k]
