"""Where recorded exchanges end up: normalized, in the DuckDB store, then shown to online scoring.

:class:`StoreSink` is the one "write-ahead record → store" step, shared by the
in-process :class:`~distillguard.gateway.recorder.WALRecorder` (a thread of the
serving process) and the recording worker process
(:mod:`distillguard.gateway.worker`).  A batch of ``(event, extra)`` pairs is
normalized with the batch scan's :func:`~distillguard.normalize.normalize_batch`,
written in one DuckDB transaction (``events``, ``texts`` with ``keep_text``,
``samples``, and ``gateway_log``: endpoint, HTTP status, error and decision per
exchange), and the stored rows are handed to ``observe`` (online scoring).
``event_id`` is every table's key, so storing a record twice is a no-op; with
``replay=True`` only the rows that were not stored before are observed.

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
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

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
    ]
)
_LOG_DDL = (
    "CREATE TABLE IF NOT EXISTS gateway_log (event_id VARCHAR PRIMARY KEY, ts DOUBLE, account_id VARCHAR, "
    "endpoint VARCHAR, http_status BIGINT, error VARCHAR, actions VARCHAR, shadow BOOLEAN, reason VARCHAR, "
    "policy_rule VARCHAR, score DOUBLE, cluster_id VARCHAR)"
)

Item = tuple[RawEvent, dict[str, Any]]


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


class StoreSink:
    """Normalize → store (one transaction per batch) → observe.  Not thread-safe: one caller at a time.

    ``rejected_path``: where records normalization cannot take are set aside (JSON lines) instead of
    blocking the ones after them; None: they are only logged.
    """

    def __init__(
        self,
        store: DuckDBStore,
        hasher: Hasher,
        *,
        keep_text: bool = False,
        observe: Callable[[pa.Table], None] | None = None,
        rejected_path: str | Path | None = None,
        excerpts_per_account: int = 5,
    ):
        self.store = store
        self.hasher = hasher
        self.keep_text = keep_text
        self.observe = observe
        self.rejected_path = Path(rejected_path) if rejected_path is not None else None
        self._keeper = ExcerptKeeper(excerpts_per_account)
        self.stored_total = 0  # records committed to the store by this sink (replayed ones included)
        self.last_store_s = 0.0  # duration of the last batch
        self.store.con.execute(_LOG_DDL).fetchall()

    def write(self, items: Sequence[Item], *, replay: bool = False) -> int:
        """Store one batch; returns how many records it held (set-aside ones excluded).

        ``replay``: the records may have been stored before (a restart): only the rows that were
        not are passed to ``observe``, so online scoring counts each exchange once.
        """
        if not items:
            return 0
        t0 = time.perf_counter()
        events = [ev for ev, _ in items]
        try:
            batch = normalize_batch(events, self.hasher, keep_text=self.keep_text)
        except Exception:
            items = self._reject_unusable(items)
            if not items:
                return 0
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

    def _reject_unusable(self, items: Sequence[Item]) -> list[Item]:
        """Set aside the records normalization cannot take (to ``rejected_path``), keep the rest."""
        good, bad = [], []
        for ev, x in items:
            try:
                normalize_batch([ev], self.hasher)
                good.append((ev, x))
            except Exception as exc:
                log.error("write-ahead record %s cannot be normalized (%r); set aside", ev.get("event_id"), exc)
                bad.append(orjson.dumps({"e": ev, "x": x, "reason": repr(exc)}) + b"\n")
        if bad and self.rejected_path is not None:
            with open(self.rejected_path, "ab") as f:
                f.writelines(bad)
        return good

    def recent_events(self, window_s: float, limit: int) -> pa.Table:
        """The stored events of the last ``window_s`` seconds (of event time), newest ``limit`` of them:
        what online scoring starts from after a restart instead of an empty window."""
        return self.store.query(
            "SELECT * FROM events WHERE ts >= (SELECT max(ts) FROM events) - ? ORDER BY ts DESC LIMIT ?", [float(window_s), int(limit)]
        )
