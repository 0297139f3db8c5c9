"""WALRecorder: WAL first, store in batches, observe, replay without duplicates."""

from __future__ import annotations

import os
import time

import duckdb
import orjson
import pytest

import distillguard.gateway.sink as sink_module
from distillguard.errors import InputError
from distillguard.gateway.recorder import WALRecorder
from distillguard.privacy import Hasher
from distillguard.store.duckdb import DuckDBStore
from tests.gateway.factories import FullDisk, ScriptedEnforcer, fail_insert_once_on


def raw_event(i: int, account: str = "acct-1") -> dict:
    return {
        "event_id": f"e{i}", "ts": 1.7e9 + i, "end_ts": 1.7e9 + i + 0.5, "account_id": account, "api_key": "123",
        "model": "m", "status": "success", "source_format": "gateway",
        "messages": [{"role": "user", "content": f"Question number {i}: what is {i}+{i}?"}], "completion_text": str(2 * i),
    }  # fmt: skip


def ids(store: DuckDBStore, table: str = "events") -> list[str]:
    return sorted(store.query(f"SELECT event_id FROM {table}").column(0).to_pylist())


def wait_until(condition, timeout_s: float = 10.0) -> bool:
    """Whether ``condition()`` came true within ``timeout_s`` (False, not a hang, when it never does)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def invalidate_connection(monkeypatch, con) -> None:
    """Every insert through ``con`` fails from now on, as after a fatal DuckDB error; other connections work."""
    real_insert = sink_module.insert_new

    def insert(c, table, rows, key):
        if c is con:
            raise duckdb.FatalException("FATAL Error: Failed: database has been invalidated because of a previous fatal error")
        return real_insert(c, table, rows, key)

    monkeypatch.setattr(sink_module, "insert_new", insert)


@pytest.fixture
def store(tmp_path):
    s = DuckDBStore(tmp_path / "gw.duckdb")
    yield s
    s.close()


def test_records_reach_the_store_and_the_enforcer(tmp_path, store):
    enforcer = ScriptedEnforcer()
    rec = WALRecorder(tmp_path / "wal", store, Hasher(b"k"), enforcer=enforcer, flush_batch=8, flush_interval_s=0.05)
    rec.start()
    for i in range(20):
        rec.record(raw_event(i), {"endpoint": "/v1/chat/completions", "http_status": 200,
                                  "decision": {"actions": ["flag"], "reason": "r", "shadow": False, "score": 0.7}})  # fmt: skip
    deadline = time.monotonic() + 5
    while rec.pending and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rec.pending == 0 and rec.lag_s == 0.0
    assert ids(store) == sorted(f"e{i}" for i in range(20))
    assert sorted(enforcer.observed_ids()) == ids(store)
    row = store.query("SELECT account_id, api_key_hash, n_user_turns FROM events WHERE event_id='e3'").to_pylist()[0]
    assert row["account_id"] == "acct-1" and row["api_key_hash"] == Hasher(b"k").hash("123") and row["n_user_turns"] == 1
    log = store.query("SELECT endpoint, http_status, actions, score FROM gateway_log WHERE event_id='e3'").to_pylist()[0]
    assert log == {"endpoint": "/v1/chat/completions", "http_status": 200, "actions": "flag", "score": 0.7}
    assert len(ids(store, "samples")) == 5  # redacted excerpts, per account
    rec.close()
    assert list((tmp_path / "wal").glob("wal-*")) == []  # everything stored: nothing left to replay


def test_wal_holds_records_until_stored(tmp_path, store):
    rec = WALRecorder(tmp_path / "wal", store, Hasher(b"k"))  # not started: nothing is flushed
    rec.record(raw_event(1))
    assert rec.pending == 1 and ids(store) == []
    [segment] = (tmp_path / "wal").glob("wal-*")
    assert segment.stat().st_size > 0 and oct(segment.stat().st_mode & 0o777) == "0o600"


def test_replay_after_a_crash_stores_each_record_once(tmp_path, store):
    hasher = Hasher(b"k")
    crashed = WALRecorder(tmp_path / "wal", store, hasher, flush_batch=4)
    for i in range(6):
        crashed.record(raw_event(i))
    crashed._flush_all()  # e0..e5 stored, but the segment is still open: it survives the "crash"
    for i in range(6, 10):
        crashed.record(raw_event(i))  # written, never stored
    os.close(crashed.wal._fd)  # the process dies: no close()

    enforcer = ScriptedEnforcer()
    restarted = WALRecorder(tmp_path / "wal", store, hasher, enforcer=enforcer)
    assert restarted.start() == 10
    assert ids(store) == sorted(f"e{i}" for i in range(10))
    assert store.query("SELECT count(*) FROM events").column(0)[0].as_py() == 10
    assert sorted(enforcer.observed_ids()) == [f"e{i}" for i in range(6, 10)]  # only what had not been stored
    restarted.close()
    assert list((tmp_path / "wal").glob("wal-*")) == []


def test_an_unnormalizable_record_is_set_aside_not_blocking(tmp_path, store):
    rec = WALRecorder(tmp_path / "wal", store, Hasher(b"k"))
    rec.record(raw_event(1))
    rec.record({**raw_event(2), "messages": "not a list of messages"})
    rec.record(raw_event(3))
    rec.close()
    assert ids(store) == ["e1", "e3"]
    [line] = (tmp_path / "wal" / "quarantine.jsonl").read_bytes().splitlines()
    assert b'"e2"' in line and b'"segment":1' in line
    assert rec.status()["quarantined_records"] == 1


def test_gateway_log_has_no_key_and_stores_each_exchange_once(tmp_path, store):
    rec = WALRecorder(tmp_path / "wal", store, Hasher(b"k"))
    constraints = store.query("SELECT constraint_type FROM duckdb_constraints() WHERE table_name = 'gateway_log'")
    assert constraints.num_rows == 0  # the anti-join on event_id keeps it exactly-once, no index to maintain
    ev = raw_event(1)
    rec.sink.write([(ev, {"http_status": 200}), (ev, {"http_status": 200})])
    rec.sink.write([(ev, {"http_status": 200})], replay=True)
    assert ids(store, "gateway_log") == ["e1"]
    rec.close()


def test_fsync_every_record_mode(tmp_path, store):
    rec = WALRecorder(tmp_path / "wal", store, Hasher(b"k"), fsync_interval_s=0)
    rec.start()
    rec.record(raw_event(1))
    rec.close()
    assert ids(store) == ["e1"]


def test_a_record_quarantined_before_a_store_failure_is_quarantined_and_counted_once(tmp_path, store, monkeypatch):
    rec = WALRecorder(tmp_path / "wal", store, Hasher(b"k"))  # not started: flushed by hand
    for i in range(4):
        rec.record(raw_event(i), {"http_status": "bad"} if i == 2 else {})
    # after the split has set e2 aside, the disk is full once
    fail_insert_once_on(monkeypatch, "e3", duckdb.IOException("IO Error: No space left on device"))
    with pytest.raises(duckdb.IOException):
        rec._flush_all()
    rec._flush_all()
    assert ids(store) == ["e0", "e1", "e3"] and rec.pending == 0
    lines = [orjson.loads(line) for line in (tmp_path / "wal" / "quarantine.jsonl").read_bytes().splitlines()]
    assert [(line["e"]["event_id"], line["segment"]) for line in lines] == [("e2", 1)] and "offset" in lines[0]
    status = rec.status()
    assert status["quarantined_records"] == 1 and status["committed_records"] == 4
    rec.close()


def test_a_failed_wal_append_is_counted_not_raised(tmp_path, store, monkeypatch):
    rec = WALRecorder(tmp_path / "wal", store, Hasher(b"k"))
    disk = FullDisk(monkeypatch, rec.wal)
    rec.record(raw_event(1))  # the exchange was served: recording it must not raise into the handler
    rec.record(raw_event(2))
    status = rec.status()
    assert status["lost_records"] == 2 and "No space left" in status["wal_write_error"] and rec.pending == 0
    disk.full = False
    rec.record(raw_event(3))
    assert rec.status()["wal_write_error"] is None and rec.status()["lost_records"] == 2
    rec.close()
    assert ids(store) == ["e3"]


def test_a_fatal_store_error_reopens_the_store_and_loses_nothing(tmp_path, monkeypatch):
    first = DuckDBStore(tmp_path / "gw.duckdb")
    invalidate_connection(monkeypatch, first.con)
    enforcer = ScriptedEnforcer()
    rec = WALRecorder(tmp_path / "wal", first, Hasher(b"k"), enforcer=enforcer, flush_batch=4, flush_interval_s=0.02)
    rec.start()
    try:  # the flush thread stops before a failure is reported
        for i in range(10):
            rec.record(raw_event(i))
        assert wait_until(lambda: rec.pending == 0), rec.status()  # not retried through the dead connection for ever
    finally:
        rec.close()
    status = rec.status()
    assert status["store_reopens"] == 1 and "invalidated" in status["last_store_error"] and status["committed_records"] == 10
    assert rec.store is not first and rec.sink.store is rec.store
    with pytest.raises(duckdb.ConnectionException):  # the invalidated connection was closed, not leaked
        first.con.execute("SELECT 1")
    assert ids(rec.store) == sorted(f"e{i}" for i in range(10)) and sorted(enforcer.observed_ids()) == ids(rec.store)
    assert list((tmp_path / "wal").glob("wal-*")) == []
    rec.store.close()


def test_a_store_that_cannot_be_reopened_yet_is_tried_again_after_a_growing_back_off(tmp_path, monkeypatch):
    path = tmp_path / "gw.duckdb"
    first = DuckDBStore(path)
    attempts = []

    def open_store() -> DuckDBStore:
        attempts.append(time.monotonic())
        if len(attempts) <= 2:
            raise InputError(str(path), "cannot open the DuckDB store: IO Error: Could not set lock on file")
        return DuckDBStore(path)

    invalidate_connection(monkeypatch, first.con)
    rec = WALRecorder(tmp_path / "wal", first, Hasher(b"k"), flush_interval_s=0.02, open_store=open_store)
    rec.start()
    try:
        rec.record(raw_event(1))
        assert wait_until(lambda: rec.pending == 0), rec.status()
    finally:
        rec.close()
    assert len(attempts) == 3  # not spinning: 0.25 s after the fatal error, then 0.5 s, then 1 s
    assert attempts[1] - attempts[0] >= 0.5 and attempts[2] - attempts[1] >= 1.0
    status = rec.status()
    assert status["store_reopens"] == 1 and status["store_errors"] >= 3  # the fatal error, then two failed reopenings
    assert ids(rec.store) == ["e1"]
    rec.store.close()


def test_the_queue_in_memory_stays_bounded_while_the_store_fails_and_nothing_is_lost(tmp_path, store, monkeypatch):
    real_insert = sink_module.insert_new
    disk_full = True

    def insert(con, table, rows, key):
        if disk_full:
            raise duckdb.IOException("IO Error: No space left on device")
        return real_insert(con, table, rows, key)

    monkeypatch.setattr(sink_module, "insert_new", insert)
    enforcer = ScriptedEnforcer()
    rec = WALRecorder(tmp_path / "wal", store, Hasher(b"k"), enforcer=enforcer, flush_batch=4, flush_interval_s=0.02,
                      segment_bytes=2048, max_queued_records=8)  # fmt: skip
    rec.start()
    try:
        started = time.monotonic()
        for i in range(60):
            rec.record(raw_event(i))
            assert len(rec._queue) <= 8  # before: every record stayed in memory until stored
            time.sleep(0.005)  # the flush thread fails meanwhile, and rotates the segments
        assert len(list((tmp_path / "wal").glob("wal-*"))) > 2 and rec.status()["store_errors"] > 0
        assert rec.lag_s >= time.monotonic() - started - 0.05  # the first record's age, though it left memory
        disk_full = False
        assert wait_until(lambda: rec.pending == 0), rec.status()
    finally:
        rec.close()
    everything = sorted(f"e{i}" for i in range(60))
    assert ids(store) == everything and store.query("SELECT count(*) FROM gateway_log").column(0)[0].as_py() == 60
    assert sorted(enforcer.observed_ids()) == everything and rec.status()["committed_records"] == 60
    assert list((tmp_path / "wal").glob("wal-*")) == []


def test_records_dropped_from_memory_while_a_batch_fails_are_stored_once_each(tmp_path, store, monkeypatch):
    enforcer = ScriptedEnforcer()
    rec = WALRecorder(tmp_path / "wal", store, Hasher(b"k"), enforcer=enforcer, flush_batch=2, segment_bytes=1024,
                      max_queued_records=4)  # not started: flushed by hand  # fmt: skip
    recorded = iter(range(100))

    def record(n: int) -> None:
        for _ in range(n):
            rec.record(raw_event(next(recorded)))
            rec.wal.rotate_if_large()  # the flush thread's job: what is dropped spans segments

    record(4)
    real_insert = sink_module.insert_new
    failures = iter([duckdb.IOException("IO Error: No space left on device")])

    def requests_arrive_then_the_disk_is_full(con, table, rows, key):
        for exc in failures:  # while e0, e1 are in flight: e2.. leave memory, then e0, e1 come back
            record(5)
            raise exc
        return real_insert(con, table, rows, key)

    monkeypatch.setattr(sink_module, "insert_new", requests_arrive_then_the_disk_is_full)
    with pytest.raises(duckdb.IOException):
        rec._flush_all()
    assert len(rec._queue) == 4 and rec.pending == 9
    record(20)
    rec._flush_all()
    rec._flush_all()
    everything = sorted(f"e{i}" for i in range(29))
    assert ids(store) == everything and sorted(enforcer.observed_ids()) == everything
    assert rec.pending == 0 and rec.status()["committed_records"] == 29
    rec.close()
    assert list((tmp_path / "wal").glob("wal-*")) == []
