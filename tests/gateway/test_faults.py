"""Faults: every one gets the right answer and a recorded event, and nothing hangs."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from distillguard.gateway.process_recorder import ProcessRecorder
from distillguard.privacy import Hasher
from tests.gateway.factories import SECRET, FullDisk, auth, chat, client, fake_upstream, free_port, gateway
from tests.gateway.test_process_recorder import wait_for


@pytest.fixture(scope="module")
def upstream():
    with fake_upstream() as server:
        yield server


@pytest.fixture
def proxy(upstream):
    with gateway(upstream.url + "/v1", read_timeout_s=0.5, max_body_bytes=4000) as (server, enforcer, recorder):
        yield server, recorder


def last(recorder, n: int = 1):
    return recorder.wait(n)[-1]


def test_upstream_timeout_is_504_and_recorded(proxy):
    server, recorder = proxy
    t0 = time.monotonic()
    with client(server) as c:
        r = c.post("/v1/chat/completions", json=chat(fake={"delay_ms": 3000}), headers=auth())
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - t0 < 2.5
    ev, extra = last(recorder)
    assert ev["status"] == "failure" and extra["error"] == "upstream_timeout" and ev["messages"]


def test_upstream_5xx_is_passed_through_and_recorded(proxy):
    server, recorder = proxy
    with client(server) as c:
        r = c.post("/v1/chat/completions", json=chat(fake={"status": 503}), headers=auth())
        s = c.post("/v1/chat/completions", json=chat(stream=True, fake={"status": 500}), headers=auth())
    assert r.status_code == 503 and r.json()["error"]["message"] == "injected upstream error"
    assert s.status_code == 500
    assert [x["error"] for _, x in recorder.records[-2:]] == ["upstream_503", "upstream_500"]


def test_unreachable_upstream_is_502():
    with gateway(f"http://127.0.0.1:{free_port()}/v1") as (server, _, recorder):
        with client(server) as c:
            r = c.post("/v1/chat/completions", json=chat(), headers=auth())
    assert r.status_code == 502 and r.json()["error"]["type"] == "upstream_error"
    assert recorder.records[-1][1]["error"] == "upstream_unavailable"


def test_mid_stream_drop_ends_the_stream_with_an_error_event(proxy):
    server, recorder = proxy
    with client(server) as c:
        r = c.post("/v1/chat/completions", json=chat(stream=True, fake={"drop_after": 2}), headers=auth())
    events = [orjson.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    assert events[-1]["error"]["code"] == "upstream_stream_dropped" and "[DONE]" not in r.text
    assert len(events) == 3  # two relayed chunks, then the error
    ev, extra = last(recorder)
    assert ev["status"] == "failure" and extra["error"] == "upstream_stream_dropped" and ev["completion_text"] == "w0 w1"


def test_mid_stream_stall_past_the_read_timeout(proxy):
    server, recorder = proxy
    with client(server) as c:
        r = c.post("/v1/chat/completions", json=chat(stream=True, fake={"stall_ms": 3000}), headers=auth())
    assert '"upstream_timeout"' in r.text
    assert last(recorder)[1]["error"] == "upstream_timeout"


@pytest.mark.parametrize("stream", [False, True])
def test_client_disconnect_is_recorded_and_cancels_upstream(upstream, stream):
    with gateway(upstream.url + "/v1", read_timeout_s=10) as (server, _, recorder):
        fake = {"stall_ms": 4000} if stream else {"delay_ms": 4000}
        t0 = time.monotonic()
        with httpx.Client(base_url=server.url, timeout=0.5) as c:
            try:
                with c.stream("POST", "/v1/chat/completions", json=chat(stream=stream, fake=fake), headers=auth()) as r:
                    for _ in r.iter_bytes():
                        pass
            except httpx.ReadTimeout:
                pass
        ev, extra = recorder.wait(1, timeout=3)[-1]
        assert time.monotonic() - t0 < 3  # recorded when the client left, not when the upstream finished
        assert extra["error"] == "client_disconnected" and extra["http_status"] == 499 and ev["status"] == "failure"


def test_malformed_json_is_400_naming_the_problem(proxy):
    server, recorder = proxy
    with client(server) as c:
        bad = c.post("/v1/chat/completions", content=b'{"model": "m", "messages": [', headers=auth())
        not_object = c.post("/v1/chat/completions", content=b"[1, 2]", headers=auth())
    assert bad.status_code == 400 and "could not parse the JSON body" in bad.json()["error"]["message"]
    assert "line 1 column" in bad.json()["error"]["message"]
    assert not_object.status_code == 400 and "must be a JSON object, got list" in not_object.json()["error"]["message"]
    assert [x["error"] for _, x in recorder.records[-2:]] == ["invalid_json", "invalid_json"]
    assert recorder.records[-1][0]["account_id"] == "acct-alice"


def test_oversized_body_is_413_declared_or_streamed(proxy):
    server, recorder = proxy
    big = orjson.dumps(chat("x" * 5000))
    with client(server) as c:
        declared = c.post("/v1/chat/completions", content=big, headers=auth())
        chunked = c.post("/v1/chat/completions", content=iter([big[:3000], big[3000:]]), headers=auth())
    assert declared.status_code == 413 and chunked.status_code == 413
    assert declared.json()["error"]["code"] == "request_too_large"
    assert [x["error"] for _, x in recorder.records[-2:]] == ["request_too_large", "request_too_large"]


def test_unknown_key_is_401_counted_and_recorded_by_hash(proxy):
    server, recorder = proxy
    with client(server) as c:
        r = c.post("/v1/chat/completions", json=chat(), headers=auth("sk-stolen-guess"))
        missing = c.post("/v1/chat/completions", json=chat())
        metrics = c.get("/metrics").text
    assert r.status_code == 401 and missing.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key" and "sk-stolen-guess" not in r.text
    assert "distillguard_unknown_key_total 2.0" in metrics
    ev, extra = recorder.records[-2]
    assert ev["account_id"] is None and ev["api_key"] == str(Hasher(SECRET).hash("sk-stolen-guess"))
    assert extra["http_status"] == 401 and "sk-stolen-guess" not in orjson.dumps(ev).decode()


def test_unknown_path_and_wrong_method(proxy):
    server, _ = proxy
    with client(server) as c:
        assert c.post("/v1/nope", json={}, headers=auth()).status_code == 404
        assert c.get("/v1/chat/completions", headers=auth()).status_code == 405


def test_a_wal_write_failure_still_answers_and_is_counted_and_shown(upstream, tmp_path, monkeypatch, caplog):
    """A full disk under the WAL: the exchanges are served (not 500s, no broken streams), counted as not
    recorded, and /healthz, /admin/recorder and /metrics say so."""
    monkeypatch.setenv("TEST_ADMIN_TOKEN", "t")
    admin = {"Authorization": "Bearer t"}
    rec = ProcessRecorder(tmp_path / "wal", tmp_path / "gw.duckdb", Hasher(SECRET), flush_interval_s=0.05, nice=0)
    rec.start()
    try:
        with gateway(upstream.url + "/v1", recorder=rec, admin_token_env="TEST_ADMIN_TOKEN") as (server, _, _), client(server) as c:
            disk = FullDisk(monkeypatch, rec.wal)
            with caplog.at_level("ERROR", logger="distillguard"):
                plain = c.post("/v1/chat/completions", json=chat(), headers=auth())
                streamed = c.post("/v1/chat/completions", json=chat(stream=True), headers=auth())
                refused = c.post("/v1/chat/completions", json=chat(), headers=auth("sk-unknown"))
            health = c.get("/healthz").json()
            status = c.get("/admin/recorder", headers=admin).json()
            metrics = c.get("/metrics").text
            disk.full = False
            after = c.post("/v1/chat/completions", json=chat(), headers=auth())
            healed = c.get("/healthz").json()
            wait_for(lambda: rec.pending == 0, 30)
    finally:
        rec.close()
    assert plain.status_code == 200 and plain.json()["choices"]
    assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")
    assert refused.status_code == 401
    assert health["status"] == "degraded" and "No space left on device" in health["recorder"]["wal_write_error"]
    assert health["recorder"]["lost_records"] == 3
    assert status["lost_records"] == 3 and "No space left on device" in status["wal_write_error"]
    assert "distillguard_recorder_lost_records_total 3.0" in metrics
    assert len([r for r in caplog.records if r.levelname == "ERROR" and "not recorded" in r.getMessage()]) == 1  # once a burst
    assert after.status_code == 200 and healed["status"] == "ok"
    assert status["state"] == "running" and rec.status()["lost_records"] == 3 and rec.stored_total == 1
