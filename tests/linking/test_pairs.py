"""The compiled key-pair sums against a plain-Python reading of their definition (docs/linking.md, "Key pairs")."""

from __future__ import annotations

import itertools
import math
import random
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest

from distillguard.linking import pairs
from distillguard.linking.pairs import KindMembers, key_pair_sums

FIXED = 2**32


def _round(x: float) -> int:
    """SQL round(): halves away from zero, exactly (via Decimal, not the kernel's floor trick)."""
    return int(Decimal(x).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def random_members(seed: int, *, n_accounts: int = 40, n_keys: int = 60, cap: int = 6, hubs: int = 2, content: bool):
    """Members of random keys (some bigger than ``cap``) as sorted columns, and the same as plain dicts."""
    rng = random.Random(seed)
    keys = []
    for _ in range(n_keys):
        size = rng.choice([2, 2, 3, 4, 5, 6, 7, 9, 15])
        aids = sorted(rng.sample(range(n_accounts), size))
        rank = {a: r + 1 for r, a in enumerate(sorted(aids, key=lambda a: (a * 7919) % 101))}
        damp = 1.0 / (1.0 + (0.25 if content else 1.0) * math.log(size / 2.0))
        keys.append({
            "key": rng.randrange(-(2**62), 2**62), "mult": rng.choice([1, 1, 2, 3]), "n": size, "damp": damp,
            "members": [(a, rng.choice([0.125, 0.25, 1 / 3, 0.5, 0.05, 1.0]) if content else 1.0, rank[a] <= hubs) for a in aids],
        })  # fmt: skip
    keys.sort(key=lambda k: k["key"])
    cols = {c: [] for c in ("key", "aid", "share", "hub", "damp", "mult", "n", "big")}
    for k in keys:
        for aid, share, hub in k["members"]:
            for c, v in (("key", k["key"]), ("aid", aid), ("share", share), ("hub", hub), ("damp", k["damp"]),
                         ("mult", k["mult"]), ("n", k["n"]), ("big", k["n"] > cap)):  # fmt: skip
                cols[c].append(v)
    arrays = {c: np.array(v, dtype={"aid": np.int32, "hub": bool, "big": bool}.get(c)) for c, v in cols.items()}
    return KindMembers.from_sorted(**arrays), keys, cap


def reference(keys, cap: int, *, content: bool, min_strength: float) -> dict[tuple[int, int], tuple]:
    """(a, b) → (strength sum, overlap sum, n_keys, example_key, group_n), pair by pair and key by key."""
    sums: dict[tuple[int, int], list] = {}
    for k in keys:
        members = k["members"]
        for (a, sa, ha), (b, sb, hb) in itertools.combinations(members, 2):
            if k["n"] > cap and not (ha or hb):  # a big group pairs through its hubs only
                continue
            overlap = min(sa, sb) if content else 1.0
            row = sums.setdefault((min(a, b), max(a, b)), [0, 0, 0, None, 0])
            row[0] += _round(overlap * (k["damp"] * k["mult"]) * FIXED)
            row[1] += _round(overlap * k["mult"] * FIXED) if content else 0
            row[2] += k["mult"]
            row[3] = k["key"] if row[3] is None else min(row[3], k["key"])
            row[4] = max(row[4], k["n"])
    return {p: tuple(v) for p, v in sums.items() if v[0] >= min_strength * FIXED}


def as_dict(p) -> dict[tuple[int, int], tuple]:
    cols = zip(p.a.tolist(), p.b.tolist(), p.strength_sum.tolist(), p.overlap_sum.tolist(), p.n_keys.tolist(),
               p.example_key.tolist(), p.group_n.tolist(), strict=True)  # fmt: skip
    return {(a, b): (s, o, n, x, g) for a, b, s, o, n, x, g in cols}


@pytest.mark.parametrize("content", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sums_match_the_definition_pair_by_pair(seed, content):
    members, keys, cap = random_members(seed, content=content)
    got = key_pair_sums(members, n_accounts=40, content=content, min_strength=0.0, threads=1)
    assert as_dict(got) == reference(keys, cap, content=content, min_strength=0.0)
    assert (got.a < got.b).all()
    assert len(set(zip(got.a.tolist(), got.b.tolist()))) == len(got.a)  # one row per pair


def test_big_groups_pair_every_member_with_each_hub_once_and_no_two_others():
    members, keys, cap = random_members(3, content=False, n_keys=30)
    big = [k for k in keys if k["n"] > cap]
    assert big, "the factory makes groups over the cap"
    got = as_dict(key_pair_sums(members, n_accounts=40, content=False, min_strength=0.0, threads=1))
    for k in big:
        hubs = {a for a, _, h in k["members"] if h}
        others = [a for a, _, h in k["members"] if not h]
        for x, y in itertools.combinations(others, 2):  # two non-hubs of a big key only pair through other keys
            if not any({x, y} <= {a for a, _, _ in j["members"]} for j in keys if j is not k):
                assert (min(x, y), max(x, y)) not in got
        for x in others:
            for h in hubs:
                assert (min(x, h), max(x, h)) in got


def test_min_strength_leaves_out_weak_pairs_only():
    members, keys, cap = random_members(4, content=True)
    everything = as_dict(key_pair_sums(members, n_accounts=40, content=True, min_strength=0.0, threads=1))
    strong = as_dict(key_pair_sums(members, n_accounts=40, content=True, min_strength=0.3, threads=1))
    assert 0 < len(strong) < len(everything)
    assert strong == {p: v for p, v in everything.items() if v[0] >= 0.3 * FIXED}


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_split_the_rows_without_changing_the_result(threads, monkeypatch):
    monkeypatch.setattr(pairs, "MIN_SPLIT_MEMBERS", 0)
    members, _, _ = random_members(5, content=True, n_accounts=300, n_keys=3000)
    one = key_pair_sums(members, n_accounts=300, content=True, min_strength=0.0, threads=1)
    many = key_pair_sums(members, n_accounts=300, content=True, min_strength=0.0, threads=threads)
    for name in ("a", "b", "strength_sum", "overlap_sum", "n_keys", "example_key", "group_n"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name))


def test_no_members_no_pairs():
    empty = KindMembers.from_sorted(**{c: np.empty(0, t) for c, t in (
        ("key", np.int64), ("aid", np.int32), ("share", float), ("hub", bool), ("damp", float), ("mult", np.int64),
        ("n", np.int64), ("big", bool))})  # fmt: skip
    got = key_pair_sums(empty, n_accounts=5, content=True, min_strength=0.0)
    assert len(got.a) == 0 and got.a.dtype == np.int32
