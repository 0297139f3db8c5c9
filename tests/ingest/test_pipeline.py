"""ingest_files: the worker-process path stores exactly what the serial path stores."""

from __future__ import annotations

import gzip
import os

import orjson
import pytest

from distillguard.ingest import pipeline
from distillguard.ingest.pipeline import ingest_files
from distillguard.ingest.writers import write_events
from distillguard.privacy import Hasher
from distillguard.store.duckdb import DuckDBStore

from .factories import litellm_record, make_event, truncate_gzip

GARBAGE = [
    b"this is not json",
    b"[1, 2, 3]",
    b'{"startTime": "abc", "model_parameters": {}, "id": "bad-ts"}',
    b'{"id": "huge", "startTime": 1700000000.0, "completion_tokens": 9223372036854775808}',  # > int64
    b"   ",  # blank: skipped, not quarantined
    b'{"id": "cut-off", "startTime": 1700000000.0, "messages": [',
]


def _input(tmp_path, name="mixed.jsonl"):
    """~250 LiteLLM lines with repeated ids, varied text, and malformed lines in the middle and at the end."""
    events = [make_event(i) for i in range(240)]
    events += [make_event(i, completion_text=None) for i in range(5)]  # repeats of stored ids
    for i, ev in enumerate(events):
        if i % 7 == 0:
            ev["messages"] = [{"role": "user", "content": f"Contact me at user{i}@example.com, question {i}?"}]
        if i % 11 == 0:
            ev["messages"] = []  # blank prompt: never an excerpt
    src = tmp_path / "events.jsonl"
    write_events(events, src, fmt="litellm")
    lines = src.read_bytes().splitlines()
    for k, bad in enumerate(GARBAGE):  # some in the middle...
        lines.insert(17 + 37 * k, bad)
    lines += GARBAGE[:3]  # ...and some at the end
    path = tmp_path / name
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
    return path


def _run(tmp_path, paths, workers, tag, **kwargs):
    out = tmp_path / f"out-{tag}"
    store = DuckDBStore(out / "dg.duckdb")
    report = ingest_files(
        paths, store, Hasher(b"test-secret"), quarantine_path=out / "quarantine.jsonl", workers=workers, **kwargs
    )
    tables = {
        name: store.query(f"SELECT * FROM {name} ORDER BY event_id").to_pylist() for name in ("events", "samples", "texts")
    }
    quarantine = (out / "quarantine.jsonl").read_bytes() if (out / "quarantine.jsonl").exists() else b""
    store.close()
    return report, tables, quarantine


def _summary(report):
    return (
        [(f.path, f.format, f.events, f.inserted, f.quarantined) for f in report.files],
        report.quarantine_examples,
    )


@pytest.mark.parametrize("keep_text", [False, True])
def test_two_workers_store_exactly_what_one_stores(tmp_path, monkeypatch, keep_text):
    # many small tasks, results arriving out of order; lines longer than a block are carried over
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 3000)
    paths = [_input(tmp_path), _input(tmp_path, "mixed.jsonl.gz")]
    serial = _run(tmp_path, paths, 1, "serial", batch_size=40, keep_text=keep_text)
    parallel = _run(tmp_path, paths, 2, "parallel", batch_size=40, keep_text=keep_text)
    assert serial[0].workers == 1 and parallel[0].workers == 2
    assert _summary(parallel[0]) == _summary(serial[0])
    assert parallel[1] == serial[1]
    assert parallel[2] == serial[2]
    # the input really has what the test is about
    report, tables, quarantine = serial
    assert report.quarantined == 2 * 8 and quarantine.count(b"\n") == 16
    assert b"integer out of the 64-bit range" in quarantine
    assert report.files[0].inserted == 240 and report.files[1].inserted == 0  # second file: all duplicates
    assert len(tables["samples"]) == 15 and any("<email>" in s["prompt_excerpt"] for s in tables["samples"])
    assert bool(tables["texts"]) == keep_text
    assert {"read", "normalize", "store", "wait"} <= set(parallel[0].timings_s)


def test_the_workers_fork_server_stops_and_a_later_ingest_starts_it_again(tmp_path, monkeypatch):
    from multiprocessing import forkserver

    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 3000)
    paths = [_input(tmp_path)]
    first = _run(tmp_path, paths, 2, "first", batch_size=40)
    pid = forkserver._forkserver._forkserver_pid
    assert pid is not None and os.path.exists(f"/proc/{pid}")  # the workers' server outlives the pool
    pipeline.stop_worker_server()
    assert forkserver._forkserver._forkserver_pid is None and not os.path.exists(f"/proc/{pid}")
    pipeline.stop_worker_server()  # twice: nothing left to stop
    second = _run(tmp_path, paths, 2, "second", batch_size=40)
    assert second[0].workers == 2 and second[1] == first[1]


def test_blocks_reach_workers_through_shared_memory_and_oversized_ones_through_the_pipe(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 3000)  # slots of 6,000 bytes
    events = [make_event(i) for i in range(120)]
    events[60]["messages"] = [{"role": "user", "content": "a long question " * 1000}]  # a 16 kB line: its own block
    path = tmp_path / "events.jsonl"
    write_events(events, path, fmt="litellm")
    slots: list[int | None] = []
    put = pipeline._SharedBlocks.put
    monkeypatch.setattr(pipeline._SharedBlocks, "put", lambda self, block: slots.append(put(self, block)) or slots[-1])
    segments = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    serial = _run(tmp_path, [path], 1, "serial")
    parallel = _run(tmp_path, [path], 2, "parallel")
    assert parallel[0].workers == 2 and parallel[1:] == serial[1:] and len(serial[1]["events"]) == 120
    assert None in slots and sum(s is not None for s in slots) >= 10  # the long line's block went through the pipe
    if os.path.isdir("/dev/shm"):
        assert set(os.listdir("/dev/shm")) <= segments  # the segment is gone


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="the room check is for Linux's /dev/shm")
def test_without_room_in_shared_memory_every_block_takes_the_pipe(tmp_path, monkeypatch):
    # a container's small /dev/shm: writing past its room would kill the scan (SIGBUS), so it is not used
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 3000)
    path = tmp_path / "events.jsonl"
    write_events([make_event(i) for i in range(60)], path, fmt="litellm")
    real_statvfs = os.statvfs
    monkeypatch.setattr(os, "statvfs", lambda p: os.statvfs_result((4096, 4096, 100, 1, 1, 0, 0, 0, 0, 255))
                        if p == "/dev/shm" else real_statvfs(p))  # fmt: skip
    created = []
    monkeypatch.setattr(pipeline._SharedBlocks, "__init__", lambda *a: created.append(a))
    serial, parallel = _run(tmp_path, [path], 1, "serial"), _run(tmp_path, [path], 2, "parallel")
    assert parallel[1:] == serial[1:] and len(serial[1]["events"]) == 60
    assert created == []


def test_truncated_gzip_and_mixed_formats_with_workers(tmp_path):
    gz = truncate_gzip(_input(tmp_path, "cut.jsonl.gz"), keep_fraction=0.5)
    other = tmp_path / "openai.jsonl"  # a format without parse_lines: read in the main process
    write_events([make_event(1000 + i) for i in range(5)], other, fmt="openai")
    single = tmp_path / "one.jsonl"
    single.write_bytes(orjson.dumps(litellm_record()) + b"\n")
    serial = _run(tmp_path, [gz, other, single], 1, "serial")
    parallel = _run(tmp_path, [gz, other, single], 2, "parallel")
    assert _summary(parallel[0]) == _summary(serial[0])
    assert parallel[1:] == serial[1:]
    assert "truncated or corrupt" in serial[2].decode()
    assert [f.format for f in serial[0].files] == ["litellm", "openai", "litellm"]


def test_default_workers_stay_in_process_for_small_inputs(tmp_path):
    report, _, _ = _run(tmp_path, [_input(tmp_path)], None, "default")
    assert report.workers == 1
    with pytest.raises(ValueError, match="workers"):
        ingest_files([], DuckDBStore(":memory:"), Hasher(b"k"), workers=0)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failed_store_append_stops_the_ingest_with_its_error(tmp_path, monkeypatch, workers):
    # appends run in a writer thread: their error must still reach the caller, and no append may outlive the ingest
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 3000)
    path = _input(tmp_path)
    store = DuckDBStore(tmp_path / "dg.duckdb")
    calls = []

    def append(table_name, table):
        calls.append(table_name)
        if len(calls) == 2:
            raise OSError("disk full")
        return DuckDBStore.append(store, table_name, table)

    monkeypatch.setattr(store, "append", append)
    progress = []
    with pytest.raises(OSError, match="disk full"):
        ingest_files([path], store, Hasher(b"k"), workers=workers, store_rows=50, on_progress=progress.append)
    assert calls == ["events", "events"] and len(progress) == 1  # the first append was counted, nothing ran after
