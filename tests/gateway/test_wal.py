"""The write-ahead file: framing, torn tails, rotation, and deletion only once stored."""

from __future__ import annotations

import os

from distillguard.gateway.wal import WriteAheadLog, frame, read_segment


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
