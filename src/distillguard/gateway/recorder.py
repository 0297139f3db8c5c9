"""Durable recording in the serving process: write-ahead file first, DuckDB store in batches from a thread.

This is the in-process recorder (``recorder_process: false``, and embedding in
tests); ``serve`` and the LiteLLM plugin record through
:class:`~distillguard.gateway.process_recorder.ProcessRecorder` by default, which
keeps the same write-ahead file and does the storing below in a worker process.

``record()`` (on the request path) serializes the exchange, appends it to the
write-ahead file with one ``write(2)`` and queues it in memory; nothing else.
A failed write (disk full) is counted and logged, not raised: the exchange was
served (:class:`~distillguard.gateway.wal.AppendFailures`).
A background thread takes queued records in batches and hands them to a
:class:`~distillguard.gateway.sink.StoreSink` (normalize, store in one DuckDB
transaction, ``enforcer.observe``), and only then tells the WAL those records
are committed, so a segment is deleted only once every record in it is in the store.

When a record is durable:

* against a crash of the gateway process (SIGKILL, OOM, bug): as soon as
  ``record()`` returns; the proxy calls it before the client gets the last byte
  of the response, so every exchange a client saw complete is recovered;
* against an OS crash or power loss: after the next ``fsync``, at most
  ``fsync_interval_s`` later (default 50 ms); ``fsync_interval_s=0`` fsyncs
  inside ``record()``, trading request latency for zero loss window.

At :meth:`WALRecorder.start` the segments a previous run left behind are
replayed into the store; ``event_id`` is the store's key (inserted only once), so records
that were already stored are not duplicated.

While the store fails, memory does not grow with the backlog: at most
``max_queued_records`` records stay queued; the oldest beyond that leave memory
(they are in the WAL) and are re-read from its segments, in order, before the
queue once the store takes records again.  A fatal DuckDB error invalidates the
connection for good (:func:`~distillguard.gateway.sink.store_invalidated`): the
invalidated store is closed and the same file opened again (after 0.25 s,
doubling to 10 s while that or the next batch fails), then the batch is retried;
``store_reopens`` in :meth:`WALRecorder.status` counts the reopenings.

Example:
    >>> import tempfile
    >>> from distillguard.privacy import Hasher
    >>> from distillguard.store.duckdb import TABLES, DuckDBStore
    >>> d = tempfile.mkdtemp()
    >>> rec = WALRecorder(d + "/wal", DuckDBStore(d + "/gw.duckdb"), Hasher(b"k"))
    >>> rec.start()
    0
    >>> rec.record({"event_id": "e1", "ts": 1.7e9, "account_id": "acct-1"}, {"endpoint": "/v1/chat/completions"})
    >>> rec.close()
    >>> rec.store.query("SELECT account_id FROM events").column(0).to_pylist()
    ['acct-1']
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from distillguard.gateway.sink import (
    GATEWAY_LOG_SCHEMA, QUARANTINE_FILE, StoreSink, decode_record, log_row, store_invalidated,
)  # fmt: skip
from distillguard.gateway.types import Enforcer, Recorder
from distillguard.gateway.wal import (
    AppendFailures, RecordPosition, WriteAheadLog, read_segment_at, segment_name, segment_seq,
)  # fmt: skip
from distillguard.privacy import Hasher
from distillguard.schema import RawEvent
from distillguard.store.duckdb import DuckDBStore

__all__ = ["GATEWAY_LOG_SCHEMA", "WALRecorder", "build_recorder", "log_row"]

log = logging.getLogger("distillguard.gateway.recorder")

#: wait before reopening an invalidated store, doubled while reopening or the next batch fails (the
#: process recorder's restart back-off)
REOPEN_DELAY_S = 0.25
REOPEN_DELAY_MAX_S = 10.0


class WALRecorder(Recorder):
    """Write-ahead first, store in batches from a background thread; replays leftovers at start.

    ``max_queued_records``: how many records stay in memory while the store is behind (the rest are
    re-read from the WAL).  ``open_store``: opens the store's file again after a fatal DuckDB error
    invalidated its connection (default: ``DuckDBStore(store.path)``).
    """

    def __init__(
        self,
        wal_dir: str | Path,
        store: DuckDBStore,
        hasher: Hasher,
        *,
        enforcer: Enforcer | None = None,
        keep_text: bool = False,
        flush_batch: int = 1024,
        flush_interval_s: float = 1.0,
        fsync_interval_s: float = 0.05,
        segment_bytes: int = 16 * 1024 * 1024,
        excerpts_per_account: int = 5,
        max_queued_records: int = 16_384,
        open_store: Callable[[], DuckDBStore] | None = None,
    ):
        if max_queued_records < 1:
            raise ValueError(f"max_queued_records must be at least 1, not {max_queued_records}")
        self.store = store
        self.hasher = hasher
        self.enforcer = enforcer
        self.keep_text = keep_text
        self.flush_batch = flush_batch
        self.flush_interval_s = flush_interval_s
        self.fsync_interval_s = fsync_interval_s
        self.wal = WriteAheadLog(wal_dir, segment_bytes)
        self._sync_each = fsync_interval_s <= 0
        self.max_queued_records = max_queued_records
        self._open_store = open_store or functools.partial(DuckDBStore, store.path)
        # (position, queued at, event, extra), in WAL order: record() appends to both under _lock
        self._queue: deque[tuple[RecordPosition, float, RawEvent, dict[str, Any]]] = deque()
        self._lock = threading.Lock()  # the queue with the WAL's order, and the dropped range
        # records dropped from memory (see _drop_beyond_bound): those from here up to the oldest queued
        # one are only in the WAL; set by record() only when None, advanced and cleared by the flush thread
        self._dropped_from: RecordPosition | None = None
        self._dropped_since = 0.0  # when the first of them was queued (kept until all are stored)
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.store_errors = 0  # flushes (and reopenings) that failed for a reason of the store's (retried)
        self.last_store_error: str | None = None
        self.store_reopens = 0  # fresh stores opened after a fatal DuckDB error invalidated the connection
        self._reopen_at: float | None = None  # the store is invalidated: open it again at this time
        self._reopen_delay_s = REOPEN_DELAY_S
        self.append_failures = AppendFailures()  # exchanges served but not recorded (the WAL write failed)
        self.committed_total = 0  # records of this run done with (stored or quarantined); a retried batch counts once
        self.wal_bytes = 0  # segment files on disk, refreshed by the flush thread
        self.sink = StoreSink(
            store, hasher, keep_text=keep_text, observe=enforcer.observe if enforcer is not None else None,
            quarantine_path=Path(wal_dir) / QUARANTINE_FILE, excerpts_per_account=excerpts_per_account,
        )  # fmt: skip

    @classmethod
    def from_config(cls, config: Any, hasher: Hasher, enforcer: Enforcer | None = None) -> WALRecorder:
        """A recorder for a :class:`~distillguard.gateway.config.GatewayConfig` (its store, WAL and batching)."""
        # one DuckDB thread: batched appends gain nothing from a second, and the proxy needs that core
        open_store = functools.partial(DuckDBStore, config.store_path, threads=1)
        store = open_store()
        try:
            return cls(
                config.wal_dir, store, hasher, enforcer=enforcer, keep_text=config.keep_text,
                flush_batch=config.flush_batch, flush_interval_s=config.flush_interval_s,
                fsync_interval_s=config.wal_fsync_interval_s, segment_bytes=config.wal_segment_bytes,
                open_store=open_store,
            )  # fmt: skip
        except BaseException:
            store.close()
            raise

    # ------------------------------------------------------------ request path

    def record(self, event: RawEvent, extra: dict[str, Any] | None = None) -> None:
        """Append one exchange to the WAL and queue it for the store; durable (process crash) on return.

        ``extra`` holds what the event schema has no column for: ``endpoint``,
        ``http_status``, ``error`` and ``decision`` (``Decision.to_dict()``).
        """
        extra = extra or {}
        try:
            payload = orjson.dumps({"e": event, "x": extra})
            with self._lock:  # so that the queue holds records in WAL order, which dropping relies on
                position = self.wal.append_record(payload, sync=self._sync_each)
                self._queue.append((position, time.monotonic(), event, extra))
                self._drop_beyond_bound()
                queued = len(self._queue)
        except (OSError, TypeError) as exc:  # served already: count it, never fail the request over it
            self.append_failures.failed(exc)
            return
        if self.append_failures.failing:
            self.append_failures.recovered()
        if queued >= self.flush_batch:
            self._wake.set()

    def _drop_beyond_bound(self) -> None:
        """Drop the oldest queued records beyond ``max_queued_records`` (called with ``_lock`` held).

        They are in the WAL already, and stay there until stored: :meth:`_store_dropped` re-reads them,
        so a store that fails for hours costs disk, not memory.  The queue is in WAL order, so what was
        dropped is always the WAL's records from ``_dropped_from`` up to the oldest one still queued.
        """
        queue = self._queue
        while len(queue) > self.max_queued_records:
            position, queued_at, _, _ = queue.popleft()
            if self._dropped_from is None:
                self._dropped_from, self._dropped_since = position, queued_at

    # ------------------------------------------------------------ lifecycle

    def start(self) -> int:
        """Replay segments left by a previous run into the store, then start the flush thread.

        Returns the number of replayed records (stored before or not).
        """
        replayed = 0
        for path in self.wal.existing_segments():
            seq = segment_seq(path)
            batch: list[tuple[RawEvent, dict[str, Any]]] = []
            positions: list[dict[str, Any]] = []
            for offset, payload in read_segment_at(path):
                position = {"segment": seq, "offset": offset}
                record, unusable = decode_record(payload, position)
                if record is None:
                    self.sink.quarantine([unusable])
                else:
                    batch.append(record)
                    positions.append(position)
                if len(batch) >= self.flush_batch:
                    self.sink.write(batch, replay=True, positions=positions)
                    replayed += len(batch)
                    batch, positions = [], []
            self.sink.write(batch, replay=True, positions=positions)
            replayed += len(batch)
        self.wal.drop_existing()
        if replayed:
            log.info("replayed %d write-ahead records into the store", replayed)
        self._thread = threading.Thread(target=self._run, name="distillguard-recorder", daemon=True)
        self._thread.start()
        return replayed

    def close(self) -> None:
        """Store everything queued, sync and close the WAL (its segments are deleted once stored)."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._reopen_at is not None:
            self._reopen_store()
        if self._reopen_at is None:
            self._flush_all(drain=True)
        else:  # its segments stay on disk: the next start replays them
            log.error("closing with the store unusable; %d records stay in the write-ahead file", self.pending)
        self.wal.close()

    @property
    def pending(self) -> int:
        """Records in the WAL not yet in the store."""
        return self.wal.pending

    @property
    def lag_s(self) -> float:
        """Age of the oldest record not yet in the store (0 when none)."""
        if self._dropped_from is not None:  # until all dropped ones are stored: an upper bound
            return time.monotonic() - self._dropped_since
        try:
            return time.monotonic() - self._queue[0][1]
        except IndexError:
            return 0.0

    # ------------------------------------------------------------ flush thread

    def _run(self) -> None:
        tick = min(self.flush_interval_s, self.fsync_interval_s) if self.fsync_interval_s > 0 else self.flush_interval_s
        last_flush = time.monotonic()
        measured_at = 0.0
        while not self._stop:
            self._wake.wait(tick)
            self._wake.clear()
            try:
                self.wal.sync()
                # before storing, which may fail: while the store is down the WAL still rotates (dropped
                # records are re-read a segment at a time) and its size on disk is still reported
                self.wal.rotate_if_large()
                now = time.monotonic()
                if now - measured_at >= 1.0:
                    measured_at = now
                    self.wal_bytes = self.wal.disk_bytes()
                if self._reopen_at is not None and now >= self._reopen_at:
                    self._reopen_store()
                if self._reopen_at is None and (
                    len(self._queue) >= self.flush_batch or (self._queue and now - last_flush >= self.flush_interval_s)
                ):
                    last_flush = now
                    self._flush_all()
                    self._reopen_delay_s = REOPEN_DELAY_S  # the store works: a later invalidation starts afresh
            except Exception as exc:  # keep recording: the records stay in the WAL and are retried / replayed
                self.store_errors += 1
                self.last_store_error = repr(exc)
                if store_invalidated(exc):  # every retry through this connection would fail: open a new one
                    log.error("the store's connection was invalidated by a fatal DuckDB error (%r); reopening it in %.2f s",
                              exc, self._reopen_delay_s)  # fmt: skip
                    self._schedule_reopen()
                else:
                    log.exception("recorder flush failed; retrying")
                    time.sleep(min(1.0, self.flush_interval_s))

    def _schedule_reopen(self) -> None:
        self._reopen_at = time.monotonic() + self._reopen_delay_s
        self._reopen_delay_s = min(2 * self._reopen_delay_s, REOPEN_DELAY_MAX_S)

    def _reopen_store(self) -> None:
        """Close the invalidated store and open its file again; when that fails, try again after a back-off.

        The batch that met the fatal error was given back to the queue (or joined the dropped range):
        the next flush stores it through the new connection, so nothing is lost.
        """
        try:
            # frees the invalidated database instance: while a connection to it is open, connecting to
            # the same file in this process would return that instance again
            self.store.close()
        except Exception:
            log.exception("closing the invalidated store failed")
        try:
            store = self._open_store()
        except Exception as exc:
            self.store_errors += 1
            self.last_store_error = repr(exc)
            log.error("reopening the store failed (%r); trying again in %.2f s", exc, self._reopen_delay_s)
            self._schedule_reopen()
            return
        self.store = self.sink.store = store
        self.store_reopens += 1
        self._reopen_at = None
        log.warning("the store was reopened after a fatal DuckDB error; storing resumes from the write-ahead file")

    def _flush_all(self, *, drain: bool = False) -> None:
        """Store the records queued when called (``drain``: until the queue is empty, for close).

        Bounded on purpose: draining while the request path keeps queueing turned every flush into
        an endless run of 2-5 record batches, each paying DuckDB's fixed ~10 ms per statement.
        """
        queue = self._queue
        left = None if drain else len(queue)
        dropped_passes = 0
        while left is None or left > 0:
            if self._dropped_from is not None:  # older than every queued record: they go first
                if dropped_passes and left is not None:
                    return  # more were dropped meanwhile (the store is behind): the next flush goes on
                dropped_passes += 1
                self._store_dropped()
                continue
            take = self.flush_batch if left is None else min(self.flush_batch, left)
            with self._lock:
                if self._dropped_from is not None:  # record() dropped some since the check above
                    continue
                items = [queue.popleft() for _ in range(min(take, len(queue)))]
            if not items:
                return
            if left is not None:
                left -= len(items)
            try:
                self.sink.write([(ev, x) for _, _, ev, x in items], positions=[p._asdict() for p, *_ in items])
            except Exception:
                self._give_back(items)
                raise
            self._committed([p for p, *_ in items])

    def _give_back(self, items: list[tuple[RecordPosition, float, RawEvent, dict[str, Any]]]) -> None:
        """Return a batch that failed to the front of the queue, in order: retried next tick."""
        with self._lock:
            if self._dropped_from is None:
                self._queue.extendleft(reversed(items))
                self._drop_beyond_bound()
            else:  # record() dropped the records right after these meanwhile: these join them, in the WAL
                self._dropped_from, self._dropped_since = items[0][0], items[0][1]

    def _committed(self, positions: list[RecordPosition]) -> None:
        """Tell the WAL these records are done with (stored or quarantined)."""
        per_segment: dict[int, int] = {}
        for seq, _ in positions:
            per_segment[seq] = per_segment.get(seq, 0) + 1
        self.wal.committed(per_segment)
        self.committed_total += len(positions)

    def _store_dropped(self) -> None:
        """Store the records dropped from memory, re-read from the WAL in batches (one pass: the ones
        dropped while it runs are left for the next).  Raises as a flush does; what it stored stays done."""
        with self._lock:
            start = self._dropped_from
            # not empty: records are dropped only beyond max_queued_records (>= 1), and the queue is not
            # taken from while dropped ones wait
            end = self._queue[0][0]
        if start is None:
            return
        payloads: list[tuple[bytes, dict[str, Any]]] = []
        positions: list[RecordPosition] = []  # of all these records, stored or set aside, in order
        for position, payload in self._read_wal(start, end):
            payloads.append((payload, position._asdict()))
            positions.append(position)
            if len(positions) >= self.flush_batch:
                self._store_reread(payloads, positions)
                payloads, positions = [], []
        self._store_reread(payloads, positions)
        with self._lock:  # done up to end: any dropped meanwhile lie between end and the oldest queued now
            self._dropped_from = None if self._queue[0][0] == end else end

    def _store_reread(self, payloads: list[tuple[bytes, dict[str, Any]]], positions: list[RecordPosition]) -> None:
        if not positions:
            return
        self.sink.write_payloads(payloads)
        self._committed(positions)
        last = positions[-1]
        with self._lock:  # no record lies between the last one done and the position just after it
            self._dropped_from = RecordPosition(last.segment, last.offset + 1)

    def _read_wal(self, start: RecordPosition, end: RecordPosition) -> Iterator[tuple[RecordPosition, bytes]]:
        """The records this run wrote from ``start`` up to ``end`` (excluded), in order, from the segment files."""
        for seq in range(start.segment, end.segment + 1):
            path = self.wal.directory / segment_name(seq)
            if not path.exists():  # one that holds no record (only a torn write) is deleted once closed
                continue
            for offset, payload in read_segment_at(path):
                position = RecordPosition(seq, offset)
                if position >= end:
                    return
                if position >= start:
                    yield position, payload

    def status(self) -> dict[str, Any]:
        """Recording's state and counters (see :meth:`~distillguard.gateway.types.Recorder.status`)."""
        sink = self.sink
        return {
            "mode": "in_process", "state": "closed" if self._stop else "running", "error": None,
            "pending_records": self.pending, "lag_s": round(self.lag_s, 3),
            "committed_records": self.committed_total, "batches": sink.batches_total,
            "quarantined_records": sink.quarantined_total, "store_errors": self.store_errors,
            "last_store_error": self.last_store_error, "store_reopens": self.store_reopens, "wal_bytes": self.wal_bytes,
            **self.append_failures.status(),
        }  # fmt: skip

    @property
    def stored_total(self) -> int:
        """Records committed to the store since start (replay included)."""
        return self.sink.stored_total

    @property
    def last_flush_s(self) -> float:
        """Duration of the last store flush."""
        return self.sink.last_store_s


def build_recorder(config: Any, hasher: Hasher, enforcer: Enforcer | None = None) -> WALRecorder:
    """The started in-process recorder (``recorder_process: false``): :meth:`WALRecorder.from_config`,
    then :meth:`~WALRecorder.start` (the previous run's WAL replayed); the store is closed if that fails."""
    recorder = WALRecorder.from_config(config, hasher, enforcer)
    try:
        replayed = recorder.start()
    except BaseException:
        recorder.store.close()
        raise
    if replayed:
        log.warning("replayed %d write-ahead records left by the previous run", replayed)
    return recorder
