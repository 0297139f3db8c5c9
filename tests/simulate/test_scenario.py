"""Scenario API: determinism, files, the bundled-sample path."""

import gzip
import json

import orjson
import pytest

from distillguard.simulate import SCENARIOS, build_scenario, generate_events, run_scenario
from distillguard.simulate.scenario import ATTACK_PERSONAS


def _files(res):
    return {p.name: p.read_bytes() for p in res.out_dir.iterdir()}


def test_same_seed_same_bytes_different_seed_differs(tmp_path, sample_corpora):
    a = run_scenario("demo", tmp_path / "a", seed=5, corpora=None, scale=0.08, days=1)
    b = run_scenario("demo", tmp_path / "b", seed=5, scale=0.08, days=1)
    c = run_scenario("demo", tmp_path / "c", seed=6, scale=0.08, days=1)
    assert _files(a) == _files(b)
    assert _files(a)["traffic.litellm.jsonl.gz"] != _files(c)["traffic.litellm.jsonl.gz"]
    assert a.events > 500 and a.accounts > 50 and set(a.attack_accounts) == {p.name for p in ATTACK_PERSONAS}
    labels = [json.loads(x) for x in (tmp_path / "a" / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == a.accounts
    with gzip.open(a.traffic) as fh:
        first = orjson.loads(fh.readline())
    assert first["id"] and first["startTime"]


def test_bundled_sample_path(monkeypatch, tmp_path):
    import distillguard.simulate.corpora as corpora

    monkeypatch.setattr(corpora, "DEFAULT_CORPORA", tmp_path / "no-such-dir")
    res = run_scenario("hydra", tmp_path / "out", seed=0, scale=0.05, days=1, fmt="openai")
    assert res.corpora == "bundled-sample" and res.events > 100 and res.traffic.name == "traffic.openai.jsonl.gz"


def test_training_uses_its_own_stream(sample_corpora):
    d = next(generate_events("demo", seed=0, corpora=sample_corpora, scale=0.05, days=1))
    t = next(generate_events("training", seed=0, corpora=sample_corpora, scale=0.05, days=1))
    assert d["event_id"] != t["event_id"]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_builds(name, sample_corpora):
    b = build_scenario(name, seed=0, corpora=sample_corpora, scale=0.05, days=1)
    attack_free = name == "hard_negatives"  # genuine customers only, by design
    assert b.accounts() and any(not r["is_attack"] for r in b.labels())
    assert any(r["is_attack"] for r in b.labels()) is not attack_free
    it = b.events()
    assert next(it)["ts"] >= b.ctx.start_ts
