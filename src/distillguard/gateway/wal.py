"""A write-ahead file: length + CRC framed records in numbered segment files.

Each record is written with one ``write(2)`` on an ``O_APPEND`` descriptor, so
once :meth:`WriteAheadLog.append` returns the record is in the kernel's page
cache and survives the process being killed (SIGKILL, OOM).  It survives an OS
crash or power loss only after the next :meth:`WriteAheadLog.sync` (an
``fsync``), which the recorder runs every ``wal_fsync_interval_s``.

A segment is deleted only when it is closed (rotated) and every record written
to it has been reported committed (stored) via :meth:`WriteAheadLog.committed`.
A crash can leave a torn last record; :func:`read_segment` stops there (its
bytes never became an acknowledged record, since ``append`` had not returned).
A write that fails part-way (a full disk) is taken back before ``append`` raises:
the segment is truncated to where the record began, or, when even that fails,
the writer goes on in a new segment, leaving the torn record at the end of a
closed one.  So no record is ever written after a torn one in a segment that is
still being written (a reader could not tell it from a record being written).

Frame: ``<u32 payload length><u32 crc32(payload)><payload>``.

Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> wal = WriteAheadLog(d)
    >>> seg = wal.append(b"hello")
    >>> wal.sync(); [list(read_segment(p)) for p in wal.segment_paths()]
    [[b'hello']]
    >>> wal.committed({seg: 1}); wal.close(); wal.segment_paths()
    []
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("distillguard.gateway.wal")

_HEADER = struct.Struct("<II")
_PREFIX, _SUFFIX = "wal-", ".log"


def segment_name(seq: int) -> str:
    return f"{_PREFIX}{seq:012d}{_SUFFIX}"


def segment_seq(path: Path) -> int | None:
    name = path.name
    if name.startswith(_PREFIX) and name.endswith(_SUFFIX):
        digits = name[len(_PREFIX) : -len(_SUFFIX)]
        return int(digits) if digits.isdigit() else None
    return None


def frame(payload: bytes) -> bytes:
    """One record as written to a segment."""
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


class RecordPosition(NamedTuple):
    """Where a record's frame is: its segment and the byte offset the frame begins at."""

    segment: int
    offset: int


def read_segment(path: str | Path) -> Iterator[bytes]:
    """The complete records of one segment, in order; stops at a torn or corrupt tail."""
    for _, payload in read_segment_at(path):
        yield payload


def read_segment_at(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """``(offset, payload)`` of the complete records of one segment, in order; stops at a torn or corrupt tail."""
    data = Path(path).read_bytes()
    pos, end = 0, len(data)
    while pos + _HEADER.size <= end:
        length, crc = _HEADER.unpack_from(data, pos)
        start = pos + _HEADER.size
        if start + length > end:
            return  # torn: the writer died inside this record's write
        payload = data[start : start + length]
        if zlib.crc32(payload) != crc:
            return
        yield pos, payload
        pos = start + length


class WriteAheadLog:
    """Append-only segments in ``directory``; thread-safe (appends from the event loop, sync/rotate from a thread).

    Existing segments found at open are left for the caller to replay
    (:meth:`existing_segments`) and are deleted with :meth:`drop_existing` once stored.
    """

    def __init__(self, directory: str | Path, segment_bytes: int = 16 * 1024 * 1024):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        listed = _list_segments(self.directory)
        self._existing = [p for _, p in listed]
        self._seq = max((seq for seq, _ in listed), default=0)
        # per open/closed segment: [records written, records committed, closed?]
        self._counts: dict[int, list] = {}
        self._fd = -1
        self._size = 0  # bytes in the current segment: where its next record begins
        self._dirty = False
        self._torn_at: int | None = None  # a write that failed part-way began here and is not taken back yet
        self._switch_segment()
        _sync_dir(self.directory)
        self.first_seq = self._seq  # this run's first segment: lower numbers are a previous run's

    # ------------------------------------------------------------ writing

    def _switch_segment(self) -> int:
        """Write to a new segment from now on; returns the previous one's descriptor (-1 at the
        start) for the caller to close, and marks that segment closed.  The caller syncs the
        directory: the new file's entry must survive a power loss too."""
        seq = self._seq + 1
        fd = os.open(self.directory / segment_name(seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        old_fd, old_seq = self._fd, self._seq
        self._fd, self._seq, self._size = fd, seq, 0
        self._counts[seq] = [0, 0, False]
        if old_seq in self._counts:
            self._counts[old_seq][2] = True
        return old_fd

    def append(self, payload: bytes, *, sync: bool = False) -> int:
        """Write one record; returns its segment number.  ``sync`` fsyncs before returning.

        Raises OSError when the record could not be written whole (nothing of it stays readable).
        """
        return self.append_record(payload, sync=sync).segment

    def append_record(self, payload: bytes, *, sync: bool = False) -> RecordPosition:
        """:meth:`append`, returning where the record was written."""
        data = frame(payload)
        with self._lock:
            if self._fd < 0:
                raise OSError(errno.EBADF, "write-ahead file: closed")
            if self._torn_at is not None:  # an earlier failed write could not be taken back yet
                self._take_back_torn_write()
            start = self._size
            try:
                written = os.write(self._fd, data)
                if written != len(data):  # a short write to a regular file means the disk is full
                    raise OSError(errno.ENOSPC, f"write-ahead file: short write ({written} of {len(data)} bytes)")
            except OSError:
                self._torn_at = start
                try:
                    self._take_back_torn_write()
                except OSError:
                    log.exception("could not take back a failed write-ahead write; the next append tries again")
                raise
            self._size += written
            seq = self._seq
            self._counts[seq][0] += 1
            self._dirty = True
            if sync:
                try:
                    os.fsync(self._fd)
                    self._dirty = False
                except OSError:  # the record is in the segment: it stays dirty for the next sync to retry,
                    # and is not reported lost (the caller would count it lost yet the WAL would replay it)
                    log.exception("write-ahead fsync failed; the next sync tries again")
        return RecordPosition(seq, start)

    def _take_back_torn_write(self) -> None:
        """Remove what a failed write left in the current segment (called with the lock held).

        Truncates the segment back to where that write began; if that fails too, the torn bytes
        stay at the end of a segment that is closed from now on (a reader skips them once a later
        segment exists) and writing goes on in a new segment.  Raises OSError if neither works.
        """
        try:
            os.ftruncate(self._fd, self._torn_at)  # type: ignore[arg-type]
        except OSError:
            self._torn_at = None
            self._retire(self._switch_segment())
            return
        self._torn_at = None

    def _retire(self, old_fd: int) -> None:
        """A segment just switched away from: its records were acknowledged, so to disk with its directory entry."""
        try:
            _sync_dir(self.directory)
            os.fsync(old_fd)
        finally:
            os.close(old_fd)

    def sync(self) -> None:
        """fsync the current segment if it has unsynced records (without holding appends up)."""
        with self._lock:
            if not self._dirty or self._fd < 0:
                return
            self._dirty = False
            fd = os.dup(self._fd)  # so a concurrent rotate cannot close it under us
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def rotate_if_large(self) -> bool:
        """Close the current segment and start a new one when it has reached ``segment_bytes``."""
        with self._lock:
            if self._size < self.segment_bytes or self._fd < 0:
                return False
            old_fd = self._switch_segment()
        self._retire(old_fd)
        self._delete_done()
        return True

    def committed(self, per_segment: dict[int, int]) -> None:
        """Report records of each segment as stored; fully stored closed segments are deleted."""
        with self._lock:
            for seq, n in per_segment.items():
                self._counts[seq][1] += n
        self._delete_done()

    def committed_through(self, stored: dict[int, int]) -> int:
        """Report, per segment of this run, how many of its records (from its start) are stored.

        Idempotent, unlike :meth:`committed`: a count lower than one reported before changes
        nothing, so a restarted reader that reports again from the start cannot over-count.
        Segments this log does not know (a previous run's, or deleted) are ignored.  Returns how
        many records became committed; fully stored closed segments are deleted.
        """
        added = 0
        with self._lock:
            for seq, n in stored.items():
                counts = self._counts.get(seq)
                if counts is not None and n > counts[1]:
                    added += n - counts[1]
                    counts[1] = n
        if added:
            self._delete_done()
        return added

    def _delete_done(self) -> None:
        with self._lock:
            done = [s for s, (w, c, closed) in self._counts.items() if closed and c >= w]
            for s in done:
                del self._counts[s]
        for s in done:
            (self.directory / segment_name(s)).unlink(missing_ok=True)

    @property
    def pending(self) -> int:
        """Records written but not yet reported committed."""
        with self._lock:
            return sum(w - c for w, c, _ in self._counts.values())

    def close(self) -> None:
        """Sync and close; the current segment is deleted when all its records are committed."""
        with self._lock:
            if self._fd < 0:
                return
            fd, self._fd = self._fd, -1
            self._counts[self._seq][2] = True
        os.fsync(fd)
        os.close(fd)
        self._delete_done()

    # ------------------------------------------------------------ replay

    def existing_segments(self) -> list[Path]:
        """Segments left by a previous run (oldest first), to replay before serving."""
        return list(self._existing)

    def drop_existing(self) -> None:
        """Delete the previous run's segments (call once their records are stored)."""
        for p in self._existing:
            p.unlink(missing_ok=True)
        self._existing = []

    def segment_paths(self) -> list[Path]:
        """Every segment file currently in the directory, oldest first."""
        return [p for _, p in _list_segments(self.directory)]

    def disk_bytes(self) -> int:
        """Bytes of all segment files in the directory (a previous run's too): what the WAL holds on disk.

        Lists the directory: call it off the request path (the recorders refresh it from their threads).
        """
        total = 0
        for path in self.segment_paths():
            try:
                total += path.stat().st_size
            except FileNotFoundError:  # deleted once stored, since the listing
                pass
        return total


@dataclass
class AppendFailures:
    """Exchanges a recorder could not append to the WAL (a full disk, an I/O error): served, not recorded.

    ``record()`` counts them here instead of raising into the request handler: the client's answer
    has gone out or is going out, and recording must not turn it into a 500 or a broken stream; the
    API stays up, recording is what is lost (``lost`` says how much).  ``failing`` holds while the
    latest append failed (``/healthz`` says degraded).  The error is logged at most once per
    ``log_interval_s`` (a full disk fails every request), and once more when appends work again.
    Thread-safe.
    """

    log_interval_s: float = 60.0
    lost: int = 0  # exchanges never written to the WAL
    last_error: str | None = None
    failing: bool = False  # the latest append failed
    _logged_at: float | None = None
    _announced: bool = False  # a failure was logged and its recovery not yet
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def failed(self, exc: BaseException) -> None:
        """One exchange not recorded because of ``exc``."""
        with self._lock:
            self.lost += 1
            self.last_error = repr(exc)
            self.failing = True
            now = time.monotonic()
            if self._logged_at is not None and now - self._logged_at < self.log_interval_s:
                return
            self._logged_at, self._announced, lost = now, True, self.lost
        log.error("appending to the write-ahead file failed (%r): the exchange was served but not recorded (%d so far). "
                  "The gateway goes on serving; this is logged again at most every %.0f s while it lasts",
                  exc, lost, self.log_interval_s)  # fmt: skip

    def recovered(self) -> None:
        """An append worked after failures (the caller checks ``failing`` first: this is the rare path)."""
        with self._lock:
            self.failing = False
            announced, self._announced = self._announced, False
            lost = self.lost
        if announced:
            log.warning("appending to the write-ahead file works again; %d exchanges were not recorded in all", lost)

    def status(self) -> dict[str, object]:
        """``lost_records`` and ``wal_write_error`` (the latest append's error while it fails, else None)."""
        return {"lost_records": self.lost, "wal_write_error": self.last_error if self.failing else None}


def _list_segments(directory: Path) -> list[tuple[int, Path]]:
    """``(seq, path)`` of every segment file in ``directory``, oldest first."""
    return sorted((seq, p) for p in directory.iterdir() if (seq := segment_seq(p)) is not None)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class TailedRecord(NamedTuple):
    """One record as :meth:`WALTailer.read` returns it."""

    segment: int
    offset: int  # where its frame begins in the segment file
    payload: bytes
    replayed: bool  # already in the files when the tailer was made: an earlier reader may have stored it


class WALTailer:
    """Reads a WAL directory's records as another process appends them (the recording worker's side).

    :meth:`read` returns the complete records written since the last call, oldest first (as
    :class:`TailedRecord`); :attr:`read_counts` holds how many records of each segment were read so
    far (the counts the writer's :meth:`WriteAheadLog.committed_through` takes once they are stored).
    A segment is finished once a later one exists (the writer only appends to the newest, and
    creates the next one after its last write to this one returned) or, with ``final``, when the
    writer has closed the log; a torn or corrupt tail of a finished segment (a crash inside a write,
    or a failed write the writer left behind by moving on) is skipped, logged and counted in
    :attr:`torn_tails`: it was never acknowledged.  ``replayed`` is true for a record that was
    already in the files when the tailer was made: an earlier reader (a previous run, or a worker
    that died) may have stored it.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> wal, tail = WriteAheadLog(d), WALTailer(d)
        >>> seg = wal.append(b"one")
        >>> tail.read(), tail.read(), tail.read_counts
        ([TailedRecord(segment=1, offset=0, payload=b'one', replayed=False)], [], {1: 1})
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._pos: dict[int, int] = {}  # segment -> byte offset of its next unread record
        self.read_counts: dict[int, int] = {}
        self.finished: set[int] = set()
        self.torn_tails = 0  # finished segments whose last bytes were not a complete record
        self._fds: dict[int, int] = {}
        self._replay_until = {seq: path.stat().st_size for seq, path in _list_segments(self.directory)}

    def read(self, max_records: int | None = None, *, final: bool = False) -> list[TailedRecord]:
        """Complete records not read before (at most ``max_records``); ``final``: the writer is closed."""
        out: list[TailedRecord] = []
        segments = _list_segments(self.directory)
        listed = {seq for seq, _ in segments}
        for seq in [s for s in self._fds if s not in listed]:  # deleted by the writer once stored: let the inode go
            os.close(self._fds.pop(seq))
            self.finished.add(seq)
        for i, (seq, path) in enumerate(segments):
            if seq in self.finished:
                continue
            closed = final or i < len(segments) - 1  # listed before reading: a later segment means no more writes here
            fd = self._fds.get(seq)
            if fd is None:
                try:
                    fd = self._fds[seq] = os.open(path, os.O_RDONLY)
                except FileNotFoundError:  # deleted by the writer: it was fully stored
                    self.finished.add(seq)
                    continue
            pos = self._pos.get(seq, 0)
            replay_end = self._replay_until.get(seq, -1) - pos  # in this read's coordinates
            data = os.pread(fd, max(0, os.fstat(fd).st_size - pos), pos)
            at, end, complete = 0, len(data), True
            while at + _HEADER.size <= end:
                if max_records is not None and len(out) >= max_records:
                    complete = False
                    break
                length, crc = _HEADER.unpack_from(data, at)
                start = at + _HEADER.size
                if start + length > end or zlib.crc32(data[start : start + length]) != crc:
                    break  # being written (live segment), or torn (finished segment): stop here
                out.append(TailedRecord(seq, pos + at, data[start : start + length], start + length <= replay_end))
                self.read_counts[seq] = self.read_counts.get(seq, 0) + 1
                at = start + length
            self._pos[seq] = pos + at
            if closed and complete:
                if at < end:
                    self.torn_tails += 1
                    log.warning("write-ahead segment %d: %d bytes at offset %d are not a complete record (a write cut "
                                "short); skipped", seq, end - at, pos + at)  # fmt: skip
                self.finished.add(seq)
                os.close(self._fds.pop(seq))
            if max_records is not None and len(out) >= max_records:
                break
        return out

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
