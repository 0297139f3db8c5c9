"""The recording worker: the child process that turns the serving process's WAL into stored, scored events.

``distillguard serve`` (and the LiteLLM plugin) only append each exchange to the
write-ahead file and look decisions up in memory; everything heavy happens here,
in a process of its own, so none of it holds the serving process's GIL:

1. tail the WAL (:class:`~distillguard.gateway.wal.WALTailer`): the records
   appended since the last look, a previous run's leftover segments first;
2. every ``flush_interval_s`` (or ``flush_batch`` records) normalize and store
   them in one DuckDB transaction, then feed them to online scoring
   (:class:`~distillguard.gateway.sink.StoreSink`).  Records that make a batch
   fail deterministically are isolated by bisection and quarantined
   (``<wal_dir>/quarantine.jsonl``, with the reason and WAL position) so the
   rest are stored; a failure of the store itself (disk full, out of memory)
   retries the batch a second later, except a fatal DuckDB error, after which
   the connection is unusable: the worker exits (:data:`EXIT_STORE_INVALIDATED`)
   and the serving process starts a fresh one, which reopens the store and
   resumes from the WAL;
3. tell the serving process, per segment, how many records are done (stored
   or quarantined; it deletes a segment once it is closed and fully done; a
   previous run's segments are deleted here);
4. run the online scorer (its own thread, as in process) and send every risk
   record it writes to the serving process's risk table, or write them to Redis
   when the deployment shares state there;
5. report its counters about once a second.

It starts its online window from the store (the last ``window_s`` of stored
events), so a worker that died and was restarted scores from the same history.
Records it finds in the files at start may have been stored by its predecessor:
storing is idempotent (``event_id`` keys) and only the rows not stored before
are scored.  It ignores SIGINT and SIGTERM (the serving process tells it when to
stop: ``stop`` over the pipe means store everything and exit; the pipe closing
means the serving process died: store what can be read and exit, leaving the
segments for the next start, which may already be writing new ones).

If the store cannot be used at all (a schema this version does not write, not a
DuckDB file, no permission) the worker says so (``["failed", reason]``) and
exits at once: restarting it would change nothing.  Only another process holding
the store's lock is waited for.  A stop request ends that wait at once (the WAL
keeps every record for the next start) unless the holder is a predecessor worker
on the same WAL (its pid is in ``<wal_dir>/worker.pid``): one whose serving process
died stores what the WAL holds and then exits, so the wait goes on (at most its
60 s) and the shutdown still stores everything.

Run by :class:`~distillguard.gateway.process_recorder.ProcessRecorder` as
``python -m distillguard.gateway.worker FD`` with one end of a socket pair;
the first message is the pickled
:class:`~distillguard.gateway.process_recorder.WorkerSettings`.  Messages to
the serving process are orjson arrays: ``["commit", {segment: done}, quarantined]``,
``["risk", table, {key: record}, ttl_s]``, ``["stats", {...}]``,
``["store_error", reason]``, ``["failed", reason]``, ``["done"]``.

Example:
    >>> import tempfile
    >>> from distillguard.gateway.process_recorder import WorkerSettings
    >>> from distillguard.gateway.wal import WriteAheadLog
    >>> from distillguard.privacy import Hasher
    >>> d = tempfile.mkdtemp()
    >>> wal = WriteAheadLog(d + "/wal")
    >>> _ = wal.append(b'{"e": {"event_id": "e1", "ts": 1.7e9, "account_id": "a"}, "x": {}}')
    >>> sent = []
    >>> w = RecordingWorker(WorkerSettings(d + "/wal", d + "/gw.duckdb", Hasher(b"k"), wal.first_seq), sent.append)
    >>> w.step(flush=True), sent[-1]
    (1, ['commit', {1: 1}, 0])
    >>> w.close()
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from distillguard.errors import ConfigError, InputError
from distillguard.gateway.process_recorder import EXIT_STORE_INVALIDATED, EXIT_UNUSABLE, WorkerSettings
from distillguard.gateway.sink import QUARANTINE_FILE, StoreSink, store_invalidated
from distillguard.gateway.state.base import Record, RiskTable
from distillguard.gateway.wal import TailedRecord, WALTailer, segment_name
from distillguard.store.duckdb import DuckDBStore

log = logging.getLogger("distillguard.gateway.worker")

Send = Callable[[list], None]
#: in the WAL directory: the pid of the last worker that opened the store
WORKER_PID_FILE = "worker.pid"


class StoreInvalidated(Exception):
    """A fatal DuckDB error invalidated the store's connection: nothing can be stored through it any more."""


class ShutdownRequested(Exception):
    """The serving process asked this worker to stop (or went away) while it waited to open the store."""


class PipeRiskTable(RiskTable):
    """The risk table online scoring writes to in the worker: every write goes to the serving process.

    Reads answer from what this worker wrote (the scorer only writes).
    """

    def __init__(self, send: Send):
        self._send = send
        self._mirror: dict[str, dict[str, Record]] = {}

    def get(self, table: str, key: str) -> Record | None:
        return self._mirror.get(table, {}).get(key)

    def put_many(self, table: str, records: Mapping[str, Record], ttl_s: float | None = None) -> None:
        if records:
            self._mirror.setdefault(table, {}).update(records)
            self._send(["risk", table, dict(records), ttl_s])

    def delete(self, table: str, key: str) -> bool:
        return self._mirror.get(table, {}).pop(key, None) is not None

    def keys(self, table: str, limit: int = 1000) -> list[str]:
        return list(self._mirror.get(table, {}))[:limit]


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether opening the store failed only because another process holds it (DuckDB's file lock)."""
    return isinstance(exc, InputError) and "Could not set lock" in str(exc.__cause__ or "")


def is_permanent(exc: BaseException) -> bool:
    """Whether a start-up failure will happen again on every restart: the store is unusable as it is
    (wrong schema, not a DuckDB file, no permission) or the settings are wrong."""
    return isinstance(exc, (InputError, ConfigError)) and not is_lock_conflict(exc)


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``), or None where that cannot
    be read (the process is gone, or no ``/proc``).  A pid and its start time name one process: pids
    are reused, start times of one pid are not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name before ")" may hold spaces


def pid_record(pid: int) -> str:
    """The contents of ``WORKER_PID_FILE`` for worker ``pid``: the pid and, where known, its start time.

    Example:
        >>> record = pid_record(os.getpid())
        >>> record.split()[0] == str(os.getpid())
        True
    """
    start = process_start(pid)
    return f"{pid} {start}" if start is not None else str(pid)


def running_predecessor(wal_dir: str | Path) -> int | None:
    """The pid of the last other worker that opened this WAL's store (``WORKER_PID_FILE``) if it still
    runs, e.g. one whose serving process died, storing what the WAL holds before it exits; else None.

    A file left by a worker that has ended may name a pid the system has since given to another
    process; the recorded start time tells them apart (without it, a reused pid made a shutdown wait
    out the 60 s lock timeout for a process that was never going to let go)."""
    try:
        pid_text, *start = (Path(wal_dir) / WORKER_PID_FILE).read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:  # it has ended: the file outlives its worker
        return None
    except PermissionError:  # alive, someone else's
        pass
    running_start = process_start(pid)
    if start and running_start is not None and running_start != start[0]:
        return None  # the pid now belongs to another process
    return pid


def open_store(
    path: str, timeout_s: float = 60.0, *, stop_requested: Callable[[float], bool] | None = None,
    predecessor_running: Callable[[], bool] | None = None,
) -> DuckDBStore:  # fmt: skip
    """The gateway's store, waiting (up to ``timeout_s``) while another process holds its lock, e.g. a
    predecessor that is exiting; any other failure to open it raises at once.

    ``stop_requested(wait_s)``: waits up to ``wait_s`` for a stop request and says whether one came.
    After one, the wait goes on only while ``predecessor_running()`` (a predecessor worker finishes
    and lets go of the lock; any other holder may keep it for good): otherwise this raises
    :class:`ShutdownRequested` at once, so a shutdown does not wait for a lock.
    """
    deadline = time.monotonic() + timeout_s
    stopping = give_up = False
    while True:
        try:
            # one DuckDB thread: batched appends gain nothing from a second, and the proxy needs that core
            return DuckDBStore(path, threads=1)
        except InputError as exc:
            if not is_lock_conflict(exc) or time.monotonic() > deadline:
                raise
            if give_up:
                raise ShutdownRequested(f"{path}: stopped while another process held the store's lock") from exc
            wait_s = max(0.0, min(0.25, deadline - time.monotonic()))
            if stop_requested is None or stopping:
                time.sleep(wait_s)
            else:
                stopping = stop_requested(wait_s)
            # one more try first: a predecessor that just ended has let go of the lock
            give_up = stopping and not (predecessor_running is not None and predecessor_running())


class RecordingWorker:
    """WAL → store → online scoring, one :meth:`step` at a time (see the module docstring).

    ``send``: delivers a message to the serving process (a list; thread-safe, the scorer's thread
    sends risk records).  ``stop_requested``: see :func:`open_store` (the wait for the store's lock).
    """

    def __init__(self, settings: WorkerSettings, send: Send, *, stop_requested: Callable[[float], bool] | None = None):
        self.settings = settings
        self.send = send
        self.store = open_store(settings.store_path, stop_requested=stop_requested,
                                predecessor_running=lambda: running_predecessor(settings.wal_dir) is not None)  # fmt: skip
        # at once, the lock just taken: a successor waiting for it can tell it is a worker's. Left in place
        # at exit (DuckDB may hold the lock until the process ends): a pid that no longer runs is no predecessor
        try:
            (Path(settings.wal_dir) / WORKER_PID_FILE).write_text(pid_record(os.getpid()))
        except BaseException:
            self.store.close()
            raise
        self.state = None
        self.scorer = None
        try:
            if settings.online is not None:
                from distillguard.gateway.enforcement import build_scorer

                redis_url = settings.online.get("redis_url")
                if redis_url:
                    from distillguard.gateway.state import open_state

                    self.state = open_state(redis_url, prefix=settings.online.get("redis_prefix", "dg:"))
                    risk: RiskTable = self.state.risk
                else:
                    risk = PipeRiskTable(send)
                self.scorer = build_scorer(risk, settings.online)
            self.sink = StoreSink(
                self.store, settings.hasher, keep_text=settings.keep_text,
                observe=self.scorer.observe if self.scorer is not None else None,
                quarantine_path=Path(settings.wal_dir) / QUARANTINE_FILE,
            )  # fmt: skip
            if self.scorer is not None:
                recent = self.sink.recent_events(self.scorer.window_s, self.scorer.max_events)
                if recent.num_rows:
                    self.scorer.observe(recent)
                    log.info("online window started from %d stored events", recent.num_rows)
        except BaseException:
            self.store.close()
            raise
        self.tailer = WALTailer(settings.wal_dir)
        self.stored: dict[int, int] = {}  # segment -> records of it done, stored or quarantined (from its start)
        self.pending: list[TailedRecord] = []
        self.store_errors = 0  # batches that failed for a reason of the store's, retried
        self._quarantined_reported = 0  # of sink.quarantined_total: a write that raised may have quarantined some
        self._last_flush = time.monotonic()
        self._deleted: set[int] = set()

    # -- one iteration -------------------------------------------------------------------------
    def step(self, *, flush: bool = False, final: bool = False) -> int:
        """Read what was appended; store it when a batch is due (``flush``: now).  Returns records stored.

        ``final``: the writer is closed: read everything, store everything.
        """
        s = self.settings
        done = 0
        while True:
            self.pending += self.tailer.read(max(0, s.flush_batch - len(self.pending)), final=final)
            now = time.monotonic()
            due = len(self.pending) >= s.flush_batch or (self.pending and (flush or final or now - self._last_flush >= s.flush_interval_s))
            if not due:
                break
            self._last_flush = now
            done += self._store(self.pending)
            self.pending = []
            if not final:
                break
        self._delete_previous_runs()
        return done

    def _store(self, items: list[TailedRecord]) -> int:
        per_segment: dict[int, int] = {}
        for item in items:
            per_segment[item.segment] = per_segment.get(item.segment, 0) + 1
        # raises on a failure of the store's: nothing is reported, the same records are retried next step
        # (those it quarantined before raising are not again, and are reported with the commit below)
        self.sink.write_payloads(
            [(item.payload, {"segment": item.segment, "offset": item.offset}) for item in items],
            replay=any(item.replayed for item in items),
        )
        for seq, n in per_segment.items():
            self.stored[seq] = self.stored.get(seq, 0) + n
        quarantined, self._quarantined_reported = self.sink.quarantined_total - self._quarantined_reported, self.sink.quarantined_total
        self.send(["commit", {seq: self.stored[seq] for seq in per_segment}, quarantined])
        return len(items)

    def _delete_previous_runs(self) -> None:
        """A previous run's segments are closed: delete each once it is read to its end and stored."""
        for seq in self.tailer.finished:
            if seq < self.settings.first_seq and seq not in self._deleted and self.stored.get(seq, 0) >= self.tailer.read_counts.get(seq, 0):
                (Path(self.settings.wal_dir) / segment_name(seq)).unlink(missing_ok=True)
                self._deleted.add(seq)

    def stats(self) -> dict[str, Any]:
        """What the serving process shows about the worker (admin, logs)."""
        return {
            "pid": os.getpid(), "stored_total": self.sink.stored_total, "batches_total": self.sink.batches_total,
            "quarantined_total": self.sink.quarantined_total, "store_errors": self.store_errors,
            "wal_torn_tails": self.tailer.torn_tails, "last_store_s": round(self.sink.last_store_s, 4),
            "unstored_read": len(self.pending), "online": vars(self.scorer.stats).copy() if self.scorer is not None else None,
        }  # fmt: skip

    def close(self) -> None:
        if self.scorer is not None:
            self.scorer.close()
        if self.state is not None:
            self.state.close()
        self.tailer.close()
        self.store.close()

    # -- the process ---------------------------------------------------------------------------
    def run(self, conn: Any, *, tick_s: float = 0.05, stats_interval_s: float = 1.0) -> None:
        """Serve until ``stop`` (store everything, then exit) or the pipe closes (exit).

        Raises :class:`StoreInvalidated` after a fatal DuckDB error (retrying through that connection
        cannot succeed; a new worker can)."""
        if self.scorer is not None:
            self.scorer.start()
        last_stats = 0.0
        while True:
            try:
                stop = conn.poll(tick_s) and conn.recv_bytes() == b"stop"
            except (EOFError, OSError):
                # the serving process is gone (killed, or a LiteLLM proxy that exited on SIGTERM): nothing
                # writes any more, so store what can be read; segments stay for the next start to delete
                log.warning("the serving process is gone; storing what is in the write-ahead file, then exiting")
                try:
                    self.step(final=True)
                except Exception:
                    log.exception("storing write-ahead records failed; the next start replays them")
                return
            try:
                self.step(final=stop)
            except Exception as exc:  # the store's: the records stay in the WAL, retried (or replayed at the next start)
                self.store_errors += 1
                self.send(["store_error", repr(exc)])
                if store_invalidated(exc):
                    raise StoreInvalidated(repr(exc)) from exc
                log.exception("storing write-ahead records failed; retrying")
                time.sleep(1.0)
                if not stop:
                    continue
            now = time.monotonic()
            if stop or now - last_stats >= stats_interval_s:
                last_stats = now
                self.send(["stats", self.stats()])
            if stop:
                self.send(["done"])
                return


def _sender(conn: Any) -> Send:
    lock = threading.Lock()

    def send(message: list) -> None:
        data = orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
        with lock:
            try:
                conn.send_bytes(data)
            except OSError:  # the serving process is gone; the main loop notices and exits
                pass

    return send


def main(argv: list[str] | None = None) -> None:
    """``python -m distillguard.gateway.worker FD``: run a worker on the inherited socket ``FD``."""
    from multiprocessing.connection import Connection

    args = sys.argv[1:] if argv is None else argv
    conn = Connection(int(args[0]))
    # the serving process decides when this one stops (a Ctrl-C or a group SIGTERM reaches both)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="distillguard recording worker: %(levelname)s %(name)s: %(message)s")
    settings: WorkerSettings = conn.recv()
    if settings.nice:
        os.nice(settings.nice)
    send = _sender(conn)
    try:
        # any message (only "stop" comes before the store is open) or the pipe closing ends a wait for the lock
        worker = RecordingWorker(settings, send, stop_requested=conn.poll)
    except ShutdownRequested as exc:
        log.warning("%s; the write-ahead file keeps its records for the next start", exc)
        return
    except Exception as exc:
        if not is_permanent(exc):
            raise  # the supervisor restarts this worker after a back-off
        log.error("cannot record: %s", exc)
        send(["failed", str(exc)])  # and not restarted: a new worker would fail the same way
        sys.exit(EXIT_UNUSABLE)
    invalidated = False
    try:
        worker.run(conn, stats_interval_s=settings.stats_interval_s)
    except StoreInvalidated as exc:
        log.error("the store's connection was invalidated (%s); exiting so that a fresh worker reopens it and goes on "
                  "from the write-ahead file", exc)  # fmt: skip
        invalidated = True
    finally:
        try:
            worker.close()
        except Exception:
            if not invalidated:
                raise
            log.exception("closing the invalidated store failed")  # the process exit frees it anyway
    if invalidated:
        sys.exit(EXIT_STORE_INVALIDATED)


if __name__ == "__main__":
    main()
