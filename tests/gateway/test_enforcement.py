"""The enforcer end to end: online risk → policy → buckets → decisions; overrides; shadow; admin; Redis sharing."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from distillguard.errors import ConfigError
from distillguard.gateway.config import GatewayConfig
from distillguard.gateway.enforcement import PolicyEnforcer, build_enforcer
from distillguard.gateway.online import OnlineScorer
from distillguard.gateway.policy import Policy
from distillguard.gateway.state import CLUSTER, ONLINE, SCAN, MemoryState
from distillguard.gateway.state.redis import RedisState
from distillguard.gateway.types import Action, RequestInfo
from distillguard.privacy import Hasher
from distillguard.subaccount_ids import sub_account_id

THROTTLE = {
    "rules": [
        {"name": "throttle-flagged", "when": {"flagged": True}, "actions": ["throttle", "strip_logprobs"],
         "throttle": {"unit": "tokens", "account": {"rate": 1, "burst": 3000}, "cluster": {"rate": 1, "burst": 5000}}},
        {"name": "watch", "when": {"score_gte": 0.3}, "actions": ["flag"]},
    ]
}  # fmt: skip


def request(account, tokens=1000, end_user=None, **body):
    return RequestInfo(account, "/v1/chat/completions", body, end_user=end_user, est_tokens=tokens)


def run(enforcer, *requests):
    async def go():
        return [await enforcer.decide(r) for r in requests]

    return asyncio.run(go())


def test_online_risk_throttles_a_harvester_and_leaves_a_genuine_account_alone(demo_traffic):
    events, labels = demo_traffic
    state = MemoryState()
    enforcer = PolicyEnforcer(Policy.from_dict(THROTTLE), state, OnlineScorer(state.risk, rescore_interval_s=0.0), start=False)
    harvester = next(a for a, lab in labels.items() if lab["persona"] == "reasoning_coercion")
    genuine = next(a for a, lab in labels.items() if lab["persona"] == "batch_pipeline")
    assert run(enforcer, request(harvester))[0].actions == (Action.ALLOW,)  # nothing known yet
    enforcer.observe(events)  # what the recorder does after each flush
    enforcer.scorer.step()
    first, second, third = run(enforcer, *(request(harvester, 1400) for _ in range(3)))
    assert first.policy_rule == "throttle-flagged" and first.actions == (Action.STRIP_LOGPROBS,) and not first.refuses
    assert third.refuses and third.status == 429 and Action.THROTTLE in third.actions and third.retry_after_s > 0
    assert "Reasoning-trace coercion" in third.reason and "flagged by online" in third.reason
    assert third.error_body()["error"]["type"] == "rate_limit_error"
    assert "retry after" in third.error_body()["error"]["message"]
    assert all(d.actions == (Action.ALLOW,) for d in run(enforcer, *(request(genuine, 5000) for _ in range(20))))
    log = enforcer.decisions(account_id=harvester)
    assert [d["status"] for d in log] == [429, None, None] and log[0]["ts"] >= log[-1]["ts"]
    risk = enforcer.account_risk(harvester)
    assert risk["online_flagged"] and "reasoning_trace_coercion" in risk["signals"]
    assert risk["buckets"]["throttle-flagged/account"]["level"] < 300
    enforcer.close()


def test_cluster_bucket_is_shared_by_the_clusters_members():
    state = MemoryState()
    for account in ("h1", "h2", "h3"):
        state.risk.put(SCAN, account, {"score": 0.9, "flagged": True, "cluster_id": "c9"})
    state.risk.put(CLUSTER, "c9", {"score": 0.95, "flagged": True, "members": ["h1", "h2", "h3"], "n_members": 3})
    enforcer = PolicyEnforcer(Policy.from_dict(THROTTLE), state, online=False)
    decisions = run(enforcer, request("h1", 2000), request("h2", 2000), request("h3", 2000))
    assert [d.refuses for d in decisions] == [False, False, True]  # each account's bucket is fine; the cluster's is not
    assert "cluster" in decisions[2].reason
    assert enforcer.cluster_risk("c9")["buckets"]["throttle-flagged"]["level"] < 1001
    assert enforcer.cluster_risk("c9")["members"] == ["h1", "h2", "h3"]


def test_overrides_win_even_in_shadow_mode():
    state = MemoryState()
    state.risk.put(ONLINE, "a", {"score": 0.99, "flagged": True})
    shadow = {"mode": "shadow", "rules": [{"name": "block-flagged", "when": {"flagged": True}, "actions": ["block"]}]}
    enforcer = PolicyEnforcer(Policy.from_dict(shadow), state, online=False)
    (dry,) = run(enforcer, request("a"))
    assert dry.shadow and dry.status == 403 and not dry.refuses and not dry.enforced
    enforcer.set_override("b", Action.BLOCK, "stolen card", by="alice")
    (blocked,) = run(enforcer, request("b"))
    assert blocked.refuses and blocked.policy_rule == "override" and "alice: stolen card" in blocked.reason
    enforcer.set_override("a", Action.ALLOW, "known research partner")
    assert run(enforcer, request("a"))[0].actions == (Action.ALLOW,)
    assert enforcer.account_risk("a")["override"]["action"] == "allow"
    assert enforcer.clear_override("a") and not enforcer.clear_override("a")
    assert run(enforcer, request("a"))[0].shadow
    with pytest.raises(ValueError):
        enforcer.set_override("a", Action.THROTTLE, "no")
    assert {"block-flagged:block", "override:block", "override:allow"} <= set(enforcer.stats()["decisions"])


def test_policy_file_changes_take_effect_without_restart(tmp_path):
    path = tmp_path / "policy.yml"
    path.write_text("rules: [{name: watch, when: {score_gte: 0.5}, actions: [flag]}]")
    enforcer = build_enforcer(policy_path=str(path), online=False, policy_check_interval_s=0.0)
    enforcer.state.risk.put(ONLINE, "a", {"score": 0.8, "flagged": True})
    assert run(enforcer, request("a"))[0].actions == (Action.FLAG,)
    path.write_text("rules: [{name: stop, when: {score_gte: 0.5}, actions: [block]}]")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert run(enforcer, request("a"))[0].status == 403


def test_build_enforcer_reads_a_gateway_config(tmp_path):
    cfg = GatewayConfig(policy_path=None, redis_url=None)
    enforcer = build_enforcer(cfg, online=False)
    assert enforcer.policy.source.endswith("default.yml") and not enforcer.state.shared
    with pytest.raises(ConfigError, match="unknown enforcer option"):
        build_enforcer(cfg, polcy_path="x")
    with pytest.raises(ConfigError, match="not found"):
        build_enforcer(policy_path=str(tmp_path / "missing.yml"), online=False)


def test_decision_log_is_bounded_and_skips_plain_allows():
    state = MemoryState()
    state.risk.put(ONLINE, "s", {"score": 0.4})
    enforcer = PolicyEnforcer(Policy.from_dict(THROTTLE), state, online=False, decision_log_size=5)
    run(enforcer, *(request("s") for _ in range(8)), *(request("nobody") for _ in range(3)))
    log = enforcer.decisions()
    assert len(log) == 5 and {d["policy_rule"] for d in log} == {"watch"}
    assert enforcer.decisions(limit=2, account_id="nobody") == []


def test_an_end_users_record_decides_for_it_and_the_accounts_for_the_rest():
    hasher = Hasher(b"k")
    state = MemoryState()
    mallory = sub_account_id("reseller", hasher.hash("mallory"))
    state.risk.put(SCAN, mallory, {"score": 0.95, "flagged": True})
    state.risk.put(SCAN, "reseller", {"score": 0.4, "extra": {"flagged_end_users": 1}})  # as load_scan_decisions marks it
    enforcer = PolicyEnforcer(Policy.from_dict(THROTTLE), state, online=False, hasher=hasher)
    hit, other, anonymous = run(enforcer, request("reseller", 2500, "mallory"), request("reseller", 2500, "alice"), request("reseller", 2500))
    assert hit.policy_rule == "throttle-flagged" and hit.sub_account_id == mallory and hit.score == 0.95
    assert other.policy_rule == anonymous.policy_rule == "watch" and other.sub_account_id is None and other.score == 0.4
    assert run(enforcer, request("reseller", 2500, "mallory"))[0].refuses  # its own bucket, 3,000 deep
    assert not run(enforcer, request("reseller", 2500, "alice"))[0].refuses
    enforcer.set_override(mallory, Action.ALLOW, "false positive, confirmed with the reseller")
    assert run(enforcer, request("reseller", 2500, "mallory"))[0].actions == (Action.ALLOW,)
    enforcer.set_override("reseller", Action.BLOCK, "reseller terminated")  # the account's override covers every end user
    assert all(d.status == 403 for d in run(enforcer, request("reseller", 1, "mallory"), request("reseller", 1, "alice")))


def test_a_flagged_end_user_does_not_escape_what_holds_for_its_whole_account():
    hasher = Hasher(b"k")
    state = MemoryState()
    mallory = sub_account_id("reseller", hasher.hash("mallory"))
    state.risk.put(SCAN, mallory, {"score": 0.5, "flagged": False})  # its cluster is the account's
    state.risk.put(SCAN, "reseller", {"score": 0.4, "cluster_id": "c1", "extra": {"flagged_end_users": 1}})
    state.risk.put(CLUSTER, "c1", {"score": 0.99, "flagged": True})
    state.risk.put(ONLINE, "reseller", {"score": 0.9, "flagged": True})
    policy = Policy.from_dict({"rules": [{"name": "block-cluster", "when": {"cluster_flagged": True}, "actions": ["block"]}]})
    enforcer = PolicyEnforcer(policy, state, online=False, hasher=hasher)
    hit, other = run(enforcer, request("reseller", 10, "mallory"), request("reseller", 10, "alice"))
    assert hit.status == other.status == 403 and hit.sub_account_id == mallory and other.sub_account_id is None
    assert hit.score == 0.9  # the account's online risk still counts for its end user


def test_end_users_are_looked_up_only_in_accounts_the_scan_found_flagged_end_users_in():
    hasher = Hasher(b"k")
    state = MemoryState()
    state.risk.put(SCAN, sub_account_id("plain", hasher.hash("mallory")), {"score": 0.95, "flagged": True})
    state.risk.put(SCAN, "plain", {"score": 0.4})  # no flagged_end_users marker: one lookup, no HMAC
    enforcer = PolicyEnforcer(Policy.from_dict(THROTTLE), state, online=False, hasher=hasher)
    assert run(enforcer, request("plain", 10, "mallory"))[0].policy_rule == "watch"


def test_an_end_user_flagged_by_online_scoring_is_judged_on_its_online_record():
    """Online scoring marks the account (its own score unlifted) and writes the end user's record."""
    hasher = Hasher(b"k")
    state = MemoryState()
    mallory = sub_account_id("reseller", hasher.hash("mallory"))
    state.risk.put(ONLINE, mallory, {"score": 0.95, "flagged": True, "rule_ids": ["reasoning_trace_coercion"]})
    state.risk.put(SCAN, "reseller", {"score": 0.35})  # the last scan saw nothing in it
    state.risk.put(ONLINE, "reseller", {"score": 0.4, "extra": {"flagged_end_users": 1}})
    enforcer = PolicyEnforcer(Policy.from_dict(THROTTLE), state, online=False, hasher=hasher)
    hit, other = run(enforcer, request("reseller", 2500, "mallory"), request("reseller", 2500, "alice"))
    assert hit.policy_rule == "throttle-flagged" and hit.sub_account_id == mallory and hit.score == 0.95
    assert "end user" in hit.reason and "flagged by online" in hit.reason
    assert other.policy_rule == "watch" and other.sub_account_id is None and other.score == 0.4
    assert run(enforcer, request("reseller", 2500, "mallory"))[0].refuses  # its own bucket
    assert not run(enforcer, request("reseller", 2500, "alice"))[0].refuses
    state.risk.put(ONLINE, "reseller", {"score": 0.4})  # no longer marked: its end users are not looked up
    assert run(enforcer, request("reseller", 10, "mallory"))[0].sub_account_id is None


def test_an_end_users_online_record_never_lowers_its_accounts_online_risk():
    hasher = Hasher(b"k")
    state = MemoryState()
    mallory = sub_account_id("reseller", hasher.hash("mallory"))
    state.risk.put(ONLINE, mallory, {"score": 0.3, "flagged": False})
    state.risk.put(ONLINE, "reseller", {"score": 0.9, "flagged": True, "extra": {"flagged_end_users": 2}})
    enforcer = PolicyEnforcer(Policy.from_dict(THROTTLE), state, online=False, hasher=hasher)
    [hit] = run(enforcer, request("reseller", 10, "mallory"))
    assert hit.policy_rule == "throttle-flagged" and hit.score == 0.9 and hit.sub_account_id == mallory


def _per_call_us(enforcer, req, n=3000):
    async def go():
        for _ in range(200):
            await enforcer.decide(req)
        t = time.perf_counter()
        for _ in range(n):
            await enforcer.decide(req)
        return (time.perf_counter() - t) / n * 1e6

    return asyncio.run(go())


def test_decide_is_a_lookup_in_process():
    state = MemoryState()
    state.risk.put(ONLINE, "hot", {"score": 0.9, "flagged": True, "evidence": ["Log-probability harvesting"]})
    big = {"rules": [{**THROTTLE["rules"][0], "throttle": {"unit": "requests", "account": {"rate": 1e9, "burst": 1e9}}}]}
    enforcer = PolicyEnforcer(Policy.from_dict(big), state, online=False)
    unknown_us = _per_call_us(enforcer, request("cold"))
    throttle_us = _per_call_us(enforcer, request("hot"))
    end_user_us = _per_call_us(enforcer, request("cold", end_user="someone"))  # one more lookup, hash cached
    print(f"in-process decide: {unknown_us:.1f} us unknown account, {throttle_us:.1f} us throttle rule, {end_user_us:.1f} us with an end user")
    assert unknown_us < 100 and throttle_us < 200 and end_user_us < 150  # generous: a shared 2-core machine; typical is ~5 / ~15 / ~8 us


@pytest.fixture
def replicas(redis_url, redis_prefix):
    """Two enforcers (two gateway replicas) on one real Redis, no per-replica cache."""
    made = [
        PolicyEnforcer(Policy.from_dict(THROTTLE), RedisState(redis_url, prefix=redis_prefix), online=False, cache_ttl_s=0.0)
        for _ in range(2)
    ]
    yield made
    for e in made:
        e.close()


def test_two_replicas_share_buckets_overrides_and_risk(replicas):
    a, b = replicas
    a.state.risk.put(ONLINE, "h", {"score": 0.9, "flagged": True})  # written once, e.g. by a's online scorer
    assert not run(a, request("h", 2500))[0].refuses  # a takes 2,500 of 3,000
    (seen_by_b,) = run(b, request("h", 2500))
    assert seen_by_b.refuses and seen_by_b.status == 429 and seen_by_b.retry_after_s > 1000
    assert b.account_risk("h")["buckets"]["throttle-flagged/account"]["level"] < 600
    a.set_override("x", Action.BLOCK, "abuse report", by="bob")
    assert run(b, request("x"))[0].status == 403
    assert b.clear_override("x")
    assert run(a, request("x"))[0].actions == (Action.ALLOW,)


def test_replica_cache_bounds_staleness(redis_url, redis_prefix):
    a = PolicyEnforcer(Policy.from_dict(THROTTLE), RedisState(redis_url, prefix=redis_prefix), online=False, cache_ttl_s=0.2)
    b = PolicyEnforcer(Policy.from_dict(THROTTLE), RedisState(redis_url, prefix=redis_prefix), online=False)
    assert run(a, request("y"))[0].actions == (Action.ALLOW,)
    b.set_override("y", Action.BLOCK, "fraud")
    time.sleep(0.25)
    assert run(a, request("y"))[0].status == 403  # seen within cache_ttl_s
    a.close()
    b.close()


def test_decide_costs_one_round_trip_with_redis(replicas):
    a, _ = replicas
    a.state.risk.put(ONLINE, "hot", {"score": 0.9, "flagged": True})
    big = {"rules": [{**THROTTLE["rules"][0], "throttle": {"unit": "requests", "account": {"rate": 1e9, "burst": 1e9}}}]}
    a._fixed = Policy.from_dict(big)
    a.cache_ttl_s = 1.0  # the default with Redis: records cached, bucket taken each time
    cached_us = _per_call_us(a, request("hot"), n=1000)
    a.cache_ttl_s = 0.0
    uncached_us = _per_call_us(a, request("hot"), n=1000)
    print(f"redis decide: {cached_us:.0f} us (bucket take), {uncached_us:.0f} us (records + bucket take)")
    assert cached_us < 2000 and uncached_us < 4000  # generous bounds for a shared machine
