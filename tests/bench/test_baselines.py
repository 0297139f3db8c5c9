"""The text baselines (PRADA-style distance test, MMD window test) on small synthetic prompt sets."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from distillguard.bench.baselines import (
    MmdBaseline,
    PradaBaseline,
    clear_cache,
    collect_prompts,
    embed_texts,
    prada_distances,
    text_baselines,
)

_CHAT = [
    "can you help me write a birthday message for my {who}",
    "what should I cook for dinner tonight with {food}",
    "my {who} is visiting next week, any ideas for a day trip near {city}",
    "how do I politely tell my {who} I can't come to the party",
    "suggest a quick recipe using {food} and rice",
    "what is the weather usually like in {city} in spring",
    "give me a packing list for a weekend in {city}",
    "write a short thank-you note to my {who} for the gift",
]
_WHO = ["mom", "sister", "boss", "friend", "neighbor", "grandfather", "coworker", "aunt"]
_FOOD = ["chicken", "tofu", "lentils", "salmon", "mushrooms", "spinach", "eggs", "beans"]
_CITY = ["Lisbon", "Denver", "Kyoto", "Munich", "Toronto", "Austin", "Dublin", "Seville"]

_SWEEP = [
    "Prove that the square root of {n} is irrational.",
    "Implement a lock-free queue in Rust with atomic compare-and-swap, n={n}.",
    "Balance the redox equation for permanganate and oxalate in acidic solution ({n} mL).",
    "Explain the holding of Marbury v. Madison and its effect on judicial review, case {n}.",
    "Derive the Black-Scholes PDE for a European call with strike {n}.",
    "Translate into Classical Latin: the legion marched {n} miles before dawn.",
    "Compute the eigenvalues of the {n}x{n} tridiagonal Toeplitz matrix.",
    "Write a SQL window function ranking employees by salary within department {n}.",
    "Describe the Krebs cycle enzymes and the ATP yield per glucose molecule, step {n}.",
    "What were the causes of the Thirty Years' War? Answer in {n} bullet points.",
    "Solve the integral of x^{n} e^(-x) from 0 to infinity step by step.",
    "Summarise the proof of the Cook-Levin theorem in {n} sentences.",
]


def _chat_account(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(_CHAT).format(who=rng.choice(_WHO), food=rng.choice(_FOOD), city=rng.choice(_CITY)) for _ in range(n)]


def _sweep_account(rng: random.Random, n: int) -> list[str]:
    return [_SWEEP[i % len(_SWEEP)].format(n=rng.randrange(2, 999)) for i in range(n)]


@pytest.fixture(scope="module")
def population() -> dict[str, list[str]]:
    rng = random.Random(7)
    pop = {f"user{i:02d}": _chat_account(rng, rng.randrange(25, 80)) for i in range(30)}
    pop["short"] = _chat_account(rng, 5)
    pop["sweeper"] = _sweep_account(rng, 120)
    return pop


def test_collect_prompts_last_user_message_and_cap() -> None:
    events = [
        {"ts": float(i), "account_id": "a", "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": f"first {i}"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": f"q{i}"}]},
        ]}
        for i in range(10)
    ]
    events += [{"ts": 0.0, "api_key": "k", "messages": [{"role": "user", "content": "hi"}]},
               {"ts": 0.0, "account_id": "b", "messages": [{"role": "system", "content": "no user"}]},
               {"ts": 0.0}]
    got = collect_prompts(events, max_per_account=3)
    assert got == {"a": ["q7", "q8", "q9"], "k": ["hi"]}
    assert collect_prompts([]) == {}


def test_embeddings_unit_norm_and_deterministic() -> None:
    clear_cache()
    a = embed_texts(["hello there", "", "hello there"])
    b = embed_texts(["hello there", "", "hello there"])
    assert a.shape == (3, 256) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[0], a[2])


def test_mmd_ranks_the_sweeper_first(population: dict[str, list[str]]) -> None:
    for mode in ("mmd2", "pvalue"):
        mmd = MmdBaseline(reference_size=256, mode=mode, permutations=50)
        mmd.fit(population)
        scores = mmd.score(population)
        assert set(scores) == set(population)
        benign = [v for a, v in scores.items() if a.startswith("user")]
        assert scores["sweeper"] > max(benign), mode
        assert scores["short"] == 0.0  # under min_queries: neutral
        assert all(math.isfinite(v) for v in scores.values())


def test_mmd_excludes_the_account_from_its_reference() -> None:
    # Only one account: with itself excluded there is no reference left, so it stays neutral.
    rng = random.Random(1)
    solo = {"only": _sweep_account(rng, 40)}
    mmd = MmdBaseline(reference_size=64)
    mmd.fit(solo)
    assert mmd.score(solo) == {"only": 0.0}


def test_prada_neutral_for_short_and_bounded_otherwise(population: dict[str, list[str]]) -> None:
    prada = PradaBaseline()
    prada.fit(population)
    scores = prada.score(population)
    assert scores["short"] == 0.0
    for a, v in scores.items():
        assert math.isfinite(v) and 0.0 <= v <= 1.0, a
    assert any(v > 0 for v in scores.values())


def test_prada_distances_growing_set() -> None:
    # Four unit vectors: the first seeds the set; every later query contributes one distance.
    e = np.eye(4, dtype=np.float32)
    d = prada_distances(np.vstack([e, e[:1]]))
    np.testing.assert_allclose(d, [math.sqrt(2)] * 3 + [0.0], rtol=1e-6)
    assert prada_distances(e[:1]).size == 0


def test_deterministic(population: dict[str, list[str]]) -> None:
    runs = []
    for _ in range(2):
        clear_cache()
        out = []
        for b in text_baselines():
            b.fit(population)
            out.append(b.score(population))
        runs.append(out)
    assert runs[0] == runs[1]


def test_empty_input() -> None:
    for b in text_baselines():
        b.fit({})
        assert b.score({}) == {}
        assert b.score({"x": ["one prompt"]}) == {"x": 0.0}
    mmd = MmdBaseline()
    mmd.fit({"a": [], "b": ["just one"]})
    assert mmd.score({"a": []}) == {"a": 0.0}


def test_score_before_fit_raises() -> None:
    with pytest.raises(RuntimeError):
        MmdBaseline().score({"a": ["x"] * 20})


def test_embedding_cache_overflow_keeps_texts_seen_before(monkeypatch):
    from distillguard.bench import baselines

    baselines.clear_cache()
    monkeypatch.setattr(baselines, "CACHE_SIZE", 3)
    first = baselines.embed_texts(["alpha beta", "gamma delta"])
    both = baselines.embed_texts(["alpha beta", "epsilon zeta", "eta theta"])  # overflows: cache cleared
    np.testing.assert_allclose(both[0], first[0], atol=1e-6)
    baselines.clear_cache()
