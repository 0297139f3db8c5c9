"""The serving process's recorder: append to the WAL, and supervise the worker process that does the rest.

:class:`ProcessRecorder` is what ``distillguard serve`` and the LiteLLM plugin
record with by default (``recorder_process: true``).  On the request path,
``record()`` serializes the exchange and appends it to the write-ahead file with
one ``write(2)``: once it returns the exchange survives a crash of the serving
process.  If that write fails (a full disk, an I/O error) the exchange, already
served, is counted as lost (``lost_records``) rather than raised into the
request handler: the API stays up while recording is down.  Nothing else
happens in this process: normalization, the DuckDB store and online scoring run in the recording worker (:mod:`distillguard.gateway.worker`),
a child process that tails the WAL, so their CPU never holds this process's GIL
(and a large heap of Arrow tables and DataFrames never slows its garbage collector).

A supervisor thread here:

* fsyncs the WAL every ``fsync_interval_s`` and rotates its segments;
* applies what the worker sends: stored counts per segment (a closed segment is
  deleted once all its records are stored), risk records from online scoring
  (into the enforcer's risk table, which ``decide`` reads; with Redis the worker
  writes there itself), its counters;
* restarts the worker if it dies (with backoff): the new one reads the segments
  from their start, stores what its predecessor had not (``event_id`` keys make
  a second store a no-op) and scores only those (a worker whose store connection
  a fatal DuckDB error invalidated exits with :data:`EXIT_STORE_INVALIDATED` for
  this: a fresh one reopens the store).  A worker that reports the
  store unusable (``["failed", reason]``: a schema mismatch, not a DuckDB file)
  is not restarted: recording is down until the problem is fixed and the
  gateway restarted, while this process keeps proxying and appending to the WAL
  (:meth:`ProcessRecorder.status` says why).

:meth:`ProcessRecorder.close` closes the WAL, tells the worker to store
everything and waits for it; the segments are then gone.  If the serving process
is killed, the worker sees its pipe close, stores what it can read of the WAL and
exits (the LiteLLM proxy ends that way: uvicorn re-raises SIGTERM after its
shutdown, so no exit hook of the plugin runs); the next start's worker replays
whatever is left.

Example:
    >>> import tempfile
    >>> from distillguard.privacy import Hasher
    >>> d = tempfile.mkdtemp()
    >>> rec = ProcessRecorder(d + "/wal", d + "/gw.duckdb", Hasher(b"k"))
    >>> rec.start()
    >>> rec.record({"event_id": "e1", "ts": 1.7e9, "account_id": "acct-1"}, {"endpoint": "/v1/chat/completions"})
    >>> rec.close()
    >>> import duckdb; duckdb.connect(d + "/gw.duckdb").sql("SELECT account_id FROM events").fetchall()
    [('acct-1',)]
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from distillguard.gateway.state.base import RiskTable
from distillguard.gateway.types import Recorder
from distillguard.gateway.wal import AppendFailures, WriteAheadLog
from distillguard.privacy import Hasher
from distillguard.schema import RawEvent

log = logging.getLogger("distillguard.gateway.recorder")

#: the worker's exit status when the store cannot be used as it is (sysexits' EX_CONFIG): not restarted
EXIT_UNUSABLE = 78
#: the worker's exit status after a fatal DuckDB error invalidated its connection (EX_TEMPFAIL): restarted
EXIT_STORE_INVALIDATED = 75


@dataclass(frozen=True)
class WorkerSettings:
    """What the recording worker is started with (pickled through its start-up pipe: the hasher's
    secret never appears on a command line)."""

    wal_dir: str
    store_path: str
    hasher: Hasher
    first_seq: int  # the serving process's first segment: lower ones are a previous run's
    keep_text: bool = False
    flush_batch: int = 1024
    flush_interval_s: float = 1.0
    # enforcer options (enforcement.enforcer_options) when scoring online; with their redis_url set the
    # risk records go straight to that Redis (under redis_prefix), else back over the pipe
    online: dict[str, Any] | None = None
    nice: int = 10
    stats_interval_s: float = 1.0


@dataclass
class AppendTimes:
    """When the records not stored yet were appended, as at most ``max_buckets`` ``[first time, count]``
    buckets, oldest first: the lag needs only the oldest, and while the worker cannot run records keep
    coming (one entry per record grew without bound).  A full set of buckets merges pairwise and
    doubles ``bucket_s``, so the oldest time stays exact and others are at most ``bucket_s`` early;
    ``bucket_s`` is fine again once the backlog is stored.  Thread-safe (appends on the request path,
    stored counts from the supervisor).

    Example:
        >>> times = AppendTimes()
        >>> times.appended(10.0); times.appended(10.001); times.appended(11.0)
        >>> len(times), times.oldest()
        (2, 10.0)
        >>> times.stored(2); times.oldest()
        11.0
    """

    max_buckets: int = 1024
    min_bucket_s: float = 0.01
    bucket_s: float = 0.01
    _buckets: deque[list] = field(default_factory=deque, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def appended(self, now: float) -> None:
        with self._lock:
            buckets = self._buckets
            if buckets and now - buckets[-1][0] < self.bucket_s:
                buckets[-1][1] += 1
                return
            if len(buckets) >= self.max_buckets:  # merge neighbours: half as many buckets, twice as wide
                listed = list(buckets)
                self._buckets = buckets = deque([listed[i][0], sum(b[1] for b in listed[i : i + 2])] for i in range(0, len(listed), 2))
                self.bucket_s *= 2
            buckets.append([now, 1])

    def stored(self, n: int) -> None:
        """The oldest ``n`` records are stored."""
        with self._lock:
            buckets = self._buckets
            while n > 0 and buckets:
                if buckets[0][1] > n:
                    buckets[0][1] -= n
                    break
                n -= buckets.popleft()[1]
            if not buckets:
                self.bucket_s = self.min_bucket_s
            elif len(buckets) <= self.max_buckets // 4:  # catching up: new records get a finer clock
                self.bucket_s = max(self.min_bucket_s, self.bucket_s / 2)

    def oldest(self) -> float | None:
        """Append time of the oldest record not stored (None when all are)."""
        try:
            return self._buckets[0][0]
        except IndexError:
            return None

    def __len__(self) -> int:
        return len(self._buckets)


class ProcessRecorder(Recorder):
    """WAL appends here, everything else in a supervised worker process (see the module docstring).

    ``risk``: where the worker's online risk records are applied (the enforcer's risk table; not
    needed when ``online`` has a ``redis_url``: the worker writes there).  ``online``: the enforcer
    options when online scoring is on, else None.
    """

    #: the worker's command line after the interpreter (the socket's descriptor is appended)
    worker_args: tuple[str, ...] = ("-m", "distillguard.gateway.worker")

    def __init__(
        self,
        wal_dir: str | Path,
        store_path: str | Path,
        hasher: Hasher,
        *,
        risk: RiskTable | None = None,
        online: dict[str, Any] | None = None,
        keep_text: bool = False,
        flush_batch: int = 1024,
        flush_interval_s: float = 1.0,
        fsync_interval_s: float = 0.05,
        segment_bytes: int = 16 * 1024 * 1024,
        nice: int = 10,
        max_restart_backoff_s: float = 10.0,
    ):
        self.risk = risk
        self.wal = WriteAheadLog(wal_dir, segment_bytes)
        self.settings = WorkerSettings(
            str(wal_dir), str(store_path), hasher, self.wal.first_seq, keep_text=keep_text, flush_batch=flush_batch,
            flush_interval_s=flush_interval_s, online=online, nice=nice,
        )  # fmt: skip
        self._sync_each = fsync_interval_s <= 0
        self._tick = fsync_interval_s if fsync_interval_s > 0 else 0.05
        self._append_times = AppendTimes()  # of the records not yet stored, for the lag
        self.append_failures = AppendFailures()  # exchanges served but not recorded (the WAL write failed)
        self.wal_bytes = 0  # segment files on disk, refreshed by the supervisor (listing them is not for the event loop)
        self._max_backoff = max_restart_backoff_s
        self._proc: subprocess.Popen | None = None
        self._conn: Any = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self._lifecycle = threading.Lock()  # a worker is never started once close() has begun
        self._closed = threading.Event()  # wakes the supervisor out of a restart back-off
        self.restarts = 0  # worker restarts after a death
        self.failure: str | None = None  # why the worker cannot run (then it is not restarted)
        self.worker_stats: dict[str, Any] = {}  # the worker's last reported counters
        self.stored_total = 0  # records of this run reported done (stored, or quarantined)
        self.batches_total = 0  # batches the workers reported done
        self.quarantined_total = 0  # records the workers set aside (a restarted worker may set one aside again)
        self.store_errors = 0  # batches that failed for a reason of the store's (retried)
        self.last_store_error: str | None = None

    @classmethod
    def from_config(cls, config: Any, hasher: Hasher, risk: RiskTable | None, online: dict[str, Any] | None) -> ProcessRecorder:
        """A recorder for a :class:`~distillguard.gateway.config.GatewayConfig` (its store, WAL, batching)."""
        return cls(
            config.wal_dir, config.store_path, hasher, risk=risk, online=online, keep_text=config.keep_text,
            flush_batch=config.flush_batch, flush_interval_s=config.flush_interval_s, fsync_interval_s=config.wal_fsync_interval_s,
            segment_bytes=config.wal_segment_bytes, nice=config.worker_nice,
        )  # fmt: skip

    # ------------------------------------------------------------ request path

    def record(self, event: RawEvent, extra: dict[str, Any] | None = None) -> None:
        """Append one exchange to the WAL; durable (against a crash of this process) on return.

        Never raises: the exchange has been served, so a write that fails (disk full, I/O error) is
        counted and logged (:class:`~distillguard.gateway.wal.AppendFailures`), not turned into an error
        for the client."""
        try:
            self.wal.append(orjson.dumps({"e": event, "x": extra or {}}), sync=self._sync_each)
        except (OSError, TypeError) as exc:  # TypeError: orjson cannot serialize a value
            self.append_failures.failed(exc)
            return
        self._append_times.appended(time.monotonic())
        if self.append_failures.failing:
            self.append_failures.recovered()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the worker (it replays what a previous run left in the WAL) and the supervisor thread."""
        self._spawn()
        self._thread = threading.Thread(target=self._supervise, name="distillguard-recording-supervisor", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 120.0) -> None:
        """Close the WAL, have the worker store everything, wait for it (``timeout_s``, then kill it)."""
        with self._lifecycle:
            if self._closing:
                return
            self._closing = True
            conn = self._conn  # the worker running now, if any: none is started after this
        self._closed.set()
        self.wal.close()
        if conn is not None:
            try:
                conn.send_bytes(b"stop")
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout_s)
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                log.error("the recording worker did not finish in %.0f s; killed (the WAL keeps what it had not stored)", timeout_s)
                proc.kill()
                proc.wait(5)
        if self.wal.pending:
            log.warning("%d records not stored at shutdown stay in the write-ahead file for the next start", self.wal.pending)

    @property
    def pending(self) -> int:
        """Records this run appended that the worker has not stored yet."""
        return self.wal.pending

    @property
    def lag_s(self) -> float:
        """Age of the oldest record of this run not stored yet (0 when none)."""
        oldest = self._append_times.oldest()
        return 0.0 if oldest is None else time.monotonic() - oldest

    @property
    def worker_pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def status(self) -> dict[str, Any]:
        """What the admin API, ``/healthz`` and ``/metrics`` show about recording.

        ``state``: ``running``; ``restarting`` (the worker died, a new one starts after a back-off);
        ``failed`` (the worker cannot run, ``error`` says why: it is not restarted, the WAL grows
        until the problem is fixed and the gateway restarted); ``closed``; ``not_started``.
        ``wal_bytes``: the segment files on disk; ``lost_records``: exchanges served but never written
        to the WAL; ``wal_write_error``: why, while the latest append fails.
        """
        if self._closing:
            state = "closed"
        elif self._thread is None:
            state = "not_started"
        elif self.failure is not None:
            state = "failed"
        else:
            state = "running" if self._conn is not None else "restarting"
        return {
            "mode": "process", "state": state, "error": self.failure, "pending_records": self.pending,
            "lag_s": round(self.lag_s, 3), "committed_records": self.stored_total, "batches": self.batches_total,
            "quarantined_records": self.quarantined_total, "store_errors": self.store_errors,
            "last_store_error": self.last_store_error, "worker_restarts": self.restarts, "wal_bytes": self.wal_bytes,
            **self.append_failures.status(), "worker": self.worker_stats,
        }  # fmt: skip

    # ------------------------------------------------------------ the worker

    def _spawn(self) -> bool:
        """Start a worker; False (and none started) once :meth:`close` has begun."""
        from multiprocessing.connection import Connection

        with self._lifecycle:
            if self._closing:
                return False
            ours, theirs = socket.socketpair()
            try:
                # a fresh interpreter running the worker module: nothing of this process (say the LiteLLM
                # proxy's __main__) is imported again, unlike multiprocessing's spawn
                self._proc = subprocess.Popen(
                    [sys.executable, *self.worker_args, str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                )  # fmt: skip
            finally:
                theirs.close()
            conn = Connection(ours.detach())
            conn.send(self.settings)
            self._conn = conn
            return True

    def _supervise(self) -> None:
        backoff, restart_at, spawned_at = 0.25, 0.0, time.monotonic()
        measured_at = 0.0
        while True:
            conn = self._conn
            if conn is None:  # the worker died: restart it once its backoff has passed (unless it cannot run)
                if self._closing:
                    return
                if self.failure is None and time.monotonic() >= restart_at:
                    try:
                        if not self._spawn():
                            return  # closing
                        self.restarts += 1
                        spawned_at = time.monotonic()
                    except Exception:
                        log.exception("could not restart the recording worker")
                        restart_at = time.monotonic() + backoff
                else:
                    self._closed.wait(self._tick)
            else:
                try:
                    if conn.poll(self._tick):
                        while conn.poll(0):
                            self._handle(conn.recv_bytes())
                except (EOFError, OSError):
                    code = self._reap()
                    if self._closing:
                        return
                    if self.failure is not None:
                        log.error("the recording worker cannot run (%s); not restarting it. The gateway goes on serving "
                                  "and keeps every exchange in the write-ahead file %s: fix the problem and restart "
                                  "the gateway to store them", self.failure, self.settings.wal_dir)  # fmt: skip
                        continue
                    if time.monotonic() - spawned_at > 60:
                        backoff = 0.25  # it had run for a minute: a new failure, not a crash loop
                    if code == EXIT_STORE_INVALIDATED:  # same back-off: a store that fails so again at once is retried ever slower
                        log.error("the recording worker's store connection was invalidated by a fatal DuckDB error (status "
                                  "%s); starting a fresh worker in %.2f s, it resumes from the write-ahead file", code, backoff)  # fmt: skip
                    else:
                        log.error("the recording worker exited (status %s); restarting it in %.2f s", code, backoff)
                    restart_at, backoff = time.monotonic() + backoff, min(self._max_backoff, backoff * 2)
            if not self._closing:
                try:
                    self.wal.sync()
                    self.wal.rotate_if_large()
                    if time.monotonic() - measured_at >= 1.0:
                        measured_at = time.monotonic()
                        self.wal_bytes = self.wal.disk_bytes()
                except OSError:
                    log.exception("write-ahead file sync/rotate failed")

    def _reap(self) -> int | None:
        conn, self._conn = self._conn, None
        try:
            conn.close()
        except OSError:
            pass
        proc = self._proc
        if proc is None:
            return None
        try:
            return proc.wait(10)
        except subprocess.TimeoutExpired:  # closed its pipe but did not exit: it is of no use any more
            proc.kill()
            return proc.wait(5)

    def _handle(self, raw: bytes) -> None:
        message = orjson.loads(raw)
        kind = message[0]
        if kind == "commit":
            added = self.wal.committed_through({int(seq): n for seq, n in message[1].items()})
            self.stored_total += added
            self.batches_total += 1
            self.quarantined_total += message[2]
            self._append_times.stored(added)
        elif kind == "risk":
            _, table, records, ttl_s = message
            if self.risk is not None:
                self.risk.put_many(table, records, ttl_s)
        elif kind == "stats":
            self.worker_stats = message[1]
        elif kind == "store_error":
            self.store_errors += 1
            self.last_store_error = message[1]
        elif kind == "failed":
            self.failure = message[1]
