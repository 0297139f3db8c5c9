"""Durable recording of gateway exchanges: write-ahead file first, DuckDB store in batches.

``record()`` (on the request path) serializes the exchange, appends it to the
write-ahead file with one ``write(2)`` and queues it in memory; nothing else.
A background thread takes queued records in batches, normalizes them with the
batch scan's :func:`~distillguard.normalize.normalize_batch`, appends them to
the :class:`~distillguard.store.duckdb.DuckDBStore` (``events``, ``texts`` with
``keep_text``, ``samples``, and ``gateway_log``: endpoint, HTTP status, error
and decision per exchange), feeds the stored rows to ``enforcer.observe``, and
only then tells the WAL those records are committed, so a segment is deleted
only once every record in it is in the store.

When a record is durable:

* against a crash of the gateway process (SIGKILL, OOM, bug): as soon as
  ``record()`` returns; the proxy calls it before the client gets the last byte
  of the response, so every exchange a client saw complete is recovered;
* against an OS crash or power loss: after the next ``fsync``, at most
  ``fsync_interval_s`` later (default 50 ms); ``fsync_interval_s=0`` fsyncs
  inside ``record()``, trading request latency for zero loss window.

At :meth:`WALRecorder.start` the segments a previous run left behind are
replayed into the store; ``event_id`` is the store's primary key, so records
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.gateway.types import Enforcer, Recorder
from distillguard.gateway.wal import WriteAheadLog, read_segment
from distillguard.normalize import ExcerptKeeper, normalize_batch
from distillguard.privacy import Hasher
from distillguard.schema import SAMPLE_SCHEMA, RawEvent
from distillguard.store.duckdb import TABLES, DuckDBStore

log = logging.getLogger("distillguard.gateway.recorder")

#: One row per recorded exchange: what the event schema has no column for.
GATEWAY_LOG_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("ts", pa.float64()),
        ("account_id", pa.string()),
        ("endpoint", pa.string()),
        ("http_status", pa.int64()),
        ("error", pa.string()),  # e.g. upstream_timeout, client_disconnected, invalid_json
        ("actions", pa.string()),  # comma-separated Action values of the decision
        ("shadow", pa.bool_()),
        ("reason", pa.string()),
        ("policy_rule", pa.string()),
        ("score", pa.float64()),
        ("cluster_id", pa.string()),
    ]
)
_LOG_DDL = (
    "CREATE TABLE IF NOT EXISTS gateway_log (event_id VARCHAR PRIMARY KEY, ts DOUBLE, account_id VARCHAR, "
    "endpoint VARCHAR, http_status BIGINT, error VARCHAR, actions VARCHAR, shadow BOOLEAN, reason VARCHAR, "
    "policy_rule VARCHAR, score DOUBLE, cluster_id VARCHAR)"
)


def log_row(event: RawEvent, extra: dict[str, Any]) -> dict[str, Any]:
    """The ``gateway_log`` row of one recorded exchange (``extra`` as given to ``record``)."""
    decision = extra.get("decision") or {}
    return {
        "event_id": event.get("event_id"),
        "ts": event.get("ts"),
        "account_id": event.get("account_id"),
        "endpoint": extra.get("endpoint"),
        "http_status": extra.get("http_status"),
        "error": extra.get("error"),
        "actions": ",".join(decision.get("actions") or ()) or None,
        "shadow": decision.get("shadow"),
        "reason": decision.get("reason") or None,
        "policy_rule": decision.get("policy_rule"),
        "score": decision.get("score"),
        "cluster_id": decision.get("cluster_id"),
    }


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
        self._queue: deque[tuple[int, float, RawEvent, dict[str, Any]]] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._keeper = ExcerptKeeper(excerpts_per_account)
        self._rejected_path = Path(wal_dir) / "rejected.jsonl"
        self.stored_total = 0  # records committed to the store since start (replay included)
        self.last_flush_s = 0.0  # duration of the last store flush
        self.store.con.execute(_LOG_DDL).fetchall()

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
        payload = orjson.dumps({"e": event, "x": extra})
        seq = self.wal.append(payload, sync=self._sync_each)
        self._queue.append((seq, time.monotonic(), event, extra))
        if len(self._queue) >= self.flush_batch:
            self._wake.set()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> int:
        """Replay segments left by a previous run into the store, then start the flush thread.

        Returns the number of replayed records (stored before or not).
        """
        replayed = 0
        for path in self.wal.existing_segments():
            batch: list[tuple[RawEvent, dict[str, Any]]] = []
            for payload in read_segment(path):
                item = orjson.loads(payload)
                batch.append((item["e"], item.get("x") or {}))
                if len(batch) >= self.flush_batch:
                    self._store_batch(batch, replay=True)
                    replayed += len(batch)
                    batch = []
            self._store_batch(batch, replay=True)
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
            except Exception:  # keep recording: the records stay in the WAL and are retried / replayed
                log.exception("recorder flush failed; retrying")
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
                self._store_batch([(ev, x) for _, _, ev, x in items])
            except Exception:
                queue.extendleft(reversed(items))  # back in front, in order: retried next tick
                raise
            per_segment: dict[int, int] = {}
            for seq, *_ in items:
                per_segment[seq] = per_segment.get(seq, 0) + 1
            self.wal.committed(per_segment)

    def _store_batch(self, items: Sequence[tuple[RawEvent, dict[str, Any]]], *, replay: bool = False) -> None:
        if not items:
            return
        t0 = time.perf_counter()
        events = [ev for ev, _ in items]
        try:
            batch = normalize_batch(events, self.hasher, keep_text=self.keep_text)
        except Exception:
            items = self._reject_unusable(items)
            if not items:
                return
            events = [ev for ev, _ in items]
            batch = normalize_batch(events, self.hasher, keep_text=self.keep_text)
        new_ids = self._unstored_ids(batch.events) if replay else None
        self._keeper.offer(batch.excerpts)
        samples = self._keeper.drain()
        log_rows = pa.Table.from_pylist([log_row(ev, x) for ev, x in items], schema=GATEWAY_LOG_SCHEMA)
        con = self.store.con
        # one transaction per batch: DuckDB's cost is per statement commit (~10 ms here), not per row
        con.execute("BEGIN TRANSACTION").fetchall()
        try:
            self._insert("events", batch.events)
            if batch.texts is not None:
                self._insert("texts", batch.texts)
            if samples:
                self._insert("samples", pa.Table.from_pylist(samples, schema=SAMPLE_SCHEMA))
            self._insert("gateway_log", log_rows)
            con.execute("COMMIT").fetchall()
        except BaseException:
            con.execute("ROLLBACK").fetchall()
            raise
        self.stored_total += len(items)
        self.last_flush_s = time.perf_counter() - t0
        if self.enforcer is not None:
            observed = batch.events
            if new_ids is not None:  # replay: only what the enforcer has not seen before the restart
                observed = observed.filter(pc.is_in(observed.column("event_id"), value_set=new_ids))
            try:
                if observed.num_rows:
                    self.enforcer.observe(observed)
            except Exception:
                log.exception("enforcer.observe failed on %d events", observed.num_rows)

    def _unstored_ids(self, events: pa.Table) -> pa.Array:
        con = self.store.con
        con.register("_replay_ids", events.select(["event_id"]))
        try:
            stored = {r[0] for r in con.execute("SELECT event_id FROM events JOIN _replay_ids USING (event_id)").fetchall()}
        finally:
            con.unregister("_replay_ids")
        return pa.array([i for i in events.column("event_id").to_pylist() if i not in stored], pa.string())

    def _insert(self, table: str, rows: pa.Table) -> None:
        """``INSERT ... ON CONFLICT DO NOTHING`` (event_id is every table's key), without the row counts
        :meth:`DuckDBStore.append` runs around it."""
        if rows.num_rows == 0:
            return
        schema = GATEWAY_LOG_SCHEMA if table == "gateway_log" else TABLES[table][0]
        con = self.store.con
        con.register("_recorded", rows.select(schema.names).cast(schema))
        try:
            con.execute(f"INSERT INTO {table} SELECT * FROM _recorded ON CONFLICT DO NOTHING").fetchall()
        finally:
            con.unregister("_recorded")

    def _reject_unusable(self, items: Sequence[tuple[RawEvent, dict[str, Any]]]) -> list[tuple[RawEvent, dict[str, Any]]]:
        """Set aside the records normalization cannot take (to ``rejected.jsonl``), keep the rest."""
        good = []
        with open(self._rejected_path, "ab") as f:
            for ev, x in items:
                try:
                    normalize_batch([ev], self.hasher)
                    good.append((ev, x))
                except Exception as exc:
                    log.error("write-ahead record %s cannot be normalized (%r); set aside", ev.get("event_id"), exc)
                    f.write(orjson.dumps({"e": ev, "x": x, "reason": repr(exc)}) + b"\n")
        return good


def build_recorder(config: Any, hasher: Hasher, enforcer: Enforcer | None = None) -> WALRecorder:
    """The started recorder ``serve`` and the LiteLLM plugin run: :meth:`WALRecorder.from_config`, then
    :meth:`~WALRecorder.start` (the previous run's WAL replayed); the store is closed if that fails."""
    recorder = WALRecorder.from_config(config, hasher, enforcer)
    try:
        replayed = recorder.start()
    except BaseException:
        recorder.store.close()
        raise
    if replayed:
        log.warning("replayed %d write-ahead records left by the previous run", replayed)
    return recorder


def open_recording(config: Any) -> tuple[Hasher, Enforcer, WALRecorder, Callable[[], None]]:
    """What ``serve`` and the LiteLLM plugin both start from a gateway config: the deployment's
    hasher, the enforcer (:func:`distillguard.gateway.enforcement.build_enforcer`), the started
    recorder, and the function that shuts the three down in order (store what is queued, stop the
    enforcer, close the store).  The enforcer is closed again if the recorder cannot start.
    """
    from distillguard.gateway.enforcement import build_enforcer

    hasher = Hasher.from_config(config.secret_file)
    if hasher.is_demo:
        log.warning("no hashing secret configured ($DISTILLGUARD_SECRET or secret_file): using the demo secret")
    enforcer = build_enforcer(config)
    try:
        recorder = build_recorder(config, hasher, enforcer)
    except BaseException:
        enforcer.close()
        raise

    def close() -> None:
        recorder.close()
        enforcer.close()
        recorder.store.close()

    return hasher, enforcer, recorder, close
