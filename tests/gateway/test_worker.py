"""The recording worker's batches: records that cannot be stored are quarantined, store failures retried."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Pipe

import duckdb
import orjson
import pytest

import distillguard.gateway.sink as sink_module
import distillguard.gateway.worker as worker_module
from distillguard.errors import InputError
from distillguard.gateway.process_recorder import WorkerSettings
from distillguard.gateway.sink import StoreSink
from distillguard.gateway.wal import WriteAheadLog
from distillguard.gateway.worker import RecordingWorker, open_store
from distillguard.privacy import Hasher
from distillguard.store.duckdb import DuckDBStore
from tests.gateway.factories import fail_insert_once_on, store_locked_by_another_process
from tests.gateway.test_recorder import raw_event


def append(wal: WriteAheadLog, event: dict, extra: dict | None = None) -> None:
    wal.append(orjson.dumps({"e": event, "x": extra or {}}))


def worker(tmp_path, wal: WriteAheadLog, sent: list) -> RecordingWorker:
    return RecordingWorker(WorkerSettings(str(tmp_path / "wal"), str(tmp_path / "gw.duckdb"), Hasher(b"k"), wal.first_seq), sent.append)


def stored_ids(w: RecordingWorker, table: str = "events") -> list[str]:
    return sorted(w.store.query(f"SELECT event_id FROM {table}").column(0).to_pylist())


def test_records_that_fail_a_batch_are_quarantined_with_their_position_and_the_rest_stored(tmp_path):
    wal = WriteAheadLog(tmp_path / "wal")
    append(wal, raw_event(1))
    append(wal, {**raw_event(2), "messages": "not a list of messages"})  # normalization cannot take it
    append(wal, raw_event(3), {"http_status": "two hundred"})  # its gateway_log row cannot be built
    wal.append(b"not a recorded exchange")  # CRC-valid, not ours
    append(wal, raw_event(5))
    sent: list = []
    w = worker(tmp_path, wal, sent)
    assert w.step(flush=True) == 5  # every record is done with: none is retried again
    assert stored_ids(w) == stored_ids(w, "gateway_log") == ["e1", "e5"]
    assert sent[-1] == ["commit", {1: 5}, 3]  # the serving process may delete the segment once closed
    assert w.stats()["quarantined_total"] == 3 and w.stats()["batches_total"] >= 1
    w.close()

    segment = (tmp_path / "wal" / "wal-000000000001.log").read_bytes()
    lines = [orjson.loads(line) for line in (tmp_path / "wal" / "quarantine.jsonl").read_bytes().splitlines()]
    by_what = {line["e"]["event_id"] if "e" in line else line["payload"]: line for line in lines}
    assert set(by_what) == {"e2", "e3", "not a recorded exchange"}
    assert "two hundred" in by_what["e3"]["reason"] and "two hundred" not in by_what["e2"]["reason"]  # each its own
    assert "not a recorded exchange" in by_what["not a recorded exchange"]["reason"]
    for line in lines:  # the position names the record's frame in the segment
        assert line["segment"] == 1
        length = int.from_bytes(segment[line["offset"] : line["offset"] + 4], "little")
        payload = segment[line["offset"] + 8 : line["offset"] + 8 + length]
        assert payload == (orjson.dumps({"e": line["e"], "x": line["x"]}) if "e" in line else line["payload"].encode())
    assert oct((tmp_path / "wal" / "quarantine.jsonl").stat().st_mode & 0o777) == "0o600"  # clear text, like the WAL


def test_a_store_failure_is_retried_not_quarantined(tmp_path, monkeypatch):
    wal = WriteAheadLog(tmp_path / "wal")
    append(wal, raw_event(1))
    append(wal, raw_event(2))
    sent: list = []
    w = worker(tmp_path, wal, sent)
    real_insert = sink_module.insert_new
    failures = iter([duckdb.IOException("IO Error: No space left on device")])

    def full_disk_once(*args, **kw):
        for exc in failures:
            raise exc
        return real_insert(*args, **kw)

    monkeypatch.setattr(sink_module, "insert_new", full_disk_once)
    with pytest.raises(duckdb.IOException):
        w.step(flush=True)
    assert stored_ids(w) == [] and len(w.pending) == 2 and w.sink.quarantined_total == 0 and sent == []
    assert w.step(flush=True) == 2
    assert stored_ids(w) == ["e1", "e2"] and sent[-1] == ["commit", {1: 2}, 0]
    w.close()


def test_excerpts_of_a_rolled_back_write_are_kept_by_its_retry(tmp_path, monkeypatch):
    """An account's excerpts are capped (5): a write that rolls back must not use up its allowance."""
    wal = WriteAheadLog(tmp_path / "wal")
    for i in range(1, 6):
        append(wal, raw_event(i))
    w = worker(tmp_path, wal, [])
    real_insert = sink_module.insert_new
    failures = iter([duckdb.IOException("IO Error: No space left on device")])

    def full_disk_once(con, table, *args, **kw):
        if table == "samples":
            for exc in failures:
                raise exc
        return real_insert(con, table, *args, **kw)

    monkeypatch.setattr(sink_module, "insert_new", full_disk_once)
    with pytest.raises(duckdb.IOException):
        w.step(flush=True)
    assert w.step(flush=True) == 5
    assert stored_ids(w, "samples") == ["e1", "e2", "e3", "e4", "e5"]
    w.close()


def test_a_split_batch_retried_after_a_store_failure_is_observed_once(tmp_path, monkeypatch):
    """Halves stored before a store failure are stored, and seen by online scoring, once."""
    observed: list[str] = []
    sink = StoreSink(DuckDBStore(tmp_path / "gw.duckdb"), Hasher(b"k"), quarantine_path=tmp_path / "q.jsonl",
                     observe=lambda t: observed.extend(t.column("event_id").to_pylist()))  # fmt: skip
    items = [(raw_event(0), {}), (raw_event(1), {}), (raw_event(2), {"http_status": "bad"}), (raw_event(3), {})]
    real_insert = sink_module.insert_new

    def fail_on_e3(con, table, rows, key):  # the store fails while the second half is being stored
        if "e3" in rows.column("event_id").to_pylist():
            raise duckdb.IOException("IO Error: No space left on device")
        return real_insert(con, table, rows, key)

    monkeypatch.setattr(sink_module, "insert_new", fail_on_e3)
    with pytest.raises(duckdb.IOException):
        sink.write(items)
    monkeypatch.setattr(sink_module, "insert_new", real_insert)
    assert sink.write(items) == 3
    assert sorted(observed) == ["e0", "e1", "e3"]
    assert sorted(sink.store.query("SELECT event_id FROM events").column(0).to_pylist()) == ["e0", "e1", "e3"]
    sink.store.close()


def test_a_record_quarantined_before_a_store_failure_is_not_quarantined_again_by_the_retry(tmp_path, monkeypatch):
    """A split batch isolates e2 (quarantined), then the store fails on e3: the retry sets e2 aside only once."""
    wal = WriteAheadLog(tmp_path / "wal")
    for i in range(4):
        append(wal, raw_event(i), {"http_status": "bad"} if i == 2 else {})
    sent: list = []
    w = worker(tmp_path, wal, sent)
    # after the split has set e2 aside, the disk is full once
    fail_insert_once_on(monkeypatch, "e3", duckdb.IOException("IO Error: No space left on device"))
    with pytest.raises(duckdb.IOException):
        w.step(flush=True)
    assert sent == []  # nothing reported done: the whole batch is retried
    assert w.step(flush=True) == 4
    assert stored_ids(w) == ["e0", "e1", "e3"]
    lines = (tmp_path / "wal" / "quarantine.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["e"]["event_id"] for line in lines] == ["e2"]
    assert w.stats()["quarantined_total"] == 1
    assert sent[-1] == ["commit", {1: 4}, 1]  # reported once, with the commit that finishes its batch
    w.close()


def run_in_thread(w: RecordingWorker, conn) -> tuple[threading.Thread, list]:
    """``w.run(conn)`` in a thread; the list gets what it raised (or None)."""
    outcome: list = []

    def run() -> None:
        try:
            w.run(conn, tick_s=0.01)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_fatal_store_error_ends_the_worker_instead_of_retrying_forever(tmp_path, monkeypatch):
    """DuckDB invalidates a connection after a fatal error: retrying through it can never succeed."""
    wal = WriteAheadLog(tmp_path / "wal")
    append(wal, raw_event(1))
    sent: list = []
    w = worker(tmp_path, wal, sent)

    def invalidated(*args, **kw):
        raise duckdb.FatalException("FATAL Error: Failed: database has been invalidated because of a previous fatal error")

    monkeypatch.setattr(sink_module, "insert_new", invalidated)
    ours, theirs = Pipe()
    thread, outcome = run_in_thread(w, theirs)
    thread.join(5)
    if thread.is_alive():  # still retrying: stop it (a stop ends its loop) before failing
        ours.send_bytes(b"stop")
        thread.join(10)
    assert outcome and isinstance(outcome[0], worker_module.StoreInvalidated)
    [told] = [m for m in sent if m[0] in ("store_error", "commit")]  # told why, once; nothing reported stored
    assert told[0] == "store_error" and "invalidated" in told[1]
    w.close()


def test_waiting_for_the_store_lock_gives_up_when_a_stop_is_requested(tmp_path):
    path = tmp_path / "gw.duckdb"
    with store_locked_by_another_process(path):
        t0 = time.monotonic()
        with pytest.raises(worker_module.ShutdownRequested):
            open_store(str(path), timeout_s=30, stop_requested=lambda wait_s: True)
        assert time.monotonic() - t0 < 5
        asked: list[float] = []
        with pytest.raises(InputError, match="Could not set lock"):  # no stop: waits its time out, then says why
            open_store(str(path), timeout_s=0.5, stop_requested=lambda wait_s: asked.append(wait_s) or False)
        assert asked and all(0 < s <= 0.25 for s in asked)
        t0 = time.monotonic()
        with pytest.raises(worker_module.ShutdownRequested):  # a predecessor worker holds it: waited for while it runs
            open_store(str(path), timeout_s=30, stop_requested=lambda wait_s: True,
                       predecessor_running=lambda: time.monotonic() - t0 < 1.0)  # fmt: skip
        assert 1.0 <= time.monotonic() - t0 < 5


def test_a_running_predecessor_is_known_by_its_pid_file(tmp_path):
    wal = WriteAheadLog(tmp_path / "wal")
    assert worker_module.running_predecessor(tmp_path / "wal") is None
    w = worker(tmp_path, wal, [])
    assert (tmp_path / "wal" / worker_module.WORKER_PID_FILE).read_text() == worker_module.pid_record(os.getpid())
    assert worker_module.running_predecessor(tmp_path / "wal") is None  # this process itself is not a predecessor
    with store_locked_by_another_process(tmp_path / "other.duckdb") as holder_pid:
        (tmp_path / "wal" / worker_module.WORKER_PID_FILE).write_text(worker_module.pid_record(holder_pid))
        assert worker_module.running_predecessor(tmp_path / "wal") == holder_pid
    assert worker_module.running_predecessor(tmp_path / "wal") is None  # exited (killed): its file is stale
    w.close()


def test_a_pid_file_naming_a_reused_pid_is_no_predecessor(tmp_path):
    """The pid of an ended worker given to another process: told apart by its start time."""
    (tmp_path / "wal").mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pid_file = tmp_path / "wal" / worker_module.WORKER_PID_FILE
        start = worker_module.process_start(other.pid)
        assert start is not None and start.isdigit()
        pid_file.write_text(f"{other.pid} {int(start) - 1}")  # the same pid, an earlier process
        assert worker_module.running_predecessor(tmp_path / "wal") is None
        pid_file.write_text(worker_module.pid_record(other.pid))
        assert worker_module.running_predecessor(tmp_path / "wal") == other.pid
        pid_file.write_text(str(other.pid))  # a file without a start time (written by an older version)
        assert worker_module.running_predecessor(tmp_path / "wal") == other.pid
    finally:
        other.kill()
        other.wait()


def test_an_unusable_store_fails_at_once_naming_the_file_and_the_problem(tmp_path):
    path = tmp_path / "gw.duckdb"
    store = DuckDBStore(path)
    store.con.execute("UPDATE meta SET value = '999' WHERE key = 'event_schema_version'").fetchall()
    store.close()
    t0 = time.monotonic()
    with pytest.raises(InputError) as err:
        open_store(str(path), timeout_s=10)
    assert time.monotonic() - t0 < 5  # not retried as if another process held it
    assert str(path) in str(err.value) and "schema v999" in str(err.value)


def test_a_store_whose_gateway_log_has_other_columns_is_refused_at_open(tmp_path):
    store = DuckDBStore(tmp_path / "gw.duckdb")
    store.con.execute("CREATE TABLE gateway_log (event_id VARCHAR, note VARCHAR)").fetchall()
    with pytest.raises(InputError, match="gateway_log table has columns"):
        StoreSink(store, Hasher(b"k"))
    store.close()
