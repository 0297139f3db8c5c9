"""Files → store: read, set bad lines aside, normalize in batches, append without duplicates.

Example:
    >>> from distillguard.store.duckdb import DuckDBStore     # doctest: +SKIP
    >>> from distillguard.privacy import Hasher                # doctest: +SKIP
    >>> report = ingest_files(["logs.jsonl.gz"], DuckDBStore("dg.duckdb"), Hasher.from_config(),
    ...                       quarantine_path="out/quarantine.jsonl")   # doctest: +SKIP
    >>> report.explain()                                       # doctest: +SKIP
    'logs.jsonl.gz: 1,000,000 events (1,000,000 new, 0 already stored), 3 lines quarantined'
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from distillguard.errors import Quarantined
from distillguard.ingest import READERS, make_reader, read_accounts
from distillguard.ingest.lines import is_gzip, iter_line_blocks
from distillguard.normalize import ExcerptKeeper, batch_excerpt_candidates, normalize_batch, normalize_exchanges
from distillguard.privacy import Hasher
from distillguard.schema import ACCOUNT_SCHEMA, SAMPLE_SCHEMA, RawEvent
from distillguard.store.base import EventStore

ProgressCallback = Callable[[int], None]


@dataclass
class FileReport:
    path: str
    format: str | None = None
    events: int = 0
    inserted: int = 0
    quarantined: int = 0

    @property
    def duplicates(self) -> int:
        return self.events - self.inserted


@dataclass
class IngestReport:
    """What an ingest read, stored and set aside."""

    files: list[FileReport] = field(default_factory=list)
    quarantine_path: str | None = None
    quarantine_examples: list[str] = field(default_factory=list)
    accounts: int = 0
    #: seconds spent per step: "read" (parsing), "normalize" (hashing + text measures), "store".
    #: With worker processes, "read" and "normalize" are summed over the workers (plus the main
    #: process's line splitting in "read"), so with N busy workers they can add up to N x the wall
    #: time; "store" is the main process's (serial) store time, and "wait" the main process's time
    #: blocked on workers' results (near 0: the main process is the bottleneck).
    timings_s: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "normalize": 0.0, "store": 0.0})
    #: worker processes used (1: everything in the calling process)
    workers: int = 1

    @property
    def events(self) -> int:
        return sum(f.events for f in self.files)

    @property
    def inserted(self) -> int:
        return sum(f.inserted for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    def explain(self) -> str:
        lines = [
            f"{f.path}: {f.events:,} events ({f.inserted:,} new, {f.duplicates:,} already stored), "
            f"{f.quarantined:,} lines quarantined"
            for f in self.files
        ]
        if self.quarantined:
            lines.append(f"quarantined lines written to {self.quarantine_path}; first: " + "; ".join(self.quarantine_examples[:3]))
        return "\n".join(lines)


class QuarantineWriter:
    """Appends set-aside lines to a JSONL file, opened only when the first one arrives."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._fh = None

    def write(self, item: Quarantined) -> None:
        if self.path is None:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        self._fh.write(orjson.dumps(item.to_dict()) + b"\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


#: Inputs smaller than this (bytes, all files together; gzip counted x GZIP_RATIO) are ingested
#: serially when ``workers`` is not given: starting the worker processes (~1 s of imports and
#: warm-up) costs more than it saves below ~20k events.
PARALLEL_MIN_BYTES = 64 << 20
GZIP_RATIO = 5
#: Bytes of whole lines per task sent to a worker (~2,000 LiteLLM lines with text): large enough
#: to amortize the hand-off and the vectorized text measurements, small enough to bound memory
#: (a worker's resident memory peaks ~20x a block: 12 MB blocks cost each worker ~60 MB more).
#: The main process only cuts blocks at newlines; workers split them into lines.
CHUNK_BYTES = 6 << 20
#: Normalized events buffered before one store append (~37 MB of Arrow at ~300 bytes an event): one
#: DuckDB row group (122,880 rows).  An append of whole row groups costs ~25% less CPU than of
#: 100,000 rows (491,520 events into a store file: 1.9-2.2 s against 2.7-2.8).
STORE_ROWS = 122_880
#: The same with ``keep_text`` (a row then carries its prompt and completion, ~3 kB).
KEEP_TEXT_STORE_ROWS = 20_000
#: Tasks queued or running per worker; the main process stores results in input order.
TASKS_PER_WORKER = 2


def ingest_files(
    paths: Iterable[str | Path],
    store: EventStore,
    hasher: Hasher,
    *,
    fmt: str | None = None,
    mapping: str | Path | None = None,
    keep_text: bool = False,
    quarantine_path: str | Path | None = None,
    batch_size: int = 20_000,
    store_rows: int = STORE_ROWS,
    excerpts_per_account: int = 5,
    on_progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> IngestReport:
    """Read every file into ``store``.  Bad lines go to ``quarantine_path``; nothing raises for one.

    ``workers`` processes parse and normalize lines of formats read line by line
    (LiteLLM); the calling process reads the lines and stores the results in input
    order, so the stored rows, samples and quarantine file are the same for any
    ``workers``.  Default: one per CPU, or 1 (no processes) for inputs under
    ``PARALLEL_MIN_BYTES``; ``workers=1`` never starts a process.

    Normalized events are stored ``store_rows`` at a time (``KEEP_TEXT_STORE_ROWS`` at most with
    ``keep_text``), and progress is reported per store; ``batch_size`` is how many raw events the
    calling process normalizes at once when it reads a file itself.
    """
    paths = list(paths)
    if keep_text:  # clear text makes rows ~10x larger: store in smaller steps to bound memory
        store_rows = min(store_rows, KEEP_TEXT_STORE_ROWS)
    input_bytes = _input_bytes(paths)
    n_workers = _worker_count(input_bytes, workers)
    report = IngestReport(quarantine_path=str(quarantine_path) if quarantine_path else None)
    quarantine = QuarantineWriter(quarantine_path)
    keeper = ExcerptKeeper(excerpts_per_account)
    pool: _Pool | None = None
    started = time.perf_counter()
    try:
        for path in paths:
            file_report = FileReport(path=str(path), format=fmt)
            report.files.append(file_report)
            reader = make_reader(path, fmt=fmt, mapping=mapping)
            if hasattr(reader, "parse_block"):  # line by line: blocks of lines, in workers if there are several
                if pool is None:
                    if n_workers > 1:
                        pool = _Pool(n_workers, hasher, keep_text, excerpts_per_account)
                        report.workers = n_workers
                    else:  # compiled reader only where it pays for its first compilation (~1 min, then cached)
                        pool = _InProcess(hasher, keep_text, excerpts_per_account,
                                          compiled=input_bytes >= PARALLEL_MIN_BYTES)  # fmt: skip
                _ingest_blocks(pool, reader.name, path, store, quarantine, keeper, file_report, report,
                               store_rows, on_progress)  # fmt: skip
                continue
            t_file, t_other = time.perf_counter(), report.timings_s["normalize"] + report.timings_s["store"]
            buffer: list[RawEvent] = []
            with _StoreBuffer(store, file_report, report.timings_s, on_progress, store_rows) as stored:
                for item in reader.read(Path(path)):
                    if isinstance(item, Quarantined):
                        _quarantined(item, file_report, quarantine, report)
                        continue
                    if file_report.format is None:
                        file_report.format = item.get("source_format")
                    buffer.append(item)
                    if len(buffer) >= batch_size:
                        _normalize_into(stored, buffer, hasher, keep_text, keeper, report.timings_s)
                        buffer = []
                _normalize_into(stored, buffer, hasher, keep_text, keeper, report.timings_s)
            if pool is not None:  # a file read here while others went through workers
                t = report.timings_s
                t["read"] += time.perf_counter() - t_file - (t["normalize"] + t["store"] - t_other)
        store.append("samples", pa.Table.from_pylist(keeper.drain(), schema=SAMPLE_SCHEMA))
    finally:
        quarantine.close()
        if pool is not None:
            pool.close()
    t = report.timings_s
    if pool is None:
        t["read"] = time.perf_counter() - started - t["normalize"] - t["store"]
    return report


def default_workers() -> int:
    """The CPUs this process may run on (``os.cpu_count()`` unless an affinity mask says fewer)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _worker_count(input_bytes: int, workers: int | None) -> int:
    if workers is not None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        return workers
    n = default_workers()
    if n == 1:
        return 1
    return n if input_bytes >= PARALLEL_MIN_BYTES else 1


def _input_bytes(paths: list[str | Path]) -> int:
    """About how many bytes ``paths`` hold uncompressed (gzip counted x GZIP_RATIO)."""
    size = 0
    for path in paths:
        try:
            size += Path(path).stat().st_size * (GZIP_RATIO if is_gzip(Path(path)) else 1)
        except OSError:
            pass  # the reader names a missing file
    return size


def _quarantined(item: Quarantined, file_report: FileReport, quarantine: QuarantineWriter, report: IngestReport) -> None:
    file_report.quarantined += 1
    quarantine.write(item)
    if len(report.quarantine_examples) < 10:
        report.quarantine_examples.append(item.explain())


class _StoreBuffer:
    """Normalized batches held until ``rows`` events are ready, then stored in one append, in a thread.

    DuckDB's insert (with its anti-join on ``event_id``) costs ~2.5x more CPU per row in
    20,000-row appends than in 100,000-row ones, and less again in row-group-sized ones
    (docs/performance.md).  An append of 122,880 rows takes ~0.5 s; made in the calling thread it
    would stop the hand-out of blocks for that long and leave the worker processes idle, so it runs
    in a writer thread (DuckDB releases the GIL) while the caller goes on.  At most one append is in
    flight (memory stays bounded); leaving the ``with`` block waits for the last.  Progress and the
    file's counts are updated as appends complete, in the calling thread.
    """

    def __init__(self, store: EventStore, file_report: FileReport, timings: dict[str, float],
                 on_progress: ProgressCallback | None, rows: int):  # fmt: skip
        self.store, self.file_report, self.timings, self.on_progress, self.rows = store, file_report, timings, on_progress, rows
        self.events: list[pa.Table] = []
        self.texts: list[pa.Table] = []
        self.buffered = 0
        self._writer: ThreadPoolExecutor | None = None
        self._append: Future | None = None

    def add(self, events: pa.Table, texts: pa.Table | None, n_events: int) -> None:
        self.events.append(events)
        if texts is not None:
            self.texts.append(texts)
        self.buffered += n_events
        if self.buffered >= self.rows:
            self.flush()

    def flush(self) -> None:
        """Start storing what is buffered (after the append in flight, if any, is done)."""
        if not self.buffered:
            return
        self._wait()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="distillguard-store")
        events, texts = _concat(self.events), _concat(self.texts) if self.texts else None
        self._append = self._writer.submit(self._store, events, texts, self.buffered)
        self.events, self.texts, self.buffered = [], [], 0

    def __enter__(self) -> _StoreBuffer:
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        """Store what is buffered (unless the ingest failed) and wait until every append is done, raising
        its error if any: no append outlives the ingest, and the store is the caller's alone again."""
        try:
            if exc_type is None:
                self.flush()
            self._wait()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None

    def _store(self, events: pa.Table, texts: pa.Table | None, n_events: int) -> tuple[int, int, float]:
        t0 = time.perf_counter()
        inserted = self.store.append("events", events)
        if texts is not None:
            self.store.append("texts", texts)
        return n_events, inserted, time.perf_counter() - t0

    def _wait(self) -> None:
        if self._append is None:
            return
        append, self._append = self._append, None
        n_events, inserted, seconds = append.result()
        self.file_report.events += n_events
        self.file_report.inserted += inserted
        self.timings["store"] += seconds
        if self.on_progress:
            self.on_progress(n_events)


def _concat(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _normalize_into(stored: _StoreBuffer, buffer, hasher, keep_text, keeper, timings) -> None:
    if not buffer:
        return
    t0 = time.perf_counter()
    batch = normalize_batch(buffer, hasher, keep_text=keep_text)
    keeper.offer(batch.excerpts)
    timings["normalize"] += time.perf_counter() - t0
    stored.add(batch.events, batch.texts, len(buffer))


# ---------------------------------------------------------------- worker processes


class _SharedBlocks:
    """Slots of shared memory that carry blocks of lines to the worker processes.

    A block through the task pipe costs its receiver ~4x what it costs the sender (read 64 kB at a
    time into a growing buffer, then unpickled: ~8 ms of a worker's time per 6 MB block, ~3 us an
    event); through a slot, one copy in and one out.  A slot is taken when its block is submitted and
    given back once the block's task is done, so at most as many as there are tasks in flight are
    used; a block too large for a slot, or submitted when none is free, goes through the pipe.
    The segment is unlinked on :meth:`close`; if the scan process dies first, multiprocessing's
    resource tracker unlinks it.
    """

    def __init__(self, slots: int, slot_bytes: int):
        self.slot_bytes = slot_bytes
        self.memory = shared_memory.SharedMemory(create=True, size=slots * slot_bytes)
        self._free = list(range(slots))

    @classmethod
    def create(cls, slots: int, slot_bytes: int) -> _SharedBlocks | None:
        """The slots, or None where shared memory lacks room for them (every block then takes the pipe).

        On Linux the segment lives in the ``/dev/shm`` file system, which containers often keep small
        (Docker: 64 MB); a write past its free space would kill the scan with SIGBUS, so the room is
        checked first, with a margin.
        """
        size = slots * slot_bytes
        try:
            if os.path.isdir("/dev/shm"):
                room = os.statvfs("/dev/shm")
                if room.f_bavail * room.f_frsize < 2 * size:
                    return None
            return cls(slots, slot_bytes)
        except OSError:
            return None

    def put(self, block: bytes) -> int | None:
        """The slot now holding ``block``, or None (too large, or no slot free)."""
        if len(block) > self.slot_bytes or not self._free:
            return None
        slot = self._free.pop()
        start = slot * self.slot_bytes
        self.memory.buf[start : start + len(block)] = block
        return slot

    def release(self, slot: int) -> None:
        self._free.append(slot)  # list.append is atomic: called from the executor's result thread

    def close(self) -> None:
        self.memory.close()
        self.memory.unlink()


class _Pool:
    """Worker processes that parse and normalize blocks of lines (the hashing secret goes to each once)."""

    def __init__(self, n: int, hasher: Hasher, keep_text: bool, excerpts_per_account: int):
        self.n = n
        # forkserver: workers fork from a clean server process (not from this one, which may hold
        # DuckDB's threads), with distillguard imported once there instead of once per worker.
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            # the compiled kernels, ready to run (warmup), and pandas (pyarrow imports it on first use) too:
            # every worker needs them, and pages loaded before the fork are shared instead of loaded again
            ctx.set_forkserver_preload(["distillguard.ingest.pipeline", "distillguard.ingest.warmup", "pandas"])
        # The Hasher (and so the secret) goes through the worker start-up pipe only
        # (never a command line, environment variable or log).
        self.executor = ProcessPoolExecutor(
            n, mp_context=ctx, initializer=_init_worker,
            initargs=(hasher, keep_text, excerpts_per_account),
        )  # fmt: skip
        # room for every task in flight (see _ingest_blocks) plus one being handed back; None: the pipe only
        self.blocks = _SharedBlocks.create(n * TASKS_PER_WORKER + 1, 2 * CHUNK_BYTES)

    def submit(self, fmt: str, path: str, first_line_no: int, block: bytes) -> Future:
        slot = self.blocks.put(block) if self.blocks is not None else None
        if slot is None:
            return self.executor.submit(_work, fmt, path, first_line_no, block)
        blocks = self.blocks
        task = self.executor.submit(_work_shared, fmt, path, first_line_no, blocks.memory.name,
                                    slot * blocks.slot_bytes, len(block))  # fmt: skip
        task.add_done_callback(lambda _: blocks.release(slot))
        return task

    def close(self) -> None:
        try:
            self.executor.shutdown(wait=True, cancel_futures=True)
        finally:
            if self.blocks is not None:
                self.blocks.close()


def stop_worker_server() -> None:
    """Stop the fork server that ingest workers start from, if one runs; the next pool starts it again.

    It holds the modules preloaded for the workers (~270 MB RSS) for as long as this process lives:
    the scan calls this once its ingest is done, so the scoring that follows does not carry it.

    Example:
        >>> stop_worker_server()   # nothing to stop: a no-op
    """
    from multiprocessing import forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)  # CPython's own (its tests stop it so)
    if stop is not None:
        stop()


class _InProcess:
    """:class:`_Pool`'s interface, doing each block in the calling process as it is submitted."""

    n = 1

    def __init__(self, hasher: Hasher, keep_text: bool, excerpts_per_account: int, *, compiled: bool):
        self.worker = _BlockWorker(hasher, keep_text, excerpts_per_account, compiled=compiled)

    def submit(self, fmt: str, path: str, first_line_no: int, block: bytes) -> Future:
        done: Future = Future()
        done.set_result(self.worker.work(fmt, path, first_line_no, block))
        return done

    def close(self) -> None:
        pass


@dataclass
class _ChunkResult:
    events: pa.Table | None
    texts: pa.Table | None
    quarantined: list[Quarantined]
    excerpts: list[tuple[str, str, float, str]]  # redacted candidates (excerpt_candidates)
    n_events: int
    source_format: str | None
    read_s: float
    normalize_s: float


class _BlockWorker:
    """Parses and normalizes blocks of lines, in a worker process or in the calling one.

    ``compiled``: let the reader map ordinary lines in compiled code (same rows; see ``parse_block``).
    """

    def __init__(self, hasher: Hasher, keep_text: bool, excerpts_per_account: int, *, compiled: bool = True):
        self.hasher, self.keep_text, self.per_account, self.compiled = hasher, keep_text, excerpts_per_account, compiled
        self.readers: dict[str, Any] = {}
        # excerpt candidates already sent per account.  Blocks come in input order and the main process
        # keeps excerpts in input order, so once ``per_account`` were sent for an account, the main
        # process holds that many from earlier blocks and needs no more: later blocks skip the (costly)
        # redaction for it.
        self.shipped: dict[str, int] = {}

    def work(self, fmt: str, path: str, first_line_no: int, block: bytes) -> _ChunkResult:
        """Parse the lines of ``block`` (from ``iter_line_blocks``) of ``path`` as ``fmt``, normalize them."""
        t0 = time.perf_counter()
        reader = self.readers.get(fmt) or self.readers.setdefault(fmt, READERS[fmt]())
        exchanges, quarantined = reader.parse_block(Path(path), first_line_no, block, compiled=self.compiled)
        t1 = time.perf_counter()
        if exchanges is None or not exchanges.num_rows:
            return _ChunkResult(None, None, quarantined, [], 0, None, t1 - t0, 0.0)
        batch = normalize_exchanges(exchanges, self.hasher, keep_text=self.keep_text)
        excerpts = batch_excerpt_candidates(batch, self.per_account, self.shipped)
        return _ChunkResult(batch.events, batch.texts, quarantined, excerpts, exchanges.num_rows,
                            reader.name, t1 - t0, time.perf_counter() - t1)  # fmt: skip


_worker: _BlockWorker | None = None


def _init_worker(hasher: Hasher, keep_text: bool, excerpts_per_account: int) -> None:
    global _worker
    _worker = _BlockWorker(hasher, keep_text, excerpts_per_account)


_attached: dict[str, shared_memory.SharedMemory] = {}


def _work_shared(fmt: str, path: str, first_line_no: int, memory: str, start: int, length: int) -> _ChunkResult:
    """In a worker process: :func:`_work` of a block that :class:`_SharedBlocks` put in ``memory``."""
    shared = _attached.get(memory)
    if shared is None:
        if len(_attached) >= 4:  # one segment per ingest; a worker outlives none
            _attached.clear()
        shared = _attached[memory] = shared_memory.SharedMemory(memory)
    return _work(fmt, path, first_line_no, bytes(shared.buf[start : start + length]))


def _work(fmt: str, path: str, first_line_no: int, block: bytes) -> _ChunkResult:
    """In a worker process: :meth:`_BlockWorker.work`."""
    # The cyclic GC would walk every parsed record again and again (~10% of the time); a block
    # makes no reference cycles worth collecting before it is done, and the worker does nothing else.
    gc.disable()
    try:
        return _worker.work(fmt, path, first_line_no, block)
    finally:
        gc.enable()


def _ingest_blocks(
    pool: _Pool, fmt: str, path: str | Path, store: EventStore, quarantine: QuarantineWriter, keeper: ExcerptKeeper,
    file_report: FileReport, report: IngestReport, store_rows: int, on_progress: ProgressCallback | None,
) -> None:  # fmt: skip
    """One line-oriented file through the worker pool (or in process); results are taken (and stored) in input order."""
    timings = report.timings_s
    timings.setdefault("wait", 0.0)
    source = str(Path(path))
    # In input order: a Future of a _ChunkResult, or a Quarantined the main process found (a truncated stream).
    pending: deque[Future | Quarantined] = deque()
    max_pending = pool.n * TASKS_PER_WORKER
    stored = _StoreBuffer(store, file_report, timings, on_progress, store_rows)

    def take_one() -> None:
        item = pending.popleft()
        if isinstance(item, Quarantined):
            _quarantined(item, file_report, quarantine, report)
            return
        t0 = time.perf_counter()
        result: _ChunkResult = item.result()
        timings["wait"] += time.perf_counter() - t0
        timings["read"] += result.read_s
        timings["normalize"] += result.normalize_s
        for q in result.quarantined:
            _quarantined(q, file_report, quarantine, report)
        if result.n_events:
            if file_report.format is None:
                file_report.format = result.source_format
            keeper.offer_redacted(result.excerpts)
            stored.add(result.events, result.texts, result.n_events)

    def submit(first_line_no: int, block: bytes) -> None:
        while len(pending) >= max_pending:
            take_one()
        pending.append(pool.submit(fmt, source, first_line_no, block))

    try:
        with stored:
            t_lines = time.perf_counter()
            for item in iter_line_blocks(Path(path), CHUNK_BYTES):
                if type(item) is Quarantined:
                    pending.append(item)
                    continue
                timings["read"] += time.perf_counter() - t_lines
                submit(*item)
                t_lines = time.perf_counter()
            timings["read"] += time.perf_counter() - t_lines
            while pending:
                take_one()
    finally:
        for item in pending:
            if isinstance(item, Future):
                item.cancel()


def ingest_accounts(path: str | Path, store: EventStore, hasher: Hasher, quarantine_path: str | Path | None = None) -> int:
    """Load an accounts table (identifiers hashed, e-mail reduced to its domain). Returns rows stored."""
    quarantine = QuarantineWriter(quarantine_path)
    rows = []
    try:
        for item in read_accounts(path):
            if isinstance(item, Quarantined):
                quarantine.write(item)
                continue
            email = item.get("email") or ""
            rows.append(
                {
                    "account_id": str(item["account_id"]),
                    "created_at": item.get("created_at"),
                    "payment_hash": hasher.hash(item.get("payment_fingerprint")),
                    "email_hash": hasher.hash(email.lower() or None),
                    "email_domain": email.rsplit("@", 1)[-1].lower() if "@" in email else None,
                    "country": item.get("country"),
                    "verification_tier": item.get("verification_tier"),
                    "organization": item.get("organization"),
                }
            )
    finally:
        quarantine.close()
    return store.append("accounts", pa.Table.from_pylist(rows, schema=ACCOUNT_SCHEMA))


def ingest_logs(
    paths: Iterable[str | Path],
    store: EventStore,
    hasher: Hasher,
    *,
    accounts_path: str | Path | None = None,
    quarantine_path: str | Path | None = None,
    **options,
) -> IngestReport:
    """:func:`ingest_files` and, when given, :func:`ingest_accounts`: what a scan or a training run loads."""
    report = ingest_files(paths, store, hasher, quarantine_path=quarantine_path, **options)
    if accounts_path:
        report.accounts = ingest_accounts(accounts_path, store, hasher, quarantine_path)
    return report
