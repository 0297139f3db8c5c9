"""In-process state: dicts and the monotonic clock.  The default; nothing is shared between processes.

Example:
    >>> state = MemoryState()
    >>> state.buckets.take("a:acct-1", 5, rate=1.0, burst=10.0, now=0.0)
    (True, 0.0)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from distillguard.gateway.buckets import BucketSpec, BucketState, level, take_all
from distillguard.gateway.state.base import Record, RiskTable, State, TokenBuckets

#: Forgotten buckets are swept once the table grows past this many entries.
_SWEEP_AT = 100_000


class MemoryBuckets(TokenBuckets):
    def __init__(self) -> None:
        self._states: dict[str, BucketState] = {}
        self._ttl: dict[str, float] = {}
        self._lock = threading.Lock()  # admin reads come from other threads

    def take_many(self, specs: Sequence[BucketSpec], cost: float, now: float | None = None) -> tuple[bool, float]:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._states) > _SWEEP_AT:
                self._sweep(now)
            allowed, wait = take_all(self._states, specs, cost, now)
            if allowed:
                for spec in specs:
                    self._ttl[spec.key] = spec.ttl_s
            return allowed, wait

    def _sweep(self, now: float) -> None:
        # a bucket untouched for longer than its refill time is full again: dropping it changes nothing
        stale = [k for k, (_, ts) in self._states.items() if now - ts > self._ttl.get(k, 0.0)]
        for k in stale:
            self._states.pop(k, None)
            self._ttl.pop(k, None)

    def level(self, spec: BucketSpec, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            return level(self._states.get(spec.key), spec, now)

    def reset(self, key: str) -> None:
        with self._lock:
            self._states.pop(key, None)


class MemoryRiskTable(RiskTable):
    def __init__(self) -> None:
        self._tables: dict[str, dict[str, tuple[Record, float]]] = {}

    def get(self, table: str, key: str) -> Record | None:
        hit = self._tables.get(table, {}).get(key)
        if hit is None:
            return None
        record, expires = hit
        if expires < time.monotonic():
            self._tables[table].pop(key, None)
            return None
        return record

    def put_many(self, table: str, records: Mapping[str, Record], ttl_s: float | None = None) -> None:
        expires = time.monotonic() + ttl_s if ttl_s else float("inf")
        # replace the table's dict entries in one update: readers on the event loop see old or new, never half
        self._tables.setdefault(table, {}).update({k: (dict(v), expires) for k, v in records.items()})

    def delete(self, table: str, key: str) -> bool:
        return self._tables.get(table, {}).pop(key, None) is not None

    def keys(self, table: str, limit: int = 1000) -> list[str]:
        return list(self._tables.get(table, {}))[:limit]


class MemoryState(State):
    """Buckets and records in this process."""

    def __init__(self) -> None:
        super().__init__(MemoryBuckets(), MemoryRiskTable())
