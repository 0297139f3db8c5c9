"""The serving process / recording worker split: WAL here, store and online scoring in a child process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from pathlib import Path

import duckdb
import orjson

import distillguard.gateway.process_recorder as process_recorder_module
import distillguard.gateway.worker as worker_module
from distillguard.gateway.enforcement import PolicyEnforcer, enforcer_options
from distillguard.gateway.metrics import GatewayMetrics
from distillguard.gateway.policy import Policy
from distillguard.gateway.process_recorder import ProcessRecorder
from distillguard.gateway.state import ONLINE, MemoryState
from distillguard.gateway.types import Action, RequestInfo
from distillguard.privacy import Hasher
from distillguard.store.duckdb import DuckDBStore
from tests.gateway.factories import FullDisk, store_locked_by_another_process
from tests.gateway.test_recorder import raw_event


def wait_for(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def stored(path) -> tuple[list[str], int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        ids = [r[0] for r in con.execute("SELECT event_id FROM events").fetchall()]
        logged = con.execute("SELECT count(*) FROM gateway_log").fetchall()[0][0]
    finally:
        con.close()
    return ids, logged


def recorder(tmp_path, **kw) -> ProcessRecorder:
    return ProcessRecorder(tmp_path / "wal", tmp_path / "gw.duckdb", Hasher(b"k"), flush_interval_s=0.05, nice=0, **kw)


def test_the_worker_stores_what_the_serving_process_appends(tmp_path):
    rec = recorder(tmp_path)
    rec.start()
    for i in range(40):
        rec.record(raw_event(i), {"endpoint": "/v1/chat/completions", "http_status": 200})
    wait_for(lambda: rec.pending == 0)
    assert rec.stored_total == 40 and rec.lag_s == 0.0
    status = rec.status()
    assert status["state"] == "running" and status["committed_records"] == 40 and status["batches"] >= 1
    assert status["quarantined_records"] == status["worker_restarts"] == status["pending_records"] == 0
    rec.close()
    ids, logged = stored(tmp_path / "gw.duckdb")
    assert sorted(ids) == sorted(f"e{i}" for i in range(40)) and logged == 40
    assert list((tmp_path / "wal").glob("wal-*")) == []  # closed and stored: nothing to replay


def test_a_killed_worker_is_restarted_and_nothing_is_lost_or_stored_twice(tmp_path):
    rec = recorder(tmp_path, segment_bytes=4096)  # several segments: some deleted before the kill
    rec.start()
    for i in range(60):
        rec.record(raw_event(i))
    wait_for(lambda: rec.pending == 0)
    first_pid = rec.worker_pid
    for i in range(60, 120):
        rec.record(raw_event(i))
        rec.wal.rotate_if_large()
    os.kill(first_pid, signal.SIGKILL)  # mid-flush or not: whatever it had not reported stays in the WAL
    for i in range(120, 150):
        rec.record(raw_event(i))
    wait_for(lambda: rec.restarts == 1 and rec.pending == 0)
    assert rec.worker_pid not in (None, first_pid) and rec.status()["worker_restarts"] == 1
    rec.close()
    ids, logged = stored(tmp_path / "gw.duckdb")
    assert len(ids) == len(set(ids)) == logged == 150
    assert list((tmp_path / "wal").glob("wal-*")) == []


def test_a_previous_runs_segments_are_replayed_by_the_next_worker(tmp_path):
    crashed = recorder(tmp_path)  # never started: as if the serving process died before its worker stored anything
    for i in range(25):
        crashed.record(raw_event(i))
    os.close(crashed.wal._fd)
    rec = recorder(tmp_path)
    rec.start()
    rec.record(raw_event(99))
    wait_for(lambda: not (tmp_path / "wal" / "wal-000000000001.log").exists())  # the old segment: stored, then deleted
    rec.close()
    ids, _ = stored(tmp_path / "gw.duckdb")
    assert sorted(ids) == sorted([f"e{i}" for i in range(25)] + ["e99"])


def test_online_risk_from_the_worker_reaches_the_serving_process_decisions(tmp_path):
    state = MemoryState()
    policy = Policy.from_dict({"version": 1, "rules": [{"name": "scored", "when": {"n_events_gte": 8}, "actions": ["block"]}]})
    enforcer = PolicyEnforcer(policy, state, online=False)  # no scorer here: the worker runs it
    rec = recorder(tmp_path, risk=state.risk, online=enforcer_options(rescore_interval_s=0.0, min_rescore_interval_s=0.0))
    rec.start()

    def decide(account: str):
        return asyncio.run(enforcer.decide(RequestInfo(account, "/v1/chat/completions", {})))

    assert decide("acct-1").actions == (Action.ALLOW,)
    n = 0
    for account in ("acct-1", "acct-2", "acct-3", "acct-4"):
        for _ in range(10):
            rec.record(raw_event(n, account))
            n += 1
    wait_for(lambda: state.risk.get(ONLINE, "acct-1") is not None)
    online = state.risk.get(ONLINE, "acct-1")
    assert online["source"] == "online" and online["n_events"] == 10
    decision = decide("acct-1")
    assert decision.refuses and decision.policy_rule == "scored" and "score" in decision.reason
    wait_for(lambda: (rec.worker_stats.get("online") or {}).get("events_seen") == 40)  # its counters come back too
    rec.close()
    enforcer.close()


def test_a_record_that_cannot_be_stored_is_quarantined_and_counted_not_retried_forever(tmp_path):
    rec = recorder(tmp_path)
    metrics = GatewayMetrics()
    metrics.watch_recorder(rec.status)
    rec.start()
    for i in range(10):
        rec.record(raw_event(i), {"http_status": "teapot" if i == 4 else 200})
    wait_for(lambda: rec.pending == 0, 30)
    scrape = metrics.render()[1].decode()
    rec.close()
    ids, logged = stored(tmp_path / "gw.duckdb")
    assert sorted(ids) == sorted(f"e{i}" for i in range(10) if i != 4) and logged == 9
    [line] = (tmp_path / "wal" / "quarantine.jsonl").read_bytes().splitlines()
    assert orjson.loads(line)["e"]["event_id"] == "e4" and "teapot" in orjson.loads(line)["reason"]
    assert "distillguard_recorder_quarantined_records_total 1.0" in scrape
    assert "distillguard_recorder_committed_records_total 10.0" in scrape and "distillguard_recorder_up 1.0" in scrape
    assert list((tmp_path / "wal").glob("wal-*")) == []


def test_a_store_the_worker_cannot_use_stops_recording_without_restarts_and_says_why(tmp_path):
    store = DuckDBStore(tmp_path / "gw.duckdb")
    store.con.execute("UPDATE meta SET value = '999' WHERE key = 'event_schema_version'").fetchall()
    store.close()
    rec = recorder(tmp_path)
    rec.start()
    wait_for(lambda: rec.status()["state"] == "failed", 30)  # at once, not after a minute of retries
    rec.record(raw_event(1))  # the serving process goes on: its exchanges wait in the WAL
    wait_for(lambda: rec.worker_pid is None)
    status = rec.status()
    assert str(tmp_path / "gw.duckdb") in status["error"] and "schema v999" in status["error"]
    assert status["worker_restarts"] == 0 and status["pending_records"] == 1
    [segment] = (tmp_path / "wal").glob("wal-*")
    wait_for(lambda: rec.status()["wal_bytes"] == segment.stat().st_size > 0, 10)  # what the WAL holds on disk, shown
    assert rec.status()["lag_s"] > 0
    t0 = time.monotonic()
    rec.close()
    assert time.monotonic() - t0 < 5
    assert len(list((tmp_path / "wal").glob("wal-*"))) == 1  # kept for the start after the store is fixed


class RestartRacingClose(ProcessRecorder):
    """Its worker restart is under way when close() begins (the supervisor past its closing check)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.restarting = threading.Event()

    def _spawn(self):
        if self._proc is not None:  # a restart, not the first start
            self.restarting.set()
            wait_for(lambda: self._closing, 30)
            time.sleep(0.2)  # close() has read that no worker runs, and waits
        return super()._spawn()


def test_close_during_a_worker_restart_is_prompt(tmp_path):
    rec = RestartRacingClose(tmp_path / "wal", tmp_path / "gw.duckdb", Hasher(b"k"), flush_interval_s=0.05, nice=0)
    rec.start()
    rec.record(raw_event(1))
    wait_for(lambda: rec.pending == 0)
    os.kill(rec.worker_pid, signal.SIGKILL)
    wait_for(rec.restarting.is_set)
    t0 = time.monotonic()
    rec.close(timeout_s=10)
    assert time.monotonic() - t0 < 3  # not the close timeout: no worker is started that nobody stops
    assert rec.worker_pid is None and rec.status()["state"] == "closed"


def test_a_failed_wal_append_is_counted_and_reported_not_raised(tmp_path, monkeypatch, caplog):
    rec = recorder(tmp_path)  # not started: the request path alone
    disk = FullDisk(monkeypatch, rec.wal)
    with caplog.at_level("WARNING", logger="distillguard"):
        for i in range(5):
            rec.record(raw_event(i))  # served already: recording must not raise into the handler
        status = rec.status()
        assert status["lost_records"] == 5 and "No space left on device" in status["wal_write_error"]
        assert rec.pending == 0 and rec.lag_s == 0.0
        disk.full = False
        rec.record(raw_event(5))
    assert rec.status()["wal_write_error"] is None and rec.status()["lost_records"] == 5 and rec.pending == 1
    failures = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(failures) == 1 and "not recorded" in failures[0].getMessage()  # once per burst, not per request
    assert any("works again" in r.getMessage() for r in caplog.records)


def test_append_times_stay_bounded_while_nothing_is_stored():
    """A recorder whose worker cannot run keeps appending: the lag's bookkeeping must not grow with it."""
    times = process_recorder_module.AppendTimes(max_buckets=64)
    for i in range(100_000):
        times.appended(1000.0 + i * 0.5)  # 14 hours of 2 records/s, none stored
    assert len(times) <= 64 and times.oldest() == 1000.0
    times.stored(99_999)
    assert 1000.0 + 99_999 * 0.5 - 1e-9 >= times.oldest() >= 1000.0 + 99_999 * 0.5 - 2 * times.bucket_s
    times.stored(1)
    assert times.oldest() is None and len(times) == 0
    for t in (5.0, 5.001, 5.02):
        times.appended(t)
    assert len(times) == 2 and times.oldest() == 5.0  # caught up: fine-grained again


class FatalStoreRecorder(ProcessRecorder):
    """Its first worker's store connection is invalidated by a fatal DuckDB error (``fatal_store_worker.py``)."""

    def __init__(self, tmp_path, **kw):
        super().__init__(tmp_path / "wal", tmp_path / "gw.duckdb", Hasher(b"k"), flush_interval_s=0.05, nice=0, **kw)
        self.worker_args = (str(Path(__file__).with_name("fatal_store_worker.py")), str(tmp_path / "fatal-once"))


def test_a_worker_whose_store_connection_is_invalidated_exits_and_a_fresh_one_stores_everything(tmp_path, caplog):
    rec = FatalStoreRecorder(tmp_path)
    rec.start()
    for i in range(20):
        rec.record(raw_event(i))
    with caplog.at_level("ERROR", logger="distillguard"):
        wait_for(lambda: rec.pending == 0, 30)  # not retried through the dead connection forever
    status = rec.status()
    assert status["worker_restarts"] == 1 and status["store_errors"] >= 1 and "invalidated" in status["last_store_error"]
    assert any(f"status {process_recorder_module.EXIT_STORE_INVALIDATED}" in r.getMessage() for r in caplog.records)
    rec.close()
    ids, logged = stored(tmp_path / "gw.duckdb")
    assert sorted(ids) == sorted(f"e{i}" for i in range(20)) and logged == 20


def test_close_while_the_worker_waits_for_the_store_lock_is_prompt(tmp_path):
    with store_locked_by_another_process(tmp_path / "gw.duckdb"):
        rec = recorder(tmp_path)
        rec.start()
        rec.record(raw_event(1))
        time.sleep(1.0)  # the worker is up and waiting for the lock
        assert rec.status()["state"] == "running" and rec.worker_pid is not None
        t0 = time.monotonic()
        rec.close(timeout_s=10)
        assert time.monotonic() - t0 < 3  # not the lock wait (60 s) nor the close timeout
        assert rec.worker_pid is None
    assert len(list((tmp_path / "wal").glob("wal-*"))) == 1  # the record waits in the WAL for the next start


def test_close_waits_for_a_predecessor_worker_holding_the_lock_then_stores_everything(tmp_path):
    """The previous run's worker (its serving process was killed) still stores the WAL's leftovers: a
    shutdown waits for it to let go of the store, so that everything is stored."""
    (tmp_path / "wal").mkdir()
    with store_locked_by_another_process(tmp_path / "gw.duckdb") as holder_pid:
        (tmp_path / "wal" / worker_module.WORKER_PID_FILE).write_text(worker_module.pid_record(holder_pid))  # as that worker writes it
        rec = recorder(tmp_path)
        rec.start()
        rec.record(raw_event(1))
        time.sleep(1.0)  # the worker is up and waiting for the lock
        closing = threading.Thread(target=rec.close, kwargs={"timeout_s": 30})
        closing.start()
        closing.join(1.5)
        assert closing.is_alive()  # still waiting: the holder is a worker, it will finish
    closing.join(30)  # the holder is gone: the lock is free
    assert not closing.is_alive()
    ids, logged = stored(tmp_path / "gw.duckdb")
    assert ids == ["e1"] and logged == 1 and list((tmp_path / "wal").glob("wal-*")) == []
