"""The recording worker's batches: records that cannot be stored are quarantined, store failures retried."""

from __future__ import annotations

import time

import duckdb
import orjson
import pytest

import distillguard.gateway.sink as sink_module
from distillguard.errors import InputError
from distillguard.gateway.process_recorder import WorkerSettings
from distillguard.gateway.sink import StoreSink
from distillguard.gateway.wal import WriteAheadLog
from distillguard.gateway.worker import RecordingWorker, open_store
from distillguard.privacy import Hasher
from distillguard.store.duckdb import DuckDBStore
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
