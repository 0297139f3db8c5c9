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

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

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


def read_segment(path: str | Path) -> Iterator[bytes]:
    """The complete records of one segment, in order; stops at a torn or corrupt tail."""
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
        yield payload
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
        self._existing = sorted((p for p in self.directory.iterdir() if segment_seq(p) is not None), key=segment_seq)
        self._seq = max((segment_seq(p) or 0 for p in self._existing), default=0)
        # per open/closed segment: [records written, records committed, closed?]
        self._counts: dict[int, list] = {}
        self._fd = -1
        self._size = 0
        self._dirty = False
        self._open_next()

    # ------------------------------------------------------------ writing

    def _open_next(self) -> None:
        self._seq += 1
        path = self.directory / segment_name(self._seq)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = 0
        self._counts[self._seq] = [0, 0, False]
        _sync_dir(self.directory)  # the new file's directory entry must survive a power loss too

    def append(self, payload: bytes, *, sync: bool = False) -> int:
        """Write one record; returns its segment number.  ``sync`` fsyncs before returning."""
        data = frame(payload)
        with self._lock:
            written = os.write(self._fd, data)
            if written != len(data):  # a short write to a regular file means the disk is full
                raise OSError(f"write-ahead file: short write ({written} of {len(data)} bytes)")
            self._size += written
            seq = self._seq
            self._counts[seq][0] += 1
            self._dirty = True
            if sync:
                os.fsync(self._fd)
                self._dirty = False
        return seq

    def sync(self) -> None:
        """fsync the current segment if it has unsynced records (without holding appends up)."""
        with self._lock:
            if not self._dirty:
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
            if self._size < self.segment_bytes:
                return False
            old_fd, old_seq = self._fd, self._seq
            self._open_next()
            self._counts[old_seq][2] = True
        os.fsync(old_fd)
        os.close(old_fd)
        self._delete_done()
        return True

    def committed(self, per_segment: dict[int, int]) -> None:
        """Report records of each segment as stored; fully stored closed segments are deleted."""
        with self._lock:
            for seq, n in per_segment.items():
                self._counts[seq][1] += n
        self._delete_done()

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
        return sorted((p for p in self.directory.iterdir() if segment_seq(p) is not None), key=segment_seq)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
