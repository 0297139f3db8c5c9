"""Where recorded exchanges end up: normalized, in the DuckDB store, then shown to online scoring.

:class:`StoreSink` is the one "write-ahead record → store" step, shared by the
in-process :class:`~distillguard.gateway.recorder.WALRecorder` (a thread of the
serving process) and the recording worker process
(:mod:`distillguard.gateway.worker`).  A batch of ``(event, extra)`` pairs is
normalized with the batch scan's :func:`~distillguard.normalize.normalize_batch`,
written in one DuckDB transaction (``events``, ``texts`` with ``keep_text``,
``samples``, and ``gateway_log``: endpoint, HTTP status, error and decision per
exchange), and the stored rows are handed to ``observe`` (online scoring).
``event_id`` is every table's key (rows already stored are not inserted again), so
storing a record twice is a no-op; with ``replay=True`` only the rows that were
not stored before are observed.

A batch that fails because of what is in it (a record normalization cannot take,
a value a column cannot hold) is split in halves until the records that fail on
their own are isolated: the others are stored, those are *quarantined* (written
with the reason and their WAL position to a JSON-lines file, fsynced, and
counted).  Any other failure (the disk, memory, the database) says nothing about
the records: it is raised, and the caller retries the batch as it is.  Records
that failure's write had already quarantined are not quarantined (nor counted)
again by the retry: they are known by their WAL position (segment and offset).

Example:
    >>> import tempfile
    >>> from distillguard.privacy import Hasher
    >>> from distillguard.store.duckdb import DuckDBStore
    >>> d = tempfile.mkdtemp()
    >>> seen = []
    >>> sink = StoreSink(DuckDBStore(d + "/gw.duckdb"), Hasher(b"k"), observe=lambda t: seen.append(t.num_rows))
    >>> ev = {"event_id": "e1", "ts": 1.7e9, "account_id": "acct-1"}
    >>> sink.write([(ev, {"endpoint": "/v1/chat/completions"})]), sink.write([(ev, {})], replay=True), seen
    (1, 1, [1])
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.errors import InputError
from distillguard.normalize import ExcerptKeeper, normalize_batch
from distillguard.privacy import Hasher
from distillguard.schema import SAMPLE_SCHEMA, RawEvent
from distillguard.store.duckdb import TABLES, DuckDBStore, insert_new

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
        ("sub_account_id", pa.string()),  # the end user a decision judged (``<account>#eu:<hash>``), if one
    ]
)
#: gateway_log's columns before ``sub_account_id`` (a store recorded by an earlier version gains it at open)
_LOG_COLUMNS_V1 = GATEWAY_LOG_SCHEMA.names[:-1]
# No PRIMARY KEY: inserts go through insert_new's anti-join on event_id, which keeps them exactly-once
# without an index to maintain on every insert (a store made with the key keeps it, harmlessly).
_LOG_DDL = (
    "CREATE TABLE IF NOT EXISTS gateway_log (event_id VARCHAR, ts DOUBLE, account_id VARCHAR, "
    "endpoint VARCHAR, http_status BIGINT, error VARCHAR, actions VARCHAR, shadow BOOLEAN, reason VARCHAR, "
    "policy_rule VARCHAR, score DOUBLE, cluster_id VARCHAR, sub_account_id VARCHAR)"
)

Item = tuple[RawEvent, dict[str, Any]]
#: where the recorders set aside what cannot be stored, in the WAL directory
QUARANTINE_FILE = "quarantine.jsonl"


def decode_record(payload: bytes, position: dict[str, Any]) -> tuple[Item | None, dict[str, Any] | None]:
    """A write-ahead record as ``(item, None)``, or ``(None, quarantine entry)`` when it is CRC-valid
    but not a recorded exchange (it must never block the records after it)."""
    try:
        record = orjson.loads(payload)
        return (record["e"], record.get("x") or {}), None
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        return None, {**position, "reason": f"not a recorded exchange: {exc!r}", "payload": payload.decode("utf-8", "backslashreplace")}


class UnusableRecords(Exception):
    """Normalizing a batch, or building its rows, failed: the records are at fault, not the store."""


def store_invalidated(exc: BaseException) -> bool:
    """Whether ``exc`` is a fatal DuckDB error: the database instance is invalidated and every later
    statement on it fails ("database has been invalidated"), so only a new connection can store again."""
    return isinstance(exc, (duckdb.FatalException, duckdb.InternalException)) or "database has been invalidated" in str(exc)


def position_key(position: dict[str, Any]) -> tuple[int, int] | None:
    """A record's identity within one run of the WAL: ``(segment, offset)``, None when not both are known."""
    try:
        return position["segment"], position["offset"]
    except KeyError:
        return None


def records_at_fault(exc: BaseException) -> bool:
    """Whether ``exc`` comes from what a batch holds (the same records fail the same way again),
    rather than from the store, the disk or memory (worth retrying as is)."""
    if isinstance(exc, (MemoryError, OSError)):
        return False
    return isinstance(exc, (UnusableRecords, pa.ArrowException, duckdb.DataError, duckdb.IntegrityError))


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
        "sub_account_id": decision.get("sub_account_id"),
    }


def _log_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'gateway_log' ORDER BY ordinal_position"
    ).fetchall()]  # fmt: skip


class StoreSink:
    """Normalize → store (one transaction per batch) → observe.  Not thread-safe: one caller at a time.

    ``quarantine_path``: the JSON-lines file records that cannot be stored are set aside in (created
    0600: they hold clear text, like the WAL); None: they are only logged and counted.
    """

    def __init__(
        self,
        store: DuckDBStore,
        hasher: Hasher,
        *,
        keep_text: bool = False,
        observe: Callable[[pa.Table], None] | None = None,
        quarantine_path: str | Path | None = None,
        excerpts_per_account: int = 5,
    ):
        self.store = store
        self.hasher = hasher
        self.keep_text = keep_text
        self.observe = observe
        self.quarantine_path = Path(quarantine_path) if quarantine_path is not None else None
        self._keeper = ExcerptKeeper(excerpts_per_account)
        self.stored_total = 0  # records committed to the store by this sink (replayed ones included)
        self.batches_total = 0  # transactions committed
        self.quarantined_total = 0  # records set aside
        self.last_store_s = 0.0  # duration of the last batch
        self._replay_next = False  # a write raised part-way: some of what is retried may be stored (and observed)
        # positions of records quarantined by a write that then raised: its retry skips them (they are done)
        self._set_aside: set[tuple[int, int]] = set()
        con = store.con
        con.execute(_LOG_DDL).fetchall()
        columns = _log_columns(con)
        if columns == _LOG_COLUMNS_V1:  # recorded by an earlier version: its rows stay, with no end user
            con.execute("ALTER TABLE gateway_log ADD COLUMN sub_account_id VARCHAR").fetchall()
            columns = _log_columns(con)
        if columns != GATEWAY_LOG_SCHEMA.names:
            raise InputError(store.path, f"its gateway_log table has columns {columns}, this distillguard writes "
                             f"{GATEWAY_LOG_SCHEMA.names}; record into a new store")  # fmt: skip

    def write_payloads(self, payloads: Sequence[tuple[bytes, dict[str, Any]]], *, replay: bool = False) -> int:
        """Store write-ahead payloads, each with its WAL position; those that are not a recorded exchange
        are quarantined after the write (a retried batch must not set them aside twice).  Raises as
        :meth:`write` does; returns how many were stored."""
        batch, positions, unreadable = [], [], []
        for payload, position in payloads:
            record, unusable = decode_record(payload, position)
            if record is None:
                unreadable.append(unusable)
            else:
                batch.append(record)
                positions.append(position)
        stored = self.write(batch, replay=replay, positions=positions)
        if unreadable:
            self.quarantine(unreadable)
        return stored

    def write(self, items: Sequence[Item], *, replay: bool = False, positions: Sequence[dict[str, Any]] | None = None) -> int:
        """Store one batch; returns how many of its records were stored (quarantined ones excluded).

        ``replay``: the records may have been stored before (a restart): only the rows that were
        not are passed to ``observe``, so online scoring counts each exchange once.  ``positions``:
        per record, where it came from (e.g. ``{"segment": 3, "offset": 4096}``), kept with it if it
        is quarantined.  Raises on a failure that is not the records' (nothing quarantined): the
        caller retries the same records.
        """
        if not items:
            return 0
        items, positions = list(items), list(positions) if positions is not None else [{}] * len(items)
        keys = [position_key(p) for p in positions]
        if self._set_aside:  # the retry of a write that raised after quarantining some of these: they are done
            kept = [i for i, key in enumerate(keys) if key not in self._set_aside]
            items, positions = [items[i] for i in kept], [positions[i] for i in kept]
        replay = replay or self._replay_next
        self._replay_next = True  # until this returns: halves stored before a raise were observed
        stored = self._write_or_split(items, positions, replay) if items else 0
        self._replay_next = False
        if self._set_aside:  # this write went through: none of its records comes again
            self._set_aside.difference_update(keys)
        return stored

    def _write_or_split(self, items: list[Item], positions: list[dict[str, Any]], replay: bool) -> int:
        try:
            return self._write_batch(items, replay)
        except Exception as exc:
            if not records_at_fault(exc):
                raise
            if len(items) == 1:
                cause = exc.__cause__ if isinstance(exc, UnusableRecords) else exc
                event, extra = items[0]
                self.quarantine([{**positions[0], "reason": repr(cause), "e": event, "x": extra}])
                key = position_key(positions[0])
                if key is not None:  # until this write returns: a store failure after this point retries it all
                    self._set_aside.add(key)
                return 0
        half = len(items) // 2  # bisect: a few bad records cost O(log n) extra transactions each
        return self._write_or_split(items[:half], positions[:half], replay) + self._write_or_split(items[half:], positions[half:], replay)

    def _write_batch(self, items: list[Item], replay: bool) -> int:
        t0 = time.perf_counter()
        try:
            batch = normalize_batch([ev for ev, _ in items], self.hasher, keep_text=self.keep_text)
            log_rows = pa.Table.from_pylist([log_row(ev, x) for ev, x in items], schema=GATEWAY_LOG_SCHEMA)
        except (MemoryError, OSError):  # the machine's fault, not the records'
            raise
        except Exception as exc:
            raise UnusableRecords(repr(exc)) from exc
        new_ids = self._unstored_ids(batch.events) if replay else None
        self._keeper.offer(batch.excerpts)
        samples = self._keeper.drain()
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
            self._keeper.give_back(samples)  # a retry (or the halves of a split) offers them again
            raise
        self.stored_total += len(items)
        self.batches_total += 1
        self.last_store_s = time.perf_counter() - t0
        if self.observe is not None:
            observed = batch.events
            if new_ids is not None:  # replay: only what online scoring has not seen before the restart
                observed = observed.filter(pc.is_in(observed.column("event_id"), value_set=new_ids))
            try:
                if observed.num_rows:
                    self.observe(observed)
            except Exception:
                log.exception("observe failed on %d events", observed.num_rows)
        return len(items)

    def quarantine(self, entries: Sequence[dict[str, Any]]) -> None:
        """Set records aside: one JSON line each (``reason``, where it came from, the record), fsynced
        before this returns, since the caller then reports them done and the WAL may delete them."""
        for entry in entries:
            where = ", ".join(f"{k} {entry[k]}" for k in ("segment", "offset") if k in entry)
            log.error("write-ahead record (%s) cannot be stored (%s); quarantined", where or "no position", entry["reason"])
        if self.quarantine_path is not None:
            lines = b"".join(orjson.dumps({"at": time.time(), **entry}, default=repr) + b"\n" for entry in entries)
            fd = os.open(self.quarantine_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                view = memoryview(lines)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
        self.quarantined_total += len(entries)

    def _unstored_ids(self, events: pa.Table) -> pa.Array:
        con = self.store.con
        con.register("_replay_ids", events.select(["event_id"]))
        try:
            stored = {r[0] for r in con.execute("SELECT event_id FROM events JOIN _replay_ids USING (event_id)").fetchall()}
        finally:
            con.unregister("_replay_ids")
        return pa.array([i for i in events.column("event_id").to_pylist() if i not in stored], pa.string())

    def _insert(self, table: str, rows: pa.Table) -> None:
        """Insert the rows whose event_id is not stored yet (event_id is every table's key)."""
        if rows.num_rows == 0:
            return
        schema = GATEWAY_LOG_SCHEMA if table == "gateway_log" else TABLES[table][0]
        insert_new(self.store.con, table, rows.select(schema.names).cast(schema), "event_id")

    def recent_events(self, window_s: float, limit: int) -> pa.Table:
        """The stored events of the last ``window_s`` seconds (of event time), newest ``limit`` of them:
        what online scoring starts from after a restart instead of an empty window."""
        return self.store.query(
            "SELECT * FROM events WHERE ts >= (SELECT max(ts) FROM events) - ? ORDER BY ts DESC LIMIT ?", [float(window_s), int(limit)]
        )
