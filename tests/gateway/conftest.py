"""Gateway fixtures: a real Redis server (module-scoped, fresh database per test via key prefixes)."""

from __future__ import annotations

import itertools

import pytest

from tests.gateway.redis_server import redis_server

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """URL of a redis-server started for this test session (fails, not skips, when it is missing)."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_prefix():
    """A key prefix of its own per test, so tests sharing the server never see each other's keys."""
    return f"t{next(_prefixes)}:"


@pytest.fixture(scope="session")
def demo_traffic():
    """One simulated day (demo scenario, scale 0.1, bundled sample): normalized events in time order
    and account -> persona label.  Every attack persona and every hard negative is in it."""
    from distillguard.normalize import normalize_batch
    from distillguard.privacy import Hasher
    from distillguard.simulate import build_scenario
    from distillguard.simulate.corpora import load_corpora

    built = build_scenario("demo", seed=3, corpora=load_corpora(sample=True), scale=0.1, days=1)
    raw = list(built.events())
    events = normalize_batch(raw, Hasher(b"gateway-tests")).events
    labels = {row["account_id"]: row for row in built.labels()}
    return events, labels
