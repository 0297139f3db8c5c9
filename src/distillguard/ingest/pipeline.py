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

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow as pa

from distillguard.errors import Quarantined
from distillguard.ingest import read_accounts, read_file
from distillguard.normalize import ExcerptKeeper, normalize_batch
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
    #: seconds spent per step: "read" (parsing), "normalize" (hashing + text measures), "store"
    timings_s: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "normalize": 0.0, "store": 0.0})

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
    excerpts_per_account: int = 5,
    on_progress: ProgressCallback | None = None,
) -> IngestReport:
    """Read every file into ``store``.  Bad lines go to ``quarantine_path``; nothing raises for one."""
    report = IngestReport(quarantine_path=str(quarantine_path) if quarantine_path else None)
    quarantine = QuarantineWriter(quarantine_path)
    keeper = ExcerptKeeper(excerpts_per_account)
    started = time.perf_counter()
    try:
        for path in paths:
            file_report = FileReport(path=str(path), format=fmt)
            report.files.append(file_report)
            buffer: list[RawEvent] = []
            for item in read_file(path, fmt=fmt, mapping=mapping):
                if isinstance(item, Quarantined):
                    file_report.quarantined += 1
                    quarantine.write(item)
                    if len(report.quarantine_examples) < 10:
                        report.quarantine_examples.append(item.explain())
                    continue
                if file_report.format is None:
                    file_report.format = item.get("source_format")
                buffer.append(item)
                if len(buffer) >= batch_size:
                    _flush(buffer, store, hasher, keep_text, keeper, file_report, report.timings_s, on_progress)
                    buffer = []
            _flush(buffer, store, hasher, keep_text, keeper, file_report, report.timings_s, on_progress)
        store.append("samples", pa.Table.from_pylist(keeper.drain(), schema=SAMPLE_SCHEMA))
    finally:
        quarantine.close()
    t = report.timings_s
    t["read"] = time.perf_counter() - started - t["normalize"] - t["store"]
    return report


def _flush(buffer, store, hasher, keep_text, keeper, file_report, timings, on_progress) -> None:
    if not buffer:
        return
    t0 = time.perf_counter()
    batch = normalize_batch(buffer, hasher, keep_text=keep_text)
    keeper.offer(batch.excerpts)
    t1 = time.perf_counter()
    file_report.events += len(buffer)
    file_report.inserted += store.append("events", batch.events)
    if batch.texts is not None:
        store.append("texts", batch.texts)
    timings["normalize"] += t1 - t0
    timings["store"] += time.perf_counter() - t1
    if on_progress:
        on_progress(len(buffer))


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
