"""In-process state: records with expiry, account views, buckets on the monotonic clock."""

from __future__ import annotations

import asyncio
import time

from distillguard.gateway.buckets import BucketSpec
from distillguard.gateway.state import CLUSTER, ONLINE, OVERRIDE, SCAN, MemoryState, open_state


def test_open_state_without_url_is_in_process():
    state = open_state(None)
    assert isinstance(state, MemoryState) and not state.shared


def test_records_put_get_delete_and_expire():
    risk = MemoryState().risk
    risk.put(ONLINE, "a", {"score": 0.5})
    assert risk.get(ONLINE, "a") == {"score": 0.5}
    assert risk.get(SCAN, "a") is None
    risk.put_many(SCAN, {"a": {"score": 0.9}, "b": {"score": 0.1}}, ttl_s=0.05)
    assert sorted(risk.keys(SCAN)) == ["a", "b"]
    time.sleep(0.08)
    assert risk.get(SCAN, "a") is None
    assert risk.delete(ONLINE, "a") and not risk.delete(ONLINE, "a")


def test_account_view_follows_the_scan_cluster_first():
    risk = MemoryState().risk
    risk.put(ONLINE, "a", {"score": 0.2, "cluster_id": "online-c1"})
    risk.put(SCAN, "a", {"score": 0.8, "cluster_id": "c7"})
    risk.put(CLUSTER, "c7", {"score": 0.95, "flagged": True})
    risk.put(OVERRIDE, "a", {"action": "allow"})
    view = asyncio.run(risk.aaccount_view("a"))
    assert view.cluster == {"score": 0.95, "flagged": True}
    assert view.override == {"action": "allow"} and view.online["score"] == 0.2


def test_memory_buckets_use_monotonic_clock_by_default():
    buckets = MemoryState().buckets
    spec = BucketSpec("a", rate=1000.0, burst=10.0)
    assert buckets.take_many([spec], 10)[0]
    assert buckets.level(spec) < 10.0
    time.sleep(0.02)
    assert buckets.level(spec) == 10.0
    buckets.reset("a")
    assert buckets.take("a", 10, rate=1.0, burst=10.0) == (True, 0.0)
    assert not buckets.take("a", 10, rate=1.0, burst=10.0)[0]
