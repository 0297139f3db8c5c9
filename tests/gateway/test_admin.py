"""The admin API: token required, routes call the EnforcerAdmin, overrides take effect on the proxy."""

from __future__ import annotations

import pytest

from tests.gateway.factories import ListRecorder, ScriptedEnforcer, auth, chat, client, fake_upstream, gateway

TOKEN = "admin-token-123"


@pytest.fixture
def proxy(monkeypatch):
    monkeypatch.setenv("TEST_ADMIN_TOKEN", TOKEN)
    with fake_upstream() as up, gateway(up.url + "/v1", ScriptedEnforcer(), admin_token_env="TEST_ADMIN_TOKEN") as (gw, enf, rec):
        yield gw, enf


ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def test_token_is_required(proxy):
    server, _ = proxy
    with client(server) as c:
        assert c.get("/admin/accounts/acct-alice").status_code == 401
        r = c.get("/admin/accounts/acct-alice", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_admin_token"


def test_admin_disabled_without_a_token():
    with fake_upstream() as up, gateway(up.url + "/v1", admin_token_env="UNSET_ADMIN_TOKEN_VAR") as (server, _, _):
        with client(server) as c:
            assert c.get("/admin/decisions", headers=ADMIN).status_code == 403


def test_risk_routes(proxy):
    server, _ = proxy
    with client(server) as c:
        account = c.get("/admin/accounts/acct%2Fodd", headers=ADMIN)
        cluster = c.get("/admin/clusters/c-1", headers=ADMIN)
        unknown = c.get("/admin/nothing", headers=ADMIN)
    assert account.status_code == 200 and account.json()["account_id"] == "acct/odd"
    assert cluster.json() == {"cluster_id": "c-1", "members": ["acct-alice"]}
    assert unknown.status_code == 404


def test_block_override_applies_then_clears(proxy):
    server, enforcer = proxy
    with client(server) as c:
        put = c.put("/admin/overrides/acct-alice", json={"action": "block", "reason": "analyst: campaign 7"}, headers=ADMIN)
        blocked = c.post("/v1/chat/completions", json=chat(), headers=auth())
        decisions = c.get("/admin/decisions?limit=5&account_id=acct-alice", headers=ADMIN)
        deleted = c.delete("/admin/overrides/acct-alice", headers=ADMIN)
        again = c.delete("/admin/overrides/acct-alice", headers=ADMIN)
        allowed = c.post("/v1/chat/completions", json=chat(), headers=auth())
        bad = c.put("/admin/overrides/acct-alice", json={"action": "explode"}, headers=ADMIN)
        bad_limit = c.get("/admin/decisions?limit=many", headers=ADMIN)
    assert put.status_code == 200 and put.json()["override"] == "block"
    assert blocked.status_code == 403 and blocked.json()["error"]["message"] == "analyst: campaign 7"
    assert decisions.json() == [{"account_id": "acct-alice", "actions": ["block"], "reason": "analyst: campaign 7"}]
    assert deleted.status_code == 204 and again.status_code == 404
    assert allowed.status_code == 200
    assert bad.status_code == 400 and bad_limit.status_code == 400


class FailedRecorder(ListRecorder):
    """A recorder whose worker cannot use the store."""

    def status(self):
        return {"state": "failed", "error": "gw.duckdb: store has event schema v9", "pending_records": 3, "lag_s": 1.5,
                "committed_records": 7, "batches": 2, "quarantined_records": 1, "store_errors": 0, "worker_restarts": 0}


def test_recorder_status_in_admin_health_and_metrics(monkeypatch):
    monkeypatch.setenv("TEST_ADMIN_TOKEN", TOKEN)
    with fake_upstream() as up, gateway(up.url + "/v1", recorder=FailedRecorder(), admin_token_env="TEST_ADMIN_TOKEN") as (gw, _, _):
        with client(gw) as c:
            status = c.get("/admin/recorder", headers=ADMIN)
            unauthorized = c.get("/admin/recorder")
            health = c.get("/healthz")
            served = c.post("/v1/chat/completions", json=chat(), headers=auth())
            metrics = c.get("/metrics").text
    assert status.status_code == 200 and status.json()["error"] == "gw.duckdb: store has event schema v9"
    assert unauthorized.status_code == 401
    assert health.status_code == 200 and health.json() == {
        "status": "degraded", "recorder": {"state": "failed", "error": "gw.duckdb: store has event schema v9"}}
    assert served.status_code == 200  # recording down, proxying goes on
    for series in ("distillguard_recorder_failed 1.0", "distillguard_recorder_up 0.0", "distillguard_wal_pending_records 3.0",
                   "distillguard_recorder_lag_seconds 1.5", "distillguard_recorder_quarantined_records_total 1.0",
                   "distillguard_recorder_batches_total 2.0", "distillguard_recorder_worker_restarts_total 0.0"):  # fmt: skip
        assert series in metrics, series
