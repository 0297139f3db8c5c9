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

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from distillguard.gateway.sink import GATEWAY_LOG_SCHEMA, QUARANTINE_FILE, StoreSink, decode_record, log_row
from distillguard.gateway.types import Enforcer, Recorder
from distillguard.gateway.wal import AppendFailures, RecordPosition, WriteAheadLog, read_segment_at, segment_seq
from distillguard.privacy import Hasher
from distillguard.schema import RawEvent
from distillguard.store.duckdb import DuckDBStore

__all__ = ["GATEWAY_LOG_SCHEMA", "WALRecorder", "build_recorder", "log_row"]

log = logging.getLogger("distillguard.gateway.recorder")


class WALRecorder(Recorder):
    """Write-ahead first, store in batches from a background thread; replays leftovers at start."""

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
    ):
        self.store = store
        self.hasher = hasher
        self.enforcer = enforcer
        self.keep_text = keep_text
        self.flush_batch = flush_batch
        self.flush_interval_s = flush_interval_s
        self.fsync_interval_s = fsync_interval_s
        self.wal = WriteAheadLog(wal_dir, segment_bytes)
        self._sync_each = fsync_interval_s <= 0
        self._queue: deque[tuple[RecordPosition, float, RawEvent, dict[str, Any]]] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.store_errors = 0  # flushes that failed for a reason of the store's (retried)
        self.last_store_error: str | None = None
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
        store = DuckDBStore(config.store_path, threads=1)
        try:
            return cls(
                config.wal_dir, store, hasher, enforcer=enforcer, keep_text=config.keep_text,
                flush_batch=config.flush_batch, flush_interval_s=config.flush_interval_s,
                fsync_interval_s=config.wal_fsync_interval_s, segment_bytes=config.wal_segment_bytes,
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
            position = self.wal.append_record(orjson.dumps({"e": event, "x": extra}), sync=self._sync_each)
        except (OSError, TypeError) as exc:  # served already: count it, never fail the request over it
            self.append_failures.failed(exc)
            return
        if self.append_failures.failing:
            self.append_failures.recovered()
        self._queue.append((position, time.monotonic(), event, extra))
        if len(self._queue) >= self.flush_batch:
            self._wake.set()

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
        self._flush_all(drain=True)
        self.wal.close()

    @property
    def pending(self) -> int:
        """Records in the WAL not yet in the store."""
        return self.wal.pending

    @property
    def lag_s(self) -> float:
        """Age of the oldest record not yet in the store (0 when none)."""
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
                now = time.monotonic()
                if len(self._queue) >= self.flush_batch or (self._queue and now - last_flush >= self.flush_interval_s):
                    last_flush = now
                    self._flush_all()
                self.wal.rotate_if_large()
                if now - measured_at >= 1.0:
                    measured_at = now
                    self.wal_bytes = self.wal.disk_bytes()
            except Exception as exc:  # keep recording: the records stay in the WAL and are retried / replayed
                log.exception("recorder flush failed; retrying")
                self.store_errors += 1
                self.last_store_error = repr(exc)
                time.sleep(min(1.0, self.flush_interval_s))

    def _flush_all(self, *, drain: bool = False) -> None:
        """Store the records queued when called (``drain``: until the queue is empty, for close).

        Bounded on purpose: draining while the request path keeps queueing turned every flush into
        an endless run of 2-5 record batches, each paying DuckDB's fixed ~10 ms per statement.
        """
        queue = self._queue
        left = None if drain else len(queue)
        while queue and (left is None or left > 0):
            take = self.flush_batch if left is None else min(self.flush_batch, left)
            items = []
            while queue and len(items) < take:
                items.append(queue.popleft())
            if left is not None:
                left -= len(items)
            try:
                self.sink.write([(ev, x) for _, _, ev, x in items], positions=[p._asdict() for p, *_ in items])
            except Exception:
                queue.extendleft(reversed(items))  # back in front, in order: retried next tick
                raise
            per_segment: dict[int, int] = {}
            for (seq, _), *_ in items:
                per_segment[seq] = per_segment.get(seq, 0) + 1
            self.wal.committed(per_segment)
            self.committed_total += len(items)

    def status(self) -> dict[str, Any]:
        """Recording's state and counters (see :meth:`~distillguard.gateway.types.Recorder.status`)."""
        sink = self.sink
        return {
            "mode": "in_process", "state": "closed" if self._stop else "running", "error": None,
            "pending_records": self.pending, "lag_s": round(self.lag_s, 3),
            "committed_records": self.committed_total, "batches": sink.batches_total,
            "quarantined_records": sink.quarantined_total, "store_errors": self.store_errors,
            "last_store_error": self.last_store_error, "wal_bytes": self.wal_bytes, **self.append_failures.status(),
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
