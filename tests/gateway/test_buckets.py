"""Token-bucket arithmetic: refill, burst cap, all-or-nothing takes, retry-after."""

from __future__ import annotations

import pytest

from distillguard.gateway.buckets import BucketSpec, level, take_all


def test_new_bucket_is_full_and_refills_at_rate_up_to_burst():
    spec = BucketSpec("k", rate=10.0, burst=100.0)
    states: dict = {}
    assert level(None, spec, 0.0) == 100.0
    assert take_all(states, [spec], 100, now=0.0) == (True, 0.0)
    assert level(states["k"], spec, 0.0) == 0.0
    assert level(states["k"], spec, 2.5) == pytest.approx(25.0)
    assert level(states["k"], spec, 1000.0) == 100.0  # capped at burst


def test_refused_take_debits_nothing_and_names_the_wait():
    spec = BucketSpec("k", rate=4.0, burst=10.0)
    states: dict = {}
    take_all(states, [spec], 8, now=0.0)
    allowed, wait = take_all(states, [spec], 6, now=0.0)
    assert not allowed and wait == pytest.approx(1.0)  # 2 held, 4 missing at 4/s
    assert level(states["k"], spec, 0.0) == pytest.approx(2.0)
    assert take_all(states, [spec], 6, now=1.0) == (True, 0.0)


def test_take_is_all_or_nothing_across_buckets():
    account, cluster = BucketSpec("a", 1.0, 100.0), BucketSpec("c", 1.0, 10.0)
    states: dict = {}
    assert take_all(states, [account, cluster], 10, now=0.0)[0]
    allowed, wait = take_all(states, [account, cluster], 5, now=0.0)
    assert not allowed and wait == pytest.approx(5.0)  # the cluster bucket is the one that is empty
    assert level(states["a"], account, 0.0) == pytest.approx(90.0)  # account not debited by the refused take


def test_cost_above_burst_is_capped_so_a_large_request_can_pass_when_idle():
    spec = BucketSpec("k", rate=1.0, burst=50.0)
    states: dict = {}
    assert take_all(states, [spec], 10_000, now=0.0) == (True, 0.0)
    allowed, wait = take_all(states, [spec], 10_000, now=10.0)
    assert not allowed and wait == pytest.approx(40.0)


def test_sustained_rate_converges_to_refill_rate():
    spec = BucketSpec("k", rate=5.0, burst=20.0)
    states: dict = {}
    admitted = sum(take_all(states, [spec], 1, now=t * 0.01)[0] for t in range(10_000))  # 100 s at 100 req/s
    assert admitted == pytest.approx(20 + 5 * 100, abs=2)
