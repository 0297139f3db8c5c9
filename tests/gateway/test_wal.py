"""The write-ahead file: framing, torn tails, rotation, and deletion only once stored."""

from __future__ import annotations

import os

import pytest

import distillguard.gateway.wal as wal_module
from distillguard.gateway.wal import WALTailer, WriteAheadLog, frame, read_segment


def test_records_come_back_in_order(tmp_path):
    wal = WriteAheadLog(tmp_path)
    for i in range(100):
        wal.append(b"record-%d" % i)
    wal.sync()
    [path] = wal.segment_paths()
    assert list(read_segment(path)) == [b"record-%d" % i for i in range(100)]
    assert wal.pending == 100


def test_torn_or_corrupt_tail_stops_the_read(tmp_path):
    path = tmp_path / "wal-000000000001.log"
    good = frame(b"one") + frame(b"two")
    path.write_bytes(good + frame(b"three")[:-2])  # killed inside the third write
    assert list(read_segment(path)) == [b"one", b"two"]
    corrupt = bytearray(good + frame(b"three"))
    corrupt[-1] ^= 0xFF
    path.write_bytes(bytes(corrupt))
    assert list(read_segment(path)) == [b"one", b"two"]


def test_segments_are_deleted_only_when_closed_and_fully_committed(tmp_path):
    wal = WriteAheadLog(tmp_path, segment_bytes=64)
    first = [wal.append(b"x" * 40) for _ in range(2)]
    assert wal.rotate_if_large()
    second = wal.append(b"y")
    assert first == [1, 1] and second == 2 and len(wal.segment_paths()) == 2
    wal.committed({1: 1})
    assert len(wal.segment_paths()) == 2  # one record of segment 1 is not stored yet
    wal.committed({1: 1})
    assert [p.name for p in wal.segment_paths()] == ["wal-000000000002.log"]
    wal.committed({2: 1})
    assert len(wal.segment_paths()) == 1  # still the open segment
    wal.close()
    assert wal.segment_paths() == [] and wal.pending == 0


def test_reopen_finds_leftovers_and_writes_after_them(tmp_path):
    wal = WriteAheadLog(tmp_path)
    wal.append(b"left over")
    os.close(wal._fd)  # a crash: no close, no commit
    again = WriteAheadLog(tmp_path)
    [old] = again.existing_segments()
    assert list(read_segment(old)) == [b"left over"]
    assert again.append(b"new") == 2
    again.drop_existing()
    assert [p.name for p in again.segment_paths()] == ["wal-000000000002.log"]


def test_sync_each_record(tmp_path):
    wal = WriteAheadLog(tmp_path)
    wal.append(b"a", sync=True)
    assert wal._dirty is False


def test_tailer_reads_what_is_appended_as_it_arrives_and_waits_for_a_partial_record(tmp_path):
    wal = WriteAheadLog(tmp_path)
    tail = WALTailer(tmp_path)
    seg = wal.append(b"a")
    assert tail.read() == [(seg, 0, b"a", False)]
    # the writer is inside a write: half a record is in the file (read_segment would call it torn)
    half = frame(b"bb")[:5]
    os.write(wal._fd, half)
    assert tail.read() == []
    os.write(wal._fd, frame(b"bb")[5:])
    assert tail.read() == [(seg, len(frame(b"a")), b"bb", False)]
    assert tail.read_counts == {seg: 2} and seg not in tail.finished  # the live segment is never finished


def test_tailer_finishes_a_segment_once_a_later_one_exists_and_skips_its_torn_tail(tmp_path):
    (tmp_path / "wal-000000000001.log").write_bytes(frame(b"old-1") + frame(b"old-2") + frame(b"old-3")[:-1])
    wal = WriteAheadLog(tmp_path)  # a new run: segment 2
    wal.append(b"new-1")
    tail = WALTailer(tmp_path)
    assert [(s, p, r) for s, _, p, r in tail.read()] == [(1, b"old-1", True), (1, b"old-2", True), (2, b"new-1", True)]
    assert tail.finished == {1} and tail.torn_tails == 1  # a previous run's segment: read to its (torn) end, counted
    wal.append(b"new-2")
    assert [(s, p, r) for s, _, p, r in tail.read()] == [(2, b"new-2", False)]  # appended after the tailer started
    wal.close()
    assert tail.read(final=True) == [] and tail.finished == {1, 2}


def test_tailer_honours_max_records_and_resumes(tmp_path):
    wal = WriteAheadLog(tmp_path, segment_bytes=40)
    for i in range(6):
        wal.append(b"r%d" % i)
        wal.rotate_if_large()
    tail = WALTailer(tmp_path)
    first = tail.read(max_records=4)
    rest = tail.read()
    assert [r.payload for r in first + rest] == [b"r%d" % i for i in range(6)] and len(first) == 4


def test_committed_through_is_idempotent(tmp_path):
    wal = WriteAheadLog(tmp_path, segment_bytes=10)
    for i in range(3):
        wal.append(b"record-%d" % i)
    seg = wal.first_seq
    wal.rotate_if_large()
    assert wal.committed_through({seg: 2}) == 2
    assert wal.committed_through({seg: 1, 999: 5}) == 0  # a restarted reader reporting from the start; unknown segments
    assert wal.pending == 1 and (tmp_path / "wal-000000000001.log").exists()
    assert wal.committed_through({seg: 3}) == 1
    assert not (tmp_path / "wal-000000000001.log").exists()  # closed and fully stored: deleted


def cut_short(monkeypatch, wal: WriteAheadLog, *, truncate_fails: bool = False) -> None:
    """The next write to ``wal``'s segment writes half its bytes (a disk that fills up); optionally
    taking it back with ftruncate fails too."""
    real_write, real_ftruncate = os.write, os.ftruncate
    target = wal._fd

    def short_write(fd, data):
        if fd != target:
            return real_write(fd, data)
        monkeypatch.setattr(wal_module.os, "write", real_write)
        return real_write(fd, bytes(data)[: len(data) // 2])

    def failing_ftruncate(fd, length):
        if fd == target:
            raise OSError(28, "No space left on device")
        return real_ftruncate(fd, length)

    monkeypatch.setattr(wal_module.os, "write", short_write)
    if truncate_fails:
        monkeypatch.setattr(wal_module.os, "ftruncate", failing_ftruncate)


def test_a_write_cut_short_is_taken_back_and_the_next_record_is_readable(tmp_path, monkeypatch):
    wal, tail = WriteAheadLog(tmp_path), WALTailer(tmp_path)
    wal.append(b"first")
    cut_short(monkeypatch, wal)
    with pytest.raises(OSError, match="short write"):
        wal.append(b"lost" * 10)
    wal.append(b"after")
    assert [r.payload for r in tail.read()] == [b"first", b"after"]  # nothing torn left between them
    assert wal.pending == 2 and len(wal.segment_paths()) == 1


def test_a_write_cut_short_that_cannot_be_truncated_moves_to_a_new_segment(tmp_path, monkeypatch):
    wal, tail = WriteAheadLog(tmp_path), WALTailer(tmp_path)
    first = wal.append(b"first")
    cut_short(monkeypatch, wal, truncate_fails=True)
    with pytest.raises(OSError, match="short write"):
        wal.append(b"lost" * 10)
    second = wal.append(b"after")
    assert second == first + 1  # the torn record stays at the end of a closed segment
    assert [(r.segment, r.payload) for r in tail.read()] == [(first, b"first"), (second, b"after")]
    assert tail.finished == {first} and tail.torn_tails == 1
    wal.committed_through({first: 1})
    assert [p.name for p in wal.segment_paths()] == ["wal-000000000002.log"]  # closed and stored: deleted


def test_a_failed_fsync_keeps_the_record_counted_and_dirty_for_the_next_sync(tmp_path, monkeypatch):
    wal = WriteAheadLog(tmp_path)
    real_fsync = os.fsync
    failures = iter([OSError(5, "Input/output error")])

    def fsync_fails_once(fd):
        for exc in failures:
            raise exc
        return real_fsync(fd)

    monkeypatch.setattr(wal_module.os, "fsync", fsync_fails_once)
    position = wal.append_record(b"first", sync=True)  # written, not yet durable: not a loss to report
    assert position.offset == 0 and wal._dirty
    wal.sync()
    assert not wal._dirty
    assert list(read_segment(tmp_path / wal_module.segment_name(position.segment))) == [b"first"]
    wal.close()
