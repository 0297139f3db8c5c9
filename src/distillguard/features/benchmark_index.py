"""Public-benchmark overlap index: hashes of benchmark questions' word 8-grams, never their text.

A campaign that sweeps a public benchmark or instruction set sends its questions
verbatim, usually wrapped in an instruction template.  The index keeps, per
question, hashes of its word 8-gram shingles (the same tokenizer and shingle hash
as :func:`distillguard.features.text.word_shingle_hashes`), so a question found
anywhere inside a prompt hits however it is wrapped.

What is stored (``src/distillguard/data/benchmark_index.npz``):

* ``hashes``: sorted uint64 shingle hashes; ``bench``: parallel uint8 benchmark
  ids; ``names``: benchmark names; ``meta``: JSON (format version, parameters,
  sources and counts).
* Sampling, to stay small (< 8 MB) and fast: only a content-defined half of
  the shingles (bit 32 of the unmixed shingle hash is 0; the lookup samples the
  same way, so a question still hits on about half its shingles), at most :data:`PER_QUESTION_CAP` of them per
  question (the smallest hashes: a content-defined choice, the same for every
  copy of the question), and no shingle that occurs in more than
  :data:`MAX_QUESTIONS_PER_SHINGLE` distinct questions (boilerplate such as
  "your code should satisfy the following assertion" would hit benign prompts).
* Questions shorter than 8 words have no shingles and are not indexed.

Sources (permissive licenses only; see ``/work/shared/corpora/README.md``):
gsm8k (MIT); MATH 500 sample, AIME 2024/2025 (MIT); MMLU incl. the MMLU-STEM copy
(MIT); HumanEval (MIT); MBPP (CC BY 4.0) and MBPP+ (Apache-2.0); Arena-Hard
v0.1 / v2.0, MT-Bench, Vicuna eval, Self-Instruct seeds and user-oriented set
(Apache-2.0); from the Qwen2.5-Math eval sets only SVAMP (MIT), AQuA-RAT
(Apache-2.0) and the CC BY rows of college_math.  Not included: NC or
share-alike sets (ARC, AlpacaEval, Code Alpaca, WizardLM, minerva_math,
CC BY-NC-SA college_math rows), sets of unclear license (amc23, olympiadbench,
gaokao, sat_math, asdiv) and conversation corpora.

Rebuild (deterministic: the same corpora give the same bytes)::

    python -m distillguard.features.benchmark_index build \\
        --corpora /work/shared/corpora --out src/distillguard/data/benchmark_index.npz

Example:
    >>> idx = BenchmarkIndex.from_texts({"toy": ["the quick brown fox jumps over the lazy dog again and again"]})
    >>> from distillguard.features.text import measure_texts
    >>> cols = measure_texts(["Answer this: the quick brown fox jumps over the lazy dog again and again. Thanks"],
    ...                      [None], benchmark_index=idx)
    >>> int(cols["benchmark_hits"][0]) > 0, cols["benchmark_name"][0].as_py()
    (True, 'toy')
"""

from __future__ import annotations

import argparse
import csv
import functools
import gzip
import json
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from distillguard.corpusio import read_jsonl as _jsonl
from distillguard.features import text as _text

__all__ = ["BenchmarkIndex", "load_index", "build_from_corpora", "DEFAULT_INDEX_PATH", "main"]

FORMAT_VERSION = 1
PER_QUESTION_CAP = 32
MAX_QUESTIONS_PER_SHINGLE = 2
DEFAULT_INDEX_PATH = Path(__file__).resolve().parent.parent / "data" / "benchmark_index.npz"
BLOOM_BITS = 24  # prefilter: one bit per 2**40 hash values, 2 MB


class BenchmarkIndex:
    """Sorted shingle hashes with the benchmark each belongs to, and a fast membership test."""

    def __init__(self, hashes: np.ndarray, bench: np.ndarray, names: Sequence[str], meta: dict | None = None):
        order = np.argsort(hashes, kind="stable")
        self.hashes = np.ascontiguousarray(hashes[order], dtype=np.uint64)
        self.bench = np.ascontiguousarray(bench[order], dtype=np.uint8)
        self.names = list(names)
        self.meta = dict(meta or {})
        self.bloom = np.zeros(1 << (BLOOM_BITS - 3), np.uint8)  # bit per value of the top BLOOM_BITS bits
        top = (self.hashes >> np.uint64(64 - BLOOM_BITS)).astype(np.int64)
        np.bitwise_or.at(self.bloom, top >> 3, (1 << (top & 7)).astype(np.uint8))

    def __len__(self) -> int:
        return len(self.hashes)

    def lookup(self, shingles: np.ndarray) -> np.ndarray:
        """Benchmark id (index into ``names``) per shingle hash, -1 where absent.

        Example:
            >>> idx = BenchmarkIndex(np.array([5, 9], np.uint64), np.array([0, 1], np.uint8), ["a", "b"])
            >>> idx.lookup(np.array([9, 4], np.uint64)).tolist()
            [1, -1]
        """
        out = np.full(len(shingles), -1, np.int64)
        if not len(self.hashes) or not len(shingles):
            return out
        top = (shingles >> np.uint64(64 - BLOOM_BITS)).astype(np.int64)
        maybe = np.flatnonzero((self.bloom[top >> 3] >> (top & 7).astype(np.uint8)) & 1)
        if not len(maybe):
            return out
        q = shingles[maybe]
        i = np.minimum(np.searchsorted(self.hashes, q), len(self.hashes) - 1)
        hit = self.hashes[i] == q
        out[maybe[hit]] = self.bench[i[hit]]
        return out

    @classmethod
    def from_texts(
        cls,
        questions: Mapping[str, Iterable[str]],
        per_question_cap: int = PER_QUESTION_CAP,
        max_questions_per_shingle: int = MAX_QUESTIONS_PER_SHINGLE,
    ) -> BenchmarkIndex:
        """Build an index from benchmark name -> question texts (earlier names win shared shingles).

        Example:
            >>> idx = BenchmarkIndex.from_texts({"a": ["one two three four five six seven eight nine ten"]})
            >>> idx.names, len(idx) > 0
            (['a'], True)
        """
        names = list(questions)
        texts: list[str] = []
        owner: list[int] = []
        seen: set[str] = set()
        for b, name in enumerate(names):
            for q in questions[name]:
                key = " ".join(str(q).lower().split())
                if key and key not in seen:  # the same question listed twice is one question
                    seen.add(key)
                    texts.append(str(q))
                    owner.append(b)
        hashes_parts, q_parts = [], []
        for start in range(0, len(texts), 2048):
            h, r = _text.word_shingle_hashes(
                texts[start : start + 2048], _text.BENCHMARK_SHINGLE, sample_mask=_text.BENCHMARK_SAMPLE_MASK
            )
            hashes_parts.append(h)
            q_parts.append(r + start)
        h = np.concatenate(hashes_parts) if hashes_parts else np.zeros(0, np.uint64)
        q = np.concatenate(q_parts) if q_parts else np.zeros(0, np.int64)
        # one entry per (question, shingle)
        order = np.lexsort((h, q))
        h, q = h[order], q[order]
        first = np.concatenate([[True], (h[1:] != h[:-1]) | (q[1:] != q[:-1])]) if len(h) else np.zeros(0, bool)
        h, q = h[first], q[first]
        # drop boilerplate: shingles in too many distinct questions
        uniq, inverse, df = np.unique(h, return_inverse=True, return_counts=True)
        common = df[inverse] > max_questions_per_shingle
        h, q = h[~common], q[~common]
        # per question, the smallest hashes (already sorted by hash within a question)
        if len(q):
            starts = np.concatenate([[0], np.flatnonzero(q[1:] != q[:-1]) + 1])
            rank = np.arange(len(q)) - np.repeat(starts, np.diff(np.concatenate([starts, [len(q)]])))
            capped = rank < per_question_cap
            h, q = h[capped], q[capped]
        bench = np.asarray(owner, np.int64)[q] if len(q) else np.zeros(0, np.int64)
        # one entry per hash: the earliest benchmark wins
        order = np.lexsort((bench, h))
        h, bench = h[order], bench[order]
        first = np.concatenate([[True], h[1:] != h[:-1]]) if len(h) else np.zeros(0, bool)
        h, bench = h[first], bench[first]
        counts = {name: int((bench == i).sum()) for i, name in enumerate(names)}
        meta = {
            "format_version": FORMAT_VERSION,
            "shingle_words": _text.BENCHMARK_SHINGLE,
            "sample_mask": _text.BENCHMARK_SAMPLE_MASK,
            "per_question_cap": per_question_cap,
            "max_questions_per_shingle": max_questions_per_shingle,
            "questions": {name: sum(1 for o in owner if o == i) for i, name in enumerate(names)},
            "shingles": counts,
        }
        return cls(h, bench.astype(np.uint8), names, meta)

    def save(self, path: str | Path) -> None:
        """Write ``hashes``, ``bench``, ``names`` and ``meta`` to a compressed .npz."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            np.savez_compressed(
                f,
                hashes=self.hashes,
                bench=self.bench,
                names=np.array(self.names, dtype=str),
                meta=np.array(json.dumps(self.meta, sort_keys=True)),
            )

    @classmethod
    def load(cls, path: str | Path) -> BenchmarkIndex:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format_version") != FORMAT_VERSION or meta.get("shingle_words") != _text.BENCHMARK_SHINGLE:
                raise ValueError(f"{path}: benchmark index format {meta.get('format_version')} does not match; rebuild it")
            return cls(z["hashes"], z["bench"], [str(n) for n in z["names"]], meta)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str) -> BenchmarkIndex:
    return BenchmarkIndex.load(path)


def load_index(path: str | Path | None = None) -> BenchmarkIndex:
    """The bundled index (default) or the one at ``path``; loaded once per path and cached.

    A missing bundled file gives an empty index and a warning, so measurement
    still runs (without benchmark hits).

    Example:
        >>> isinstance(load_index(), BenchmarkIndex)
        True
    """
    if path is None:
        if not DEFAULT_INDEX_PATH.exists():
            warnings.warn(f"bundled benchmark index missing at {DEFAULT_INDEX_PATH}; benchmark_hits will be 0", stacklevel=2)
            return empty_index()
        path = DEFAULT_INDEX_PATH
    return _load_cached(str(Path(path).resolve()))


@functools.lru_cache(maxsize=1)
def empty_index() -> BenchmarkIndex:
    """The index without shingles (no benchmark overlap is measured)."""
    return BenchmarkIndex(np.zeros(0, np.uint64), np.zeros(0, np.uint8), [])


# --------------------------------------------------------------------------- corpora readers


def _mc(question: str, choices: Sequence[str]) -> str:
    # "A. x B. y": the tokenizer drops punctuation, so "(A) x", "A) x" and "A: x" all shingle alike
    return question + " " + " ".join(f"{chr(65 + i)}. {c}" for i, c in enumerate(choices))


def _benchmark_questions(corpora: Path) -> dict[str, list[str]]:
    c = corpora
    out: dict[str, list[str]] = {}
    out["gsm8k"] = [
        r["question"]
        for f in ("grade_school_math__data__train.jsonl", "grade_school_math__data__test.jsonl")
        for r in _jsonl(c / "gsm8k" / f)
    ]
    out["math"] = [r["problem"] for r in _jsonl(c / "math_500_sample" / "data__math__test.jsonl")]
    out["aime"] = [
        r["problem"] for f in ("data__aime24__test.jsonl", "data__aime25__test.jsonl") for r in _jsonl(c / "math_500_sample" / f)
    ]
    mmlu: list[str] = []
    for split in ("dev", "test"):
        for f in sorted((c / "mmlu" / "data" / "mmlu" / split).glob("*.csv")):
            with open(f, newline="", encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    mmlu.append(_mc(row["question"], [row[f"choice{i}"] for i in range(4)]))
    for r in _jsonl(c / "qwen25math_evalsets" / "evaluation__data__mmlu_stem__test.jsonl"):
        mmlu.append(_mc(r["question"], r.get("choices") or []))
    out["mmlu"] = mmlu
    he = [r["prompt"] for r in _jsonl(c / "humaneval" / "HumanEval.jsonl.gz")]
    he += [r["prompt"] for r in _jsonl(c / "mbpp_variants" / "data__humaneval__test.jsonl")]
    out["humaneval"] = he
    mbpp = [r["text"] + "\n" + "\n".join(r.get("test_list") or []) for r in _jsonl(c / "mbpp" / "mbpp_original_974_derived.jsonl")]
    mbpp += [r["prompt"] for r in _jsonl(c / "mbpp_variants" / "data__mbpp__test_refined_data.jsonl")]
    with open(c / "mbpp_variants" / "WizardCoder__data__mbppplus.json", encoding="utf-8") as f:
        mbpp += [v for _, v in sorted(json.load(f).items())]
    out["mbpp"] = mbpp
    out["arena_hard"] = [
        r["prompt"]
        for f in ("data__arena-hard-v0.1__question.jsonl", "data__arena-hard-v2.0__question.jsonl")
        for r in _jsonl(c / "arena_hard" / f)
    ]
    out["mt_bench"] = [t for r in _jsonl(c / "mtbench_vicuna_advbench" / "evaluation__open_ended__data__mtbench__question.jsonl") for t in r["turns"]]
    out["vicuna"] = [t for r in _jsonl(c / "mtbench_vicuna_advbench" / "evaluation__open_ended__data__vicuna__question.jsonl") for t in r["turns"]]
    si: list[str] = []
    for f in ("data__seed_tasks.jsonl", "human_eval__user_oriented_instructions.jsonl"):
        for r in _jsonl(c / "self_instruct" / f):
            si.append(r["instruction"])
            for inst in r.get("instances") or []:
                if inst.get("input"):
                    si.append(r["instruction"] + "\n" + inst["input"])
    out["self_instruct"] = si
    q = c / "qwen25math_evalsets"
    out["svamp"] = [r["Body"] + " " + r["Question"] for r in _jsonl(q / "evaluation__data__svamp__test.jsonl")]
    out["aqua"] = [_mc(r["question"], r.get("options") or []) for r in _jsonl(q / "evaluation__data__aqua__test.jsonl")]
    out["college_math"] = [
        r["question"]
        for r in _jsonl(q / "evaluation__data__college_math__test.jsonl")
        if "(CC BY" in r.get("license", "") and "NC" not in r.get("license", "")
    ]
    return out


def build_from_corpora(corpora: str | Path) -> BenchmarkIndex:
    """Build the index from the shared corpora folder (see the module docstring for what is included)."""
    return BenchmarkIndex.from_texts(_benchmark_questions(Path(corpora)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distillguard.features.benchmark_index")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the index from the corpora folder")
    b.add_argument("--corpora", required=True, type=Path)
    b.add_argument("--out", type=Path, default=DEFAULT_INDEX_PATH)
    s = sub.add_parser("info", help="print an index's metadata")
    s.add_argument("path", nargs="?", type=Path, default=DEFAULT_INDEX_PATH)
    args = parser.parse_args(argv)
    if args.cmd == "build":
        idx = build_from_corpora(args.corpora)
        idx.save(args.out)
        size = args.out.stat().st_size
        print(f"wrote {args.out}: {len(idx)} shingles, {size / 1e6:.2f} MB")
        print(json.dumps(idx.meta, indent=1, sort_keys=True))
    else:
        idx = BenchmarkIndex.load(args.path)
        print(json.dumps(idx.meta, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
