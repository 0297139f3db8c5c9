"""Shared enforcement state behind two small interfaces, one backend per module.

* :class:`TokenBuckets` - atomic multi-bucket takes (``memory.py``: dict + monotonic clock;
  ``redis.py``: one ``EVALSHA`` of a Lua script, server clock, so replicas share buckets).
* :class:`RiskTable` - JSON records by (table, key): account risk from online scoring
  (:data:`ONLINE`) and from a loaded batch scan (:data:`SCAN`), cluster risk (:data:`CLUSTER`),
  manual overrides (:data:`OVERRIDE`).

:class:`State` bundles the two; :func:`distillguard.gateway.state.open_state` picks the backend.

Example:
    >>> from distillguard.gateway.state.memory import MemoryState
    >>> state = MemoryState()
    >>> state.risk.put(ONLINE, "acct-1", {"score": 0.9, "flagged": True})
    >>> state.risk.get(ONLINE, "acct-1")["score"]
    0.9
    >>> state.risk.account_view("acct-1").online["flagged"]
    True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from distillguard.gateway.buckets import BucketSpec

#: Record tables.  Keys are account ids, except CLUSTER (cluster ids).
ONLINE = "online"  # account risk computed by the gateway's online scorer
SCAN = "scan"  # account risk loaded from a batch scan's accounts.jsonl
CLUSTER = "cluster"  # cluster risk (clusters.jsonl, or online linking)
OVERRIDE = "override"  # analyst allow/block overrides
TABLES = (ONLINE, SCAN, CLUSTER, OVERRIDE)

Record = dict[str, Any]


class AccountView(NamedTuple):
    """Everything the enforcer needs about one account, fetched together (one round trip in Redis)."""

    override: Record | None
    online: Record | None
    scan: Record | None
    cluster: Record | None  # the record of the cluster named by scan (else online) ``cluster_id``


def cluster_of(online: Record | None, scan: Record | None) -> str | None:
    """The account's cluster: the batch scan's assignment first, else online linking's."""
    for rec in (scan, online):
        if rec and isinstance(rec.get("cluster_id"), str):
            return rec["cluster_id"]
    return None


class TokenBuckets(ABC):
    """Token buckets keyed by string; a take is atomic over all the buckets it names."""

    @abstractmethod
    def take_many(self, specs: Sequence[BucketSpec], cost: float, now: float | None = None) -> tuple[bool, float]:
        """Take ``cost`` from every bucket or none; (allowed, retry_after_s).  ``now``: the backend's clock when None."""

    async def atake_many(self, specs: Sequence[BucketSpec], cost: float, now: float | None = None) -> tuple[bool, float]:
        """:meth:`take_many` for the event loop (the Redis backend does not block it)."""
        return self.take_many(specs, cost, now)

    def take(self, key: str, cost: float, rate: float, burst: float, now: float | None = None) -> tuple[bool, float]:
        """One bucket: ``take("a:acct-1", 100, rate=50, burst=1000) -> (allowed, retry_after_s)``."""
        return self.take_many([BucketSpec(key, rate, burst)], cost, now)

    @abstractmethod
    def level(self, spec: BucketSpec, now: float | None = None) -> float:
        """Units ``spec``'s bucket holds now (full when never used)."""

    @abstractmethod
    def reset(self, key: str) -> None:
        """Forget a bucket (it is full again)."""


class RiskTable(ABC):
    """JSON records by (table, key), with optional expiry."""

    @abstractmethod
    def get(self, table: str, key: str) -> Record | None: ...

    @abstractmethod
    def put_many(self, table: str, records: Mapping[str, Record], ttl_s: float | None = None) -> None:
        """Write records (replacing), each expiring after ``ttl_s`` seconds when given."""

    @abstractmethod
    def delete(self, table: str, key: str) -> bool:
        """Remove a record; False when there was none."""

    @abstractmethod
    def keys(self, table: str, limit: int = 1000) -> list[str]:
        """Up to ``limit`` keys of ``table`` (admin listings; not for the hot path)."""

    def put(self, table: str, key: str, record: Record, ttl_s: float | None = None) -> None:
        self.put_many(table, {key: record}, ttl_s)

    def account_view(self, account_id: str) -> AccountView:
        """Override, online and scan records of an account, and its cluster's record."""
        override, online, scan = (self.get(t, account_id) for t in (OVERRIDE, ONLINE, SCAN))
        cid = cluster_of(online, scan)
        return AccountView(override, online, scan, self.get(CLUSTER, cid) if cid else None)

    async def aaccount_view(self, account_id: str) -> AccountView:
        """:meth:`account_view` for the event loop."""
        return self.account_view(account_id)


class State:
    """The buckets and records one enforcer uses; ``shared`` when other replicas see them too."""

    shared: bool = False

    def __init__(self, buckets: TokenBuckets, risk: RiskTable):
        self.buckets, self.risk = buckets, risk

    def close(self) -> None:
        """Release connections (no-op in process)."""
