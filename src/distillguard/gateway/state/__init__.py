"""Enforcement state: in process by default, in Redis when ``redis_url`` is set (shared by replicas).

Example:
    >>> open_state(None).shared
    False
"""

from __future__ import annotations

from distillguard.gateway.state.base import CLUSTER, ONLINE, OVERRIDE, SCAN, AccountView, RiskTable, State, TokenBuckets
from distillguard.gateway.state.memory import MemoryState

__all__ = ["CLUSTER", "ONLINE", "OVERRIDE", "SCAN", "AccountView", "RiskTable", "State", "TokenBuckets", "MemoryState", "open_state"]


def open_state(redis_url: str | None = None, *, prefix: str = "dg:") -> State:
    """:class:`MemoryState` without a URL, else a :class:`~distillguard.gateway.state.redis.RedisState`."""
    if not redis_url:
        return MemoryState()
    from distillguard.gateway.state.redis import RedisState  # redis-py is only loaded when used

    return RedisState(redis_url, prefix=prefix)
