"""Redis state against a real redis-server: the Lua bucket matches the Python arithmetic, records
round-trip with TTLs, and two clients (two replicas) share buckets and records."""

from __future__ import annotations

import asyncio
import random

import pytest

from distillguard.errors import ConfigError
from distillguard.gateway.buckets import BucketSpec, take_all
from distillguard.gateway.state import CLUSTER, ONLINE, OVERRIDE, SCAN, open_state
from distillguard.gateway.state.redis import RedisState


@pytest.fixture
def pair(redis_url, redis_prefix):
    a, b = RedisState(redis_url, prefix=redis_prefix), RedisState(redis_url, prefix=redis_prefix)
    yield a, b
    a.close()
    b.close()


def test_lua_bucket_matches_python_arithmetic(pair):
    redis_state, _ = pair
    rng = random.Random(7)
    specs = [BucketSpec("acct", 3.0, 40.0), BucketSpec("clus", 10.0, 25.0)]
    states: dict = {}
    t = 1000.0
    for _ in range(300):
        t += rng.choice((0.0, 0.1, 0.5, 2.0))
        cost = rng.choice((1, 5, 20, 100))
        chosen = specs if rng.random() < 0.5 else specs[:1]
        want = take_all(states, chosen, cost, t)
        got = redis_state.buckets.take_many(chosen, cost, now=t)
        assert got[0] == want[0]
        assert got[1] == pytest.approx(want[1], rel=1e-9, abs=1e-9)


def test_two_clients_share_one_bucket_on_the_server_clock(pair):
    a, b = pair
    spec = BucketSpec("account:r:acct-1", rate=0.001, burst=100.0)
    assert a.buckets.take_many([spec], 100) == (True, 0.0)
    allowed, wait = asyncio.run(b.buckets.atake_many([spec], 10))
    assert not allowed and wait > 1000
    assert b.buckets.level(spec) < 1.0
    b.buckets.reset(spec.key)
    assert a.buckets.level(spec) == 100.0


def test_records_roundtrip_expire_and_build_views(pair, redis_url, redis_prefix):
    a, b = pair
    a.risk.put(SCAN, "acct-1", {"score": 0.9, "cluster_id": "c3", "evidence": ["Reasoning-trace coercion"]})
    a.risk.put(CLUSTER, "c3", {"score": 0.97, "flagged": True})
    a.risk.put(OVERRIDE, "acct-1", {"action": "block"})
    a.risk.put_many(ONLINE, {f"x{i}": {"score": i / 10} for i in range(5)}, ttl_s=60)
    assert b.risk.get(SCAN, "acct-1")["evidence"] == ["Reasoning-trace coercion"]
    view = asyncio.run(b.risk.aaccount_view("acct-1"))
    assert view.cluster == {"score": 0.97, "flagged": True} and view.override == {"action": "block"} and view.online is None
    assert b.risk.account_view("acct-1") == view
    assert sorted(b.risk.keys(ONLINE)) == [f"x{i}" for i in range(5)]
    assert a.risk.delete(OVERRIDE, "acct-1") and b.risk.get(OVERRIDE, "acct-1") is None
    a.risk.put(ONLINE, "short", {"score": 1.0}, ttl_s=0.001)
    asyncio.run(asyncio.sleep(0.02))
    assert b.risk.get(ONLINE, "short") is None
    other = RedisState(redis_url, prefix=redis_prefix + "other:")
    assert other.risk.get(SCAN, "acct-1") is None  # prefixes separate deployments
    other.close()


def test_async_client_follows_the_running_loop(pair):
    a, _ = pair
    spec = BucketSpec("loop", rate=1.0, burst=5.0)
    assert asyncio.run(a.buckets.atake_many([spec], 1))[0]
    assert asyncio.run(a.buckets.atake_many([spec], 1))[0]  # a second loop gets its own client


def test_unreachable_redis_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot reach Redis"):
        open_state("redis://127.0.0.1:1/0")
