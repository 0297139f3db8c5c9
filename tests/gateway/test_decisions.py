"""Batch scan output → risk records the enforcer acts on."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from distillguard.errors import InputError
from distillguard.findings import FINDINGS_SCHEMA_VERSION, AccountFinding, Evidence
from distillguard.gateway.decisions import load_scan_decisions
from distillguard.gateway.enforcement import build_enforcer
from distillguard.gateway.state import CLUSTER, SCAN, MemoryState
from distillguard.gateway.types import Action, RequestInfo
from distillguard.linking import ClusterFinding
from distillguard.privacy import Hasher
from distillguard.subaccounts import SubAccountFinding, end_user_evidence, sub_account_id


def write_scan(out, findings, clusters=(), threshold=0.65):
    """A scan output directory, written with the findings' own serializers (as write_json_outputs does)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "accounts.jsonl").write_bytes(b"".join(orjson.dumps(f.to_dict()) + b"\n" for f in findings))
    (out / "clusters.jsonl").write_bytes(
        b"".join(orjson.dumps({**c.to_dict(), "schema_version": FINDINGS_SCHEMA_VERSION}, default=str) + b"\n" for c in clusters)
    )
    (out / "summary.json").write_bytes(orjson.dumps({"threshold": threshold, "schema_version": FINDINGS_SCHEMA_VERSION}))
    return out


def scan_dir(tmp_path):
    coercion = Evidence("rules", "Reasoning-trace coercion", "92% of prompts ask for the reasoning", 0.8, "reasoning_trace_coercion")
    findings = [
        AccountFinding("h-1", 0.97, True, cluster_id="c0000", evidence=[coercion], n_events=40),
        AccountFinding("h-2", 0.91, True, cluster_id="c0000", n_events=12),
        AccountFinding("nat-1", 0.02, False, cluster_id="c0001", n_events=30),
        AccountFinding("chat-1", 0.01, False, n_events=9),
    ]
    clusters = [
        ClusterFinding("c0000", 0.99, True, 2, ["h-1", "h-2"], bound=True, n_events=52,
                       evidence=[Evidence("linking", "Shared templates", "2 accounts share 3 templates", 0.9)]),
        ClusterFinding("c0001", 0.05, False, 1, ["nat-1"]),
    ]  # fmt: skip
    return write_scan(tmp_path / "scan", findings, clusters)


def test_scan_results_become_risk_records(tmp_path):
    state = MemoryState()
    loaded = load_scan_decisions(scan_dir(tmp_path), state.risk)
    assert (loaded.n_accounts, loaded.n_flagged_accounts, loaded.n_clusters, loaded.n_flagged_clusters) == (4, 2, 2, 1)
    assert loaded.threshold == 0.65
    h1 = state.risk.get(SCAN, "h-1")
    assert h1["flagged"] and h1["cluster_id"] == "c0000" and h1["rule_ids"] == ["reasoning_trace_coercion"]
    assert h1["evidence"] == ["Reasoning-trace coercion"] and h1["source"] == "scan"
    c0 = state.risk.get(CLUSTER, "c0000")
    assert c0["flagged"] and c0["members"] == ["h-1", "h-2"] and c0["evidence"] == ["Shared templates"]
    assert load_scan_decisions(tmp_path / "scan", MemoryState().risk, min_score=0.5).n_accounts == 2


def test_the_gateway_acts_on_a_loaded_scan(tmp_path):
    enforcer = build_enforcer(decisions_dir=str(scan_dir(tmp_path)), online=False)

    async def decide(account):
        return await enforcer.decide(RequestInfo(account, "/v1/chat/completions", {"logprobs": True}, est_tokens=500))

    blocked = asyncio.run(decide("h-1"))  # flagged, in a flagged cluster, score >= 0.95
    assert blocked.status == 403 and blocked.policy_rule == "block-flagged-campaign-member"
    assert "score 0.97 (flagged by scan)" in blocked.reason and "Reasoning-trace coercion" in blocked.reason
    assert "Reasoning" not in blocked.error_body()["error"]["message"]  # the client is not told what gave it away
    limited = asyncio.run(decide("h-2"))
    assert limited.policy_rule == "throttle-flagged-account" and Action.STRIP_LOGPROBS in limited.actions
    assert limited.cluster_id == "c0000" and not limited.refuses
    assert asyncio.run(decide("nat-1")) == asyncio.run(decide("chat-1")) == asyncio.run(decide("unknown"))
    assert asyncio.run(decide("chat-1")).actions == (Action.ALLOW,)
    enforcer.close()


def test_bad_scan_directories_are_named(tmp_path):
    with pytest.raises(InputError, match="no accounts.jsonl"):
        load_scan_decisions(tmp_path, MemoryState().risk)
    (tmp_path / "accounts.jsonl").write_text('{"account_id": "a", "score": 1, "flagged": true, "schema_version": 99}\n')
    with pytest.raises(InputError, match="schema v99"):
        load_scan_decisions(tmp_path, MemoryState().risk)
    (tmp_path / "accounts.jsonl").write_text("{oops\n")
    with pytest.raises(InputError, match=r"accounts.jsonl:1"):
        load_scan_decisions(tmp_path, MemoryState().risk)


def test_a_scan_hashed_with_another_secret_is_refused_by_name(tmp_path):
    out = scan_dir(tmp_path)
    summary = orjson.loads((out / "summary.json").read_bytes())
    (out / "summary.json").write_bytes(orjson.dumps({**summary, "secret_fingerprint": Hasher(b"scan").fingerprint}))
    with pytest.raises(InputError, match="another secret") as raised:
        load_scan_decisions(out, MemoryState().risk, hasher=Hasher(b"gateway"))
    assert raised.value.field == "secret_fingerprint" and raised.value.path.endswith("summary.json")
    with pytest.raises(InputError, match="another secret"):
        build_enforcer(online=False, decisions_from=str(out), secret_file=None)  # the demo secret, not "scan"
    assert load_scan_decisions(out, MemoryState().risk, hasher=Hasher(b"scan")).n_accounts == 4
    (out / "summary.json").write_bytes(orjson.dumps(summary))  # an older scan names no secret: loaded as before
    assert load_scan_decisions(out, MemoryState().risk, hasher=Hasher(b"gateway")).n_accounts == 4


def reseller_scan(tmp_path, hasher):
    """A reseller whose scan score was lifted to its one harvesting end user's ("mallory"); on its
    own (``detector_scores["cluster"]``) it is unremarkable."""
    coercion = Evidence("rules", "Reasoning-trace coercion", "88% of prompts ask for the reasoning", 0.8, "reasoning_trace_coercion")
    mallory = SubAccountFinding(
        "reseller-1", str(hasher.hash("mallory")), 0.97, True, n_events=120, share=0.04, evidence=[coercion],
        flagged_by="sequential test",
    )  # fmt: skip
    reseller = AccountFinding(
        "reseller-1", 0.97, True, n_events=3000, detector_scores={"rules": 0.1, "cluster": 0.12, "end_users": 0.97},
        evidence=[end_user_evidence([mallory])], flagged_end_users=[mallory.to_dict()],
    )  # fmt: skip
    return write_scan(tmp_path / "scan", [reseller, AccountFinding("chat-1", 0.01, False, n_events=9)])


def test_flagged_end_users_become_risk_records_of_their_own(tmp_path):
    hasher = Hasher(b"scan-secret")
    state = MemoryState()
    loaded = load_scan_decisions(reseller_scan(tmp_path, hasher), state.risk)
    assert (loaded.n_accounts, loaded.n_end_users, loaded.n_flagged_end_users) == (2, 1, 1)
    mallory = state.risk.get(SCAN, sub_account_id("reseller-1", hasher.hash("mallory")))
    assert mallory["flagged"] and mallory["score"] == 0.97 and mallory["rule_ids"] == ["reasoning_trace_coercion"]
    assert mallory["evidence"] == ["Reasoning-trace coercion"] and mallory["extra"]["flagged_by"] == "sequential test"
    # the reseller keeps its own score: the lift came from one end user, who now has a record of its own
    reseller = state.risk.get(SCAN, "reseller-1")
    assert reseller["score"] == 0.12 and not reseller["flagged"] and reseller["extra"]["end_user_score"] == 0.97


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_the_gateway_acts_on_one_end_user_and_spares_the_resellers_others(tmp_path, backend, request):
    secret = tmp_path / "secret"
    secret.write_bytes(b"scan-secret")
    hasher = Hasher(b"scan-secret")
    state = {}  # memory: build_enforcer's default
    if backend == "redis":
        state = {"redis_url": request.getfixturevalue("redis_url"), "redis_prefix": request.getfixturevalue("redis_prefix")}
    enforcer = build_enforcer(decisions_dir=str(reseller_scan(tmp_path, hasher)), online=False, secret_file=str(secret), **state)

    def decide(end_user=None, tokens=3000):
        info = RequestInfo("reseller-1", "/v1/chat/completions", {"logprobs": True}, end_user=end_user, est_tokens=tokens)
        return asyncio.run(enforcer.decide(info))

    mallory_id = sub_account_id("reseller-1", hasher.hash("mallory"))
    first = decide("mallory")
    assert first.policy_rule == "throttle-flagged-account" and Action.STRIP_LOGPROBS in first.actions and not first.refuses
    assert first.account_id == "reseller-1" and first.sub_account_id == mallory_id
    assert f"end user {hasher.hash('mallory')} of account reseller-1 score 0.97" in first.reason
    drained = [decide("mallory") for _ in range(3)]
    assert drained[-1].refuses and drained[-1].status == 429 and "tokens bucket (end_user) empty" in drained[-1].reason
    # the reseller's other end users, and its requests without one, are judged on the reseller's own score
    for other in ("alice", "bob", None):
        assert decide(other, tokens=8000).actions == (Action.ALLOW,)
    log = enforcer.decisions(account_id="reseller-1")
    assert log and all(d["sub_account_id"] == mallory_id for d in log)
    assert enforcer.account_risk(mallory_id)["buckets"]["throttle-flagged-account/end_user"]["level"] < 3000
    assert enforcer.account_risk("reseller-1")["buckets"]["throttle-flagged-account/account"]["level"] == 8000
    enforcer.close()
