"""End users inside shared accounts: the harvesting share of a reseller is found, genuine end users are not."""

from __future__ import annotations

import pytest

from distillguard.detectors.ensemble import Ensemble
from distillguard.features.account import compute_account_features
from distillguard.normalize import normalize_batch
from distillguard.privacy import Hasher
from distillguard.simulate.corpora import load_corpora
from distillguard.simulate.personas.base import merge_by_ts
from distillguard.simulate.personas.chat_user import ChatUser
from distillguard.simulate.personas.hydra_mixed_reseller import HydraMixedReseller
from distillguard.simulate.personas.reseller import Reseller
from distillguard.store.duckdb import DuckDBStore
from distillguard.subaccounts import SubAccountConfig, end_user_evidence, parent_of, score_end_users, sub_account_id
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
    found = score_end_users(store, frame, model, model.threshold, SubAccountConfig(min_events=10**6))
    assert found == []
    found = score_end_users(store, frame, model, model.threshold, SubAccountConfig(min_end_users=10**6))
    assert found == []
    found = score_end_users(store, frame, model, model.threshold)
    assert all(roles[f.account_id] != "chat_user" for f in found) and all(f.n_events >= 50 for f in found)


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
