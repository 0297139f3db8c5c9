"""Benchmark overlap index: build, hits, names, wrapping, persistence, bundled artifact."""

from __future__ import annotations

import numpy as np

from distillguard.features import benchmark_index as bi
from distillguard.features.text import BENCHMARK_MIN_HITS, measure_texts

QUESTION_A = (
    "A farmer has seventeen sheep in a field and all but nine of them run away through a gap "
    "in the old wooden fence, so how many sheep does the farmer still have in the field?"
)
QUESTION_B = (
    "Write a function that takes a list of integers and returns a new list containing only the "
    "even numbers from the original list, preserving their original order of appearance."
)


def _tiny():
    return bi.BenchmarkIndex.from_texts({"toy_math": [QUESTION_A], "toy_code": [QUESTION_B]})


def test_exact_question_hits_and_is_named():
    idx = _tiny()
    cols = measure_texts([QUESTION_A, QUESTION_B], [None, None], benchmark_index=idx)
    assert cols["benchmark_hits"][0] >= BENCHMARK_MIN_HITS
    assert cols["benchmark_name"].to_pylist() == ["toy_math", "toy_code"]


def test_wrapped_question_still_hits():
    idx = _tiny()
    wrapped = (
        "You are a helpful math tutor. Solve the problem below and think step by step.\n\nProblem: "
        + QUESTION_A.upper()
        + "\n\nPut the final answer in \\boxed{}."
    )
    cols = measure_texts([wrapped], [None], benchmark_index=idx)
    assert cols["benchmark_hits"][0] >= BENCHMARK_MIN_HITS
    assert cols["benchmark_name"].to_pylist() == ["toy_math"]


def test_unrelated_prompt_does_not_hit():
    idx = _tiny()
    prompts = ["How do I make a sourdough starter from scratch at home without yeast?", "", "sheep fence farmer"]
    cols = measure_texts(prompts, [None] * 3, benchmark_index=idx)
    assert cols["benchmark_hits"].tolist() == [0, 0, 0]
    assert cols["benchmark_name"].to_pylist() == [None, None, None]


def test_boilerplate_shared_by_many_questions_is_dropped():
    shared = "your code should satisfy the following assertion and pass all the tests"
    qs = [f"task {w} unique words alpha beta gamma delta epsilon. {shared}" for w in ("one", "two", "three", "four")]
    idx = bi.BenchmarkIndex.from_texts({"b": qs})
    cols = measure_texts([f"Please: {shared}"], [None], benchmark_index=idx)
    assert cols["benchmark_hits"][0] == 0


def test_save_load_roundtrip(tmp_path):
    idx = _tiny()
    path = tmp_path / "idx.npz"
    idx.save(path)
    back = bi.BenchmarkIndex.load(path)
    assert back.names == idx.names
    assert np.array_equal(back.hashes, idx.hashes) and np.array_equal(back.bench, idx.bench)
    q = idx.hashes[:3]
    assert back.lookup(q).tolist() == idx.lookup(q).tolist()
    assert bi.load_index(path) is bi.load_index(path)  # cached


def test_build_is_deterministic(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    _tiny().save(a)
    _tiny().save(b)
    assert a.read_bytes() == b.read_bytes()


def test_bundled_index_is_small_hash_only_and_knows_gsm8k():
    assert bi.DEFAULT_INDEX_PATH.stat().st_size < 8_000_000
    with np.load(bi.DEFAULT_INDEX_PATH, allow_pickle=False) as z:
        assert set(z.files) == {"hashes", "bench", "names", "meta"}
        assert z["hashes"].dtype == np.uint64 and np.all(np.diff(z["hashes"]) > 0)
    idx = bi.load_index()
    for name in ("gsm8k", "mmlu", "humaneval", "mbpp", "math", "arena_hard"):
        assert name in idx.names
    # the first GSM8K test question (MIT), wrapped in a template
    q = (
        "Janet\u2019s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins "
        "for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per "
        "fresh duck egg. How much in dollars does she make every day at the farmers' market?"
    )
    cols = measure_texts(["Answer the question.\n" + q], [None])
    assert cols["benchmark_name"].to_pylist() == ["gsm8k"]


def test_lookup_empty():
    idx = bi.BenchmarkIndex(np.zeros(0, np.uint64), np.zeros(0, np.uint8), [])
    assert idx.lookup(np.array([1, 2], np.uint64)).tolist() == [-1, -1]
    cols = measure_texts([QUESTION_A], [None], benchmark_index=idx)
    assert cols["benchmark_hits"][0] == 0
    assert cols["benchmark_name"].to_pylist() == [None]
