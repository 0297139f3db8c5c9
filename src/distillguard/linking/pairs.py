"""Account pairs of shared keys, summed per pair in one compiled pass (numba, cached on disk).

The edge tables start from the members of each shared key (``graph._members_sql``).  Every pair of
members of a key is a *key pair*; an edge is the sum of a pair's key pairs of one kind.  On the
1M-event benchmark log that is ~64M key pairs (58M of them MinHash bands) for ~0.7M edges: as a SQL
join streamed into a hash aggregate it took ~8.7 s on two cores.  Here the same sums run row by row
(Gustavson's sparse product): for each account ``a``, walk its keys, and for each other member
``b > a`` of a key add that key's terms to per-``b`` accumulators that fit in cache; then emit the
touched ``b`` and reset them.  Same pairs, same terms, same fixed-point rounding as the SQL in
``docs/linking.md`` ("Key pairs", the definition and the Spark plan), so the edges are the same values.

Which pairs a key makes (``graph.LinkConfig.group_cap`` / ``hubs``): all pairs of its members when it
has at most ``cap`` of them; otherwise only pairs with a *hub* (a member ranked ``r <= hubs`` by the
hash of its account id), each unordered pair once.

Terms of a key pair (``damp`` and ``mult`` are the key's, shares the two members'):

* ``overlap`` = ``min(share_a, share_b)`` for content kinds (template halves, bands), else 1;
* strength sum += ``round(overlap * damp * mult * 2**32)``; raw-overlap sum += ``round(overlap *
  mult * 2**32)`` (content kinds); ``n_keys`` += ``mult``; ``example_key`` = the smallest key;
  ``group_n`` = the largest group.

Example:
    >>> import numpy as np
    >>> keys = KindMembers.from_sorted(
    ...     key=np.array([7, 7, 7]), aid=np.array([0, 1, 2], np.int32), share=np.array([0.5, 0.25, 1.0]),
    ...     hub=np.array([True, True, True]), damp=np.array([1.0, 1.0, 1.0]), mult=np.array([1, 1, 1]),
    ...     n=np.array([3, 3, 3]), big=np.array([False, False, False]))
    >>> p = key_pair_sums(keys, n_accounts=3, content=True, min_strength=0.0)
    >>> list(zip(p.a.tolist(), p.b.tolist(), (p.strength_sum / 2**32).tolist()))
    [(0, 1, 0.25), (0, 2, 0.5), (1, 2, 0.25)]
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba import njit

from distillguard.store.sql import FIXED_POINT

#: Kinds with fewer members are summed in one range on the calling thread (threads would cost more).
MIN_SPLIT_MEMBERS = 100_000
#: Steps of the fixed-point sums: SQL's ``fixed_sum`` (a float global, which numba compiles in).
_FIXED = float(FIXED_POINT)


@dataclass
class KindMembers:
    """The members of one kind's shared keys, grouped by key and ordered by account number in each key.

    Per member (index ``m``): ``aid``, ``share``, ``hub``, ``member_key`` (its key's index); per key
    (index ``k``, members ``key_start[k]:key_start[k + 1]``): ``key``, ``damp``, ``mult``, ``n``,
    ``big`` (more members than the cap: hub pairs only); ``hubs`` lists the hub members of big keys
    (``hub_start`` per key).
    """

    key_start: np.ndarray
    key: np.ndarray
    damp: np.ndarray
    mult: np.ndarray
    n: np.ndarray
    big: np.ndarray
    aid: np.ndarray
    share: np.ndarray
    hub: np.ndarray
    hub_start: np.ndarray
    hubs: np.ndarray
    member_key: np.ndarray

    @classmethod
    def from_sorted(cls, *, key: np.ndarray, aid: np.ndarray, share: np.ndarray, hub: np.ndarray, damp: np.ndarray,
                    mult: np.ndarray, n: np.ndarray, big: np.ndarray) -> KindMembers:  # fmt: skip
        """From per-member columns sorted by (key, aid); ``damp``, ``mult``, ``n``, ``big`` repeat per member."""
        first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.empty(0, np.int64)
        key_start = np.append(first, len(key)).astype(np.int64)
        member_key = np.repeat(np.arange(len(first), dtype=np.int64), np.diff(key_start))
        hubs = np.flatnonzero(hub & big)  # in (key, aid) order
        hub_start = np.searchsorted(member_key[hubs], np.arange(len(first) + 1)).astype(np.int64)
        return cls(
            key_start, key[first].astype(np.int64), damp[first].astype(np.float64), mult[first].astype(np.int64),
            n[first].astype(np.int64), big[first].astype(np.bool_), aid.astype(np.int32), share.astype(np.float64),
            hub.astype(np.bool_), hub_start, hubs.astype(np.int64), member_key,
        )  # fmt: skip


@dataclass
class PairSums:
    """One row per account pair ``a < b`` sharing keys of one kind: fixed-point sums (``/ 2**32``) and counts."""

    a: np.ndarray
    b: np.ndarray
    strength_sum: np.ndarray  # Σ round(overlap · damp · mult · 2**32)
    overlap_sum: np.ndarray  # Σ round(overlap · mult · 2**32); content kinds only (0 otherwise)
    n_keys: np.ndarray
    example_key: np.ndarray
    group_n: np.ndarray


def key_pair_sums(
    members: KindMembers, *, n_accounts: int, content: bool, min_strength: float, threads: int | None = None
) -> PairSums:
    """The per-pair sums of one kind's key pairs; pairs with ``strength_sum / 2**32 < min_strength`` are left out.

    Rows (accounts) are split into ranges of about equal work, summed on ``threads`` threads (the
    kernel releases the GIL) and concatenated in row order, so the result does not depend on them.
    """
    m = members
    # the members of each account in account order (the rows of the product)
    by_account = np.argsort(m.aid, kind="stable").astype(np.int64)
    account_start = np.searchsorted(m.aid[by_account], np.arange(n_accounts + 1)).astype(np.int64)
    # a member's work is the later members of its key (an upper bound for big keys): split on its running sum
    later = m.key_start[m.member_key + 1] - np.arange(len(m.aid)) - 1
    work = np.cumsum(np.bincount(m.aid, weights=later, minlength=n_accounts))
    n_threads = max(1, threads or min(4, os.cpu_count() or 1))
    n_ranges = 1 if len(m.aid) < MIN_SPLIT_MEMBERS else 4 * n_threads
    cuts = np.linspace(0, work[-1] if len(work) else 0, n_ranges + 1)[1:-1]
    bounds = np.unique(np.r_[0, np.searchsorted(work, cuts), n_accounts])
    args = (m.key_start, m.key, m.damp, m.mult, m.n, m.big, m.member_key, m.aid, m.share, m.hub, m.hub_start, m.hubs,
            by_account, account_start, content, float(min_strength) * _FIXED)  # fmt: skip
    ranges = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
    if n_threads == 1 or len(ranges) == 1:
        parts = [_pair_sums(*args, lo, hi) for lo, hi in ranges]
    else:
        with ThreadPoolExecutor(n_threads) as pool:
            parts = list(pool.map(lambda r: _pair_sums(*args, r[0], r[1]), ranges))
    if not parts:
        return PairSums(*(np.empty(0, t) for t in (np.int32, np.int32) + (np.int64,) * 5))
    return PairSums(*(np.concatenate(cols) for cols in zip(*parts, strict=True)))


@njit(cache=True, nogil=True, inline="always")
def _round_half_away(x):  # SQL's round() on a double: halves away from zero (numba's round is half-even)
    r = np.floor(x)
    if x - r >= 0.5:
        r += 1.0
    return np.int64(r)


@njit(cache=True, nogil=True)
def _pair_sums(key_start, key, damp, mult, n, big, member_key, aid, share, hub, hub_start, hubs,
               by_account, account_start, content, min_fixed, row_lo, row_hi):  # fmt: skip
    n_accounts = len(account_start) - 1
    # per b: strength sum, overlap sum, n_keys, group_n side by side (one cache line per b); example key apart
    acc = np.zeros((n_accounts, 4), np.int64)
    example = np.zeros(n_accounts, np.int64)
    touched = np.empty(n_accounts, np.int32)
    cap = 1024
    out = np.empty((cap, 6), np.int64)  # a, b, then the four sums
    out_example = np.empty(cap, np.int64)
    size = 0
    for a in range(row_lo, row_hi):
        n_touched = 0
        for t in range(account_start[a], account_start[a + 1]):
            i = by_account[t]
            k = member_key[i]
            share_a, weight, m, group = share[i], damp[k] * mult[k], mult[k], n[k]
            if big[k] and not hub[i]:  # a member of a big group pairs with its hubs only
                lo, hi, via_hubs = hub_start[k], hub_start[k + 1], True
            else:  # every later member (in a big group: a hub pairs with every member)
                lo, hi, via_hubs = i + 1, key_start[k + 1], False
            for q in range(lo, hi):
                j = hubs[q] if via_hubs else q
                b = aid[j]
                if b <= a:  # only a hub can come before the row's account
                    continue
                overlap = min(share_a, share[j]) if content else 1.0
                if acc[b, 2] == 0:  # the row walks its keys in key order: the first is the smallest
                    touched[n_touched] = b
                    n_touched += 1
                    example[b] = key[k]
                acc[b, 0] += _round_half_away(overlap * weight * _FIXED)
                if content:
                    acc[b, 1] += _round_half_away(overlap * m * _FIXED)
                acc[b, 2] += m
                acc[b, 3] = max(acc[b, 3], group)
        for t in range(n_touched):
            b = touched[t]
            if acc[b, 0] >= min_fixed:
                if size == cap:
                    cap *= 2
                    grown, grown_example = np.empty((cap, 6), np.int64), np.empty(cap, np.int64)
                    grown[:size] = out
                    grown_example[:size] = out_example
                    out, out_example = grown, grown_example
                out[size, 0], out[size, 1] = a, b
                out[size, 2:] = acc[b]
                out_example[size] = example[b]
                size += 1
            acc[b] = 0
    out = out[:size]
    return (out[:, 0].astype(np.int32), out[:, 1].astype(np.int32), out[:, 2].copy(), out[:, 3].copy(),
            out[:, 4].copy(), out_example[:size].copy(), out[:, 5].copy())  # fmt: skip
