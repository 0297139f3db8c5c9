"""End users inside shared accounts: the harvesting share of a reseller is found, genuine end users are not;
the sequential test finds it with fewer requests, and its false-alarm bound holds under the null."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from distillguard.detectors.ensemble import Ensemble
from distillguard.features.account import FEATURE_NAMES, account_features_sql, compute_account_features
from distillguard.normalize import normalize_batch
from distillguard.privacy import Hasher
from distillguard.simulate.corpora import load_corpora
from distillguard.simulate.personas.base import merge_by_ts
from distillguard.simulate.personas.chat_user import ChatUser
from distillguard.simulate.personas.hydra_mixed_reseller import HydraMixedReseller
from distillguard.simulate.personas.reseller import Reseller
from distillguard.store.duckdb import DuckDBStore
from distillguard.sequential import HarvestProfile, SequentialTest
from distillguard.subaccounts import (
    END_USER_EVENTS_TABLE, SubAccountConfig, _end_user_view, end_user_evidence, end_user_features, parent_of, score_end_users,
    sequential_evidence, sub_account_id,
)  # fmt: skip
from tests.factories import CAMPAIGN_END_USERS, T0, chat_account_rows, event_row, genuine_rows, harvest_rows, small_share_rows
from tests.simulate.conftest import bind

HASHER = Hasher(b"test-secret")


@pytest.fixture(scope="module")
def reseller_store():
    sample_corpora = load_corpora(sample=True)
    personas = [
        bind(ChatUser(ChatUser.Knobs(accounts=40), key="000:chat"), sample_corpora, seed=1),
        bind(Reseller(Reseller.Knobs(accounts=2, requests_per_day=900, end_users=300), key="001:reseller"), sample_corpora, seed=2),
        bind(HydraMixedReseller(HydraMixedReseller.Knobs(accounts=1, requests_per_day=900, end_users=300, attack_share=0.3,
                                                         attack_end_users=3), key="002:mixed", campaign_id="camp-a"), sample_corpora, seed=3),
        bind(HydraMixedReseller(HydraMixedReseller.Knobs(accounts=1, requests_per_day=900, end_users=300, attack_share=0.3,
                                                         attack_end_users=0), key="003:mixed", campaign_id="camp-b"), sample_corpora, seed=4),
    ]  # fmt: skip
    events = list(merge_by_ts(tuple(p.events() for p in personas)))
    store = DuckDBStore()
    store.append("events", normalize_batch(events, HASHER).events)
    roles = {r["account_id"]: r["persona"] for p in personas for r in p.labels()}
    attackers = {
        a.account_id: [HASHER.hash(u) for u in getattr(a, "attack_users", [])] for p in personas[2:] for a in p.accts
    }
    frame = compute_account_features(store)
    model = Ensemble.load()
    model.fit_population(frame)
    return store, frame, model, roles, attackers


def test_sub_account_ids_round_trip():
    assert parent_of(sub_account_id("acct#1", 42)) == "acct#1"
    assert sub_account_id("a", None).endswith("none")


def test_harvesting_end_users_are_flagged_and_genuine_ones_are_not(reseller_store):
    store, frame, model, roles, attackers = reseller_store
    found = score_end_users(store, frame, model, model.threshold)
    flagged = [f for f in found if f.flagged]
    assert {f.account_id for f in flagged} == set(attackers)  # both mixed resellers, no genuine reseller
    for account_id, users in attackers.items():
        mine = {f.end_user for f in flagged if f.account_id == account_id}
        expected = {str(u) for u in users} or {"none"}  # no end-user id set: the id-less requests are the unit
        assert mine == expected
    assert all(roles[f.account_id] == "reseller" for f in found if f.account_id not in attackers)
    top = flagged[0]
    assert top.est_exchanges > 0 and 0 < top.share < 0.5 and top.evidence
    assert "end user" in end_user_evidence(flagged).detail or "without an end-user id" in end_user_evidence(flagged).detail


def test_the_account_alone_does_not_see_the_mixed_share(reseller_store):
    """Why the sub-account unit exists: the mixed accounts' own scores stay low at this share."""
    store, frame, model, roles, attackers = reseller_store
    own = dict(zip(frame.index, model.score(frame), strict=True))
    subs: dict[str, float] = {}
    for f in score_end_users(store, frame, model, model.threshold):
        subs[f.account_id] = max(subs.get(f.account_id, 0.0), f.score)
    assert all(subs[a] > own[a] for a in attackers)


def test_small_end_users_and_unshared_accounts_are_not_scored(reseller_store):
    store, frame, model, roles, attackers = reseller_store
    found = score_end_users(store, frame, model, model.threshold, SubAccountConfig(min_events=10**6, sequential=None))
    assert found == []
    found = score_end_users(store, frame, model, model.threshold, SubAccountConfig(min_end_users=10**6))
    assert found == []
    # below min_events only the sequential test speaks, and only to flag
    found = score_end_users(store, frame, model, model.threshold, SubAccountConfig(min_events=10**6))
    assert found and all(f.flagged and f.model_score is None and f.account_id in attackers for f in found)
    found = score_end_users(store, frame, model, model.threshold)
    assert all(roles[f.account_id] != "chat_user" for f in found) and all(f.n_events >= 50 or f.flagged for f in found)


def test_end_users_under_min_events_are_left_out_before_the_features_and_the_rest_are_unchanged(reseller_store):
    store, frame, *_ = reseller_store
    every = end_user_features(store, frame, SubAccountConfig(min_events=1))
    counts = every["n_events"]
    cut = int(counts.quantile(0.9))
    assert (counts < cut).any() and (counts >= cut).any()
    kept = end_user_features(store, frame, SubAccountConfig(min_events=cut))
    assert sorted(kept.index) == sorted(counts.index[counts >= cut])
    # the features of the end users kept read their own events only (and the whole population)
    pd.testing.assert_frame_equal(kept.sort_index(), every.loc[kept.index].sort_index(), check_exact=False, rtol=1e-12)
    # from the copy of their events as from the view the copy is made of, and the copy is dropped
    shared = pd.DataFrame({"account_id": sorted(every["parent_account"].unique())})
    store.con.register("_test_shared", shared)
    viewed = store.query(account_features_sql(_end_user_view("_test_shared", None, cut), population="events")).to_pandas()
    viewed = viewed.set_index("account_id")[list(FEATURE_NAMES)].astype("float64").fillna(0.0)
    pd.testing.assert_frame_equal(kept[list(FEATURE_NAMES)].sort_index(), viewed.sort_index(), check_exact=False, rtol=1e-12)
    assert not store.con.execute("SELECT table_name FROM duckdb_tables() WHERE table_name = ?", [END_USER_EVENTS_TABLE]).fetchall()


def test_scan_flags_the_shared_account_with_its_end_users_harvest(reseller_store):
    from distillguard.scan import score_accounts

    store, frame, model, roles, attackers = reseller_store
    own = dict(zip(frame.index, model.score(frame), strict=True))
    findings, _ = score_accounts(frame.copy(), model, model.threshold, store, link=False)
    by_id = {f.account_id: f for f in findings}
    for account_id in attackers:
        f = by_id[account_id]
        assert f.flagged and f.flagged_end_users and f.evidence[0].detector == "end_users"
        harvested = sum(sub["est_exchanges"] for sub in f.flagged_end_users)
        # flagged only through its end users: the harvest is theirs, not the whole reseller's traffic
        expected = harvested if own[account_id] < model.threshold else int(frame.at[account_id, "n_success"])
        assert 0 < f.est_exchanges == expected
    genuine = [f for f in findings if roles[f.account_id] == "reseller" and f.account_id not in attackers]
    assert genuine and not any(f.flagged or f.flagged_end_users for f in genuine)
    without, _ = score_accounts(frame.copy(), model, model.threshold, store, link=False, end_users=None)
    assert all(not f.flagged_end_users for f in without)


# --------------------------------------------------------------------------- the sequential test
# Small stores built from factory rows: a reseller whose genuine customers chat, follow up and
# sometimes paste an instruction-set prompt, and campaigns hidden among them at a small share.

def _store(rows: list[dict]):
    from tests.factories import events_table

    store = DuckDBStore()
    store.append("events", events_table(rows))
    frame = compute_account_features(store)
    model = Ensemble.load()
    model.fit_population(frame)
    return store, frame, model


CAMPAIGN = CAMPAIGN_END_USERS


@pytest.fixture(scope="module")
def small_share_store():
    """Reseller R: 2,000 genuine requests over 300 end users plus 60 campaign requests (3%) over 4 ids
    (15 each, under the model path's 50); reseller G: genuine only."""
    return _store(small_share_rows())


def test_a_small_share_campaign_is_flagged_before_its_ids_reach_min_events(small_share_store):
    store, frame, model = small_share_store
    before = score_end_users(store, frame, model, model.threshold, SubAccountConfig(sequential=None))
    assert not any(f.flagged for f in before)  # the model path waits for 50 requests per end user
    found = score_end_users(store, frame, model, model.threshold)
    flagged = {(f.account_id, f.end_user) for f in found if f.flagged}
    assert flagged == {("R", str(u)) for u in CAMPAIGN}
    for f in found:
        if f.flagged:
            assert f.n_events < SubAccountConfig().min_events and f.model_score is None
            assert f.evidence_nats >= f.evidence_needed and f.score >= 1 - SubAccountConfig().sequential.alpha
            assert f.evidence[0].detector == "sequential" and "nats" in f.evidence[0].detail
            assert f.est_exchanges == f.n_events  # every campaign request succeeded


def test_the_scan_lifts_the_reseller_through_its_sequentially_flagged_end_users(small_share_store):
    from distillguard.scan import score_accounts

    store, frame, model = small_share_store
    findings, _ = score_accounts(frame.copy(), model, model.threshold, store, link=False)
    by_id = {f.account_id: f for f in findings}
    assert by_id["R"].flagged and {s["end_user"] for s in by_id["R"].flagged_end_users} == {str(u) for u in CAMPAIGN}
    assert by_id["R"].est_exchanges == 60  # the campaign's requests, not the reseller's 2,060
    assert not by_id["G"].flagged and not any(by_id[f"chat-{a}"].flagged for a in range(12))


@pytest.mark.parametrize(
    "habit",
    [
        {"completion_tokens": 120},  # an API power user: only fresh prompts, short answers
        {"completion_tokens": 12, "benchmark_name": "mmlu"},  # an evaluation pipeline: benchmark prompts, short answers
        {"completion_tokens": 150, "rubric_grading": True},  # an LLM-as-judge pipeline
        {"n_assistant_turns": 3, "prompt_tokens": 900, "completion_tokens": 1200},  # long chats: long answers in follow-ups
    ],
)
def test_a_genuine_end_user_with_one_habit_on_every_request_drifts_away_from_the_threshold(habit):
    """Hundreds of requests that all share one benign habit, much commoner in this end user than in
    the account, give negative evidence: no indicator of the test is a habit on its own."""
    rng = np.random.default_rng(11)
    rows = genuine_rows(rng, "G", 400, 4000) + harvest_rows(rng, "G", [7777], 400, start=50_000, hours=48, **habit)
    store, frame, _ = _store(rows + chat_account_rows(rng))
    ev = sequential_evidence(store, ["G"], SequentialTest())
    assert not ev["flagged"].any()
    assert ev.loc["G#eu:7777", "llr"] < 0 and ev.loc["G#eu:7777", "n"] == 400


def test_under_the_null_no_unit_crosses_the_threshold():
    """Ville's bound, checked: 2,000 end users whose requests are drawn from one distribution (the
    account's own), with harvest indicators at realistic rates, and none is flagged (P <= alpha)."""
    rng = np.random.default_rng(3)
    rows = []
    for k in range(20_000):
        single = rng.random() < 0.6
        rows.append(event_row(
            k, "N", T0 + k * 5.0, end_user_hash=int(rng.integers(0, 2000)), n_assistant_turns=0 if single else 2,
            prompt_tokens=60, completion_tokens=900 if rng.random() < 0.15 else 100,
            benchmark_name="gsm8k" if rng.random() < 0.1 else None, completion_has_reasoning=bool(rng.random() < 0.07),
            reasoning_elicit=bool(rng.random() < 0.01), rubric_grading=bool(rng.random() < 0.005),
        ))  # fmt: skip
    store = DuckDBStore()
    from tests.factories import events_table

    store.append("events", events_table(rows))
    ev = sequential_evidence(store, ["N"], SequentialTest())
    assert len(ev) == 2000 and not ev["flagged"].any()
    assert (ev["needed"] - ev["llr"]).min() > 2.0  # not a near miss either
    assert (ev["pooled_needed"] - ev["pooled"]).min() > 2.0  # nor for the pooled test over all 2,000


@pytest.mark.parametrize(
    "shape, profile",
    [
        ({}, "answer_harvest"),  # plain: fresh prompts, long answers, nothing from a benchmark
        ({"reasoning_elicit": True, "completion_tokens": 200}, "reasoning_harvest"),  # traces asked for, answers not long
    ],
)
def test_each_kind_of_campaign_fits_its_own_profile(shape, profile):
    """Why a mixture of profiles: a reasoning-coercion campaign need not get long answers, a plain
    answer harvest asks for no reasoning; each is caught by the profile that describes it."""
    rng = np.random.default_rng(5)
    rows = genuine_rows(rng, "R", 300, 2000) + harvest_rows(rng, "R", CAMPAIGN[:2], 40, start=10_000, hours=48, **shape)
    store, frame, _ = _store(rows + chat_account_rows(rng))
    test = SequentialTest()
    ev = sequential_evidence(store, ["R"], test)
    campaign = ev.loc[[f"R#eu:{u}" for u in CAMPAIGN[:2]]]
    assert campaign["flagged"].all() and not ev.drop(campaign.index)["flagged"].any()
    assert {test.profiles[k].name for k in campaign["profile"]} == {profile}


def test_a_larger_account_asks_for_more_evidence_and_alpha_sets_it():
    test = SequentialTest(alpha=0.001)
    assert test.threshold(2000) > test.threshold(20)
    # alpha is split evenly between the one-unit test (Bonferroni over the units) and the pooled test
    assert abs(test.threshold(1000) - np.log(1000 / 0.0005)) < 1e-9 and abs(test.pooled_threshold() - np.log(2 / 0.001)) < 1e-9
    assert abs(SequentialTest(shares=()).threshold(1000) - np.log(1000 / 0.001)) < 1e-9
    assert SequentialTest(alpha=0.01).threshold(1000) < test.threshold(1000)
    with pytest.raises(ValueError, match="campaign share"):
        SequentialTest(shares=(0.0, 0.5))
    with pytest.raises(ValueError, match="unknown harvest indicator"):
        SequentialTest(profiles=(HarvestProfile("x", "x", (("max_tokens", 1.0),)),))


def test_an_account_id_holding_the_separator_keeps_its_end_users_apart():
    from distillguard.subaccounts import SEPARATOR, parent_of, sub_account_id

    odd = f"tenant{SEPARATOR}7"
    assert parent_of(sub_account_id(odd, 42)) == odd
    assert parent_of(sub_account_id(odd, None)) == odd


def test_a_campaign_too_thin_for_any_one_id_is_flagged_by_the_pooled_test():
    """Eight ids with five requests each: no id is conclusive alone, together they are; the pooled
    test flags exactly them, and without it (``shares=()``) nothing is flagged."""
    rng = np.random.default_rng(13)
    thin = list(range(9101, 9109))
    rows = genuine_rows(rng, "R", 300, 2000) + harvest_rows(rng, "R", thin, 40, start=20_000, hours=48) + chat_account_rows(rng)
    store, frame, model = _store(rows)
    alone = sequential_evidence(store, ["R"], SequentialTest(shares=()))
    assert not alone["flagged"].any()
    ev = sequential_evidence(store, ["R"], SequentialTest())
    ids = [f"R#eu:{u}" for u in thin]
    assert set(ev.index[ev["flagged"]]) == set(ids) and ev.loc[ids, "flagged_pooled"].all()
    assert (ev.loc[ids, "llr"] < ev.loc[ids, "needed"]).all() and (ev["pooled"] >= ev["pooled_needed"]).all()
    found = {f.end_user: f for f in score_end_users(store, frame, model, model.threshold) if f.flagged}
    assert set(found) == {str(u) for u in thin}
    f = found[str(thin[0])]
    assert f.flagged_by == "pooled test" and f.harvest_posterior >= 0.9 and f.pooled_nats >= f.pooled_needed
    assert f.evidence[0].title == "Harvest-shaped requests from several end users at once" and "chance" in f.evidence[0].detail


def test_a_unit_that_is_most_of_its_account_is_judged_against_all_of_it():
    """Worked example, and why the reference keeps the unit's own requests: an end user sending 20 of an
    account's 22 requests, all fresh and long.  Against the other two requests alone (no harvest-shaped
    one among them) Z would be exactly 1 and this user's 40 nats would flag it; against the whole
    account it is ordinary, LLR = sum(s) - n ln(UCB of Z over all 22 requests), about half a nat."""
    rows = [event_row(k, "A", T0 + k, end_user_hash=0 if k < 20 else k, n_assistant_turns=0, prompt_tokens=50,
                      completion_tokens=1000 if k < 20 else 40) for k in range(22)]  # fmt: skip
    from tests.factories import events_table

    store = DuckDBStore()
    store.append("events", events_table(rows))
    test = SequentialTest(profiles=(HarvestProfile("a", "a", (("fresh_long_answer", 2.0),)),), z_sigmas=1.0)
    ev = sequential_evidence(store, ["A"], test)
    ref = np.array([np.e**2] * 20 + [1.0] * 2)
    expected = 20 * 2.0 - 20 * np.log(ref.mean() + ref.std(ddof=1) / np.sqrt(22))
    # 1e-5: the reference's spread is summed in steps of 2**-16 (sql.exact_stddev_samp), so that it does not depend on row order
    assert abs(ev.loc["A#eu:0", "llr"] - expected) < 1e-5 and expected < 1.0
    assert not ev["flagged"].any()
