"""Token-bucket arithmetic, shared by the in-process backend and (mirrored in Lua) the Redis one.

A bucket holds up to ``burst`` units and refills at ``rate`` units per second.  A take of ``cost``
units succeeds when every bucket named in it holds at least ``min(cost, burst)`` units; then all of
them are debited (all or nothing).  The cost is capped at ``burst`` so that one large request can
still pass when its account has been idle, instead of being refused forever.  A refused take
debits nothing and says how long until it would succeed.

Example:
    >>> spec = BucketSpec("acct:a", rate=10.0, burst=20.0)
    >>> states = {}
    >>> take_all(states, [spec], cost=15, now=0.0)
    (True, 0.0)
    >>> take_all(states, [spec], cost=15, now=0.0)      # 5 left, 10 missing at 10/s
    (False, 1.0)
    >>> take_all(states, [spec], cost=15, now=1.0)
    (True, 0.0)
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BucketSpec:
    """One bucket to take from: its key, refill rate (units/s) and capacity (units)."""

    key: str
    rate: float
    burst: float

    @property
    def ttl_s(self) -> float:
        """How long an untouched bucket takes to refill completely: it can be forgotten after that."""
        return self.burst / self.rate + 1.0


#: A stored bucket: (units held, time of that reading).
BucketState = tuple[float, float]


def level(state: BucketState | None, spec: BucketSpec, now: float) -> float:
    """Units the bucket holds at ``now`` (a bucket never seen is full)."""
    if state is None:
        return spec.burst
    tokens, ts = state
    return min(spec.burst, tokens + max(0.0, now - ts) * spec.rate)


def take_all(
    states: MutableMapping[str, BucketState], specs: Sequence[BucketSpec], cost: float, now: float
) -> tuple[bool, float]:
    """Take ``cost`` from every bucket in ``specs`` or from none; returns (allowed, retry_after_s)."""
    levels = []
    wait = 0.0
    for spec in specs:
        held = level(states.get(spec.key), spec, now)
        need = min(cost, spec.burst)
        if held < need:
            wait = max(wait, (need - held) / spec.rate)
        levels.append((held, need))
    if wait > 0.0:
        return False, wait
    for spec, (held, need) in zip(specs, levels, strict=True):
        states[spec.key] = (held - need, now)
    return True, 0.0
