"""Per-event text measurements: hashes, templates, MinHash LSH, script, capability, robustness."""

from __future__ import annotations

import random
import string
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pytest

from distillguard.features import text
from distillguard.features.text import TEXT_COLUMNS, measure_texts, prompt_hash, tokenize
from distillguard.schema import EVENT_SCHEMA


def _m(prompts, completions=None, **kw):
    if completions is None:
        completions = [None] * len(prompts)
    return measure_texts(prompts, completions, benchmark_index=False, **kw)


def _python(cols: dict) -> dict[str, list]:
    """measure_texts' columns (numpy or Arrow arrays) as lists of Python values."""
    return {name: col.tolist() if isinstance(col, np.ndarray) else col.to_pylist() for name, col in cols.items()}


def test_columns_and_types_fit_the_event_schema():
    cols = _m(["What is 2+2?", ""], ["4", None])
    assert list(cols) == list(TEXT_COLUMNS)
    # as normalize_exchanges stores them: each column already of its EVENT_SCHEMA type
    table = pa.table(cols, schema=pa.schema([EVENT_SCHEMA.field(name) for name in TEXT_COLUMNS]))
    for name in TEXT_COLUMNS:
        assert len(cols[name]) == 2
        if isinstance(cols[name], pa.Array):
            assert cols[name].type == EVENT_SCHEMA.field(name).type, name
        else:
            assert pa.from_numpy_dtype(cols[name].dtype) == EVENT_SCHEMA.field(name).type, name
    assert table["completion_chars"].to_pylist() == [1, 0]
    assert len(table["minhash_bands"][0]) == text.MINHASH_BANDS and table["minhash_bands"][1].as_py() == []
    assert table["benchmark_name"].to_pylist() == [None, None]
    assert _m([], [])["minhash_bands"].to_pylist() == []


def test_prompt_hash_is_stable_and_normalized():
    # regression guard: changing the normalization or seed changes every stored hash
    # = xxh64(utf-32-le("hello, world!"), seed=PROMPT_HASH_SEED) as a signed int
    assert prompt_hash("Hello, World!") == -3051292173835113500
    assert prompt_hash("  hello,\n\tWORLD!  ") == prompt_hash("Hello, World!")
    assert prompt_hash("hello, world") != prompt_hash("Hello, World!")
    assert prompt_hash("") == prompt_hash("   \n")
    assert _m(["Hello, World!"])["prompt_hash"][0] == prompt_hash("Hello, World!")


def test_token_hashes_are_stable():
    assert tokenize("Step-by-step") == tokenize("step by STEP")
    assert tokenize("hello")[0] == 622310853791533249


def test_template_hashes_same_wrapper_different_payload():
    wrap = "Please answer the following question carefully. Question {n}: {q} Respond with only a single whole number."
    a = wrap.format(n=1, q="How many apples does Tom have if he buys 3 more?")
    b = wrap.format(n=27, q="What is the area of a square with side 12?")
    c = "Translate into German, keeping the tone: " + '"The cat sat on the mat all afternoon."' + " Output only the text."
    d = "Translate into German, keeping the tone: " + '"Markets fell sharply after the announcement."' + " Output only the text."
    other = "I need help planning a birthday party for my daughter who turns seven next week in the park."
    cols = _m([a, b, c, d, other])
    pre, suf = cols["template_prefix_hash"], cols["template_suffix_hash"]
    assert pre[0] == pre[1] and suf[0] == suf[1]  # digits masked
    assert pre[2] == pre[3] and suf[2] == suf[3]  # quoted payload masked
    assert len({pre[0], pre[2], pre[4]}) == 3
    assert len({suf[0], suf[2], suf[4]}) == 3


def test_template_hashes_zero_for_short_prompts():
    cols = _m(["hi", "What is the capital of France?", ""])
    assert cols["template_prefix_hash"].tolist() == [0, 0, 0]
    assert cols["template_suffix_hash"].tolist() == [0, 0, 0]


def _words(rng, n):
    return ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 8))) for _ in range(n)]


def test_minhash_near_duplicates_collide_unrelated_do_not():
    rng = random.Random(7)
    near_a, near_b, far_a, far_b = [], [], [], []
    for _ in range(300):
        w = _words(rng, 60)
        v = list(w)
        for i in rng.sample(range(60), 3):  # 3 of 60 words changed: Jaccard of 3-shingles ~0.75-0.85
            v[i] = "zz" + v[i]
        near_a.append(" ".join(w))
        near_b.append(" ".join(v))
        far_a.append(" ".join(_words(rng, 60)))
        far_b.append(" ".join(_words(rng, 60)))
    bands = _m(near_a + near_b + far_a + far_b)["minhash_bands"].to_pylist()
    assert all(len(b) == text.MINHASH_BANDS for b in bands)
    n = 300
    near_rate = np.mean([bool(set(bands[i]) & set(bands[n + i])) for i in range(n)])
    far_rate = np.mean([bool(set(bands[2 * n + i]) & set(bands[3 * n + i])) for i in range(n)])
    assert near_rate > 0.9
    assert far_rate < 0.01


def test_minhash_identical_and_empty():
    bands = _m(["the same prompt text here", "The same  prompt text here!", ""])["minhash_bands"].to_pylist()
    assert bands[0] == bands[1]
    assert bands[2] == []


@pytest.mark.parametrize(
    ("prompt", "script"),
    [
        ("Hello there, how are you?", "latin"),
        ("请帮我写一首诗", "cjk"),
        ("これは日本語の文章です", "kana"),
        ("안녕하세요 반갑습니다", "hangul"),
        ("Привет, как дела?", "cyrillic"),
        ("مرحبا كيف حالك", "arabic"),
        ("नमस्ते आप कैसे हैं", "devanagari"),
        ("Γειά σου κόσμε", "greek"),
        ("שלום עולם", "hebrew"),
        ("สวัสดีครับ", "thai"),
        ("12345 !!!", "other"),
        ("", "other"),
    ],
)
def test_script(prompt, script):
    assert _m([prompt])["script"].to_pylist() == [script]


@pytest.mark.parametrize(
    ("prompt", "capability"),
    [
        ("Write a Python function that returns the nth Fibonacci number.", "code"),
        ("def f(x):\n    return {x: [1, 2]}; print(f(3))  # why does this fail?", "code"),
        ("Janet has 16 eggs and eats 3. How many eggs are left? Calculate the total.", "math"),
        ("Translate this sentence into French: I love reading books.", "translation"),
        ("请把这段话翻译成英文：今天天气很好。", "translation"),
        ("Write a short poem about the sea at night.", "writing"),
        ("Summarize the following article in three bullet points: ...", "extraction"),
        ("If all bloops are razzies and all razzies are lazzies, are all bloops lazzies? It's a logic puzzle.", "reasoning"),
        ("hi! how are you today?", "chat"),
    ],
)
def test_capability(prompt, capability):
    assert _m([prompt])["capability"].to_pylist() == [capability]


def test_capability_values_are_known():
    cols = _m(["", "x", "a" * 5000, "2+2=?", "ok"])
    assert set(cols["capability"].to_pylist()) <= set(text.CAPABILITIES)


def test_odd_inputs_do_not_crash():
    rng = random.Random(3)
    huge = " ".join(_words(rng, 60000))
    weird = [
        "",
        " ",
        "\x00\x00",
        "\ud83d lone surrogate",
        "emoji 😀🎉 and 𠀀 astral CJK",
        "İstanbul ǅ ß ﬁ",
        huge,
        "a" * 100000,
        "\n\n\n",
        "\u200b\u200d zero width",
    ]
    completions = [None, "", "\ud800", huge, "😀", None, "x" * 50000, "<think>a</think>", None, "\x00"]
    cols = measure_texts(weird, completions)  # bundled benchmark index too
    for name in TEXT_COLUMNS:
        assert len(cols[name]) == len(weird)
    assert cols["prompt_chars"][6] == len(huge)
    assert cols["completion_has_reasoning"][7]


def test_batching_does_not_change_results():
    rng = random.Random(11)
    prompts = [" ".join(_words(rng, rng.randint(0, 400))) for _ in range(400)] + ["Solve step by step: 2+3?"]
    completions = [" ".join(_words(rng, rng.randint(0, 300))) for _ in range(401)]
    whole = _python(measure_texts(prompts, completions, benchmark_index=False))
    parts = [_python(measure_texts(prompts[i : i + 37], completions[i : i + 37], benchmark_index=False))
             for i in range(0, 401, 37)]  # fmt: skip
    for name in TEXT_COLUMNS:
        assert whole[name] == [x for p in parts for x in p[name]], name


def test_repeated_texts_measure_as_when_first_seen(monkeypatch):
    # the cache of measured texts must give exactly what measuring afresh gives, in and across batches
    rng = random.Random(5)
    prompts = [" ".join(_words(rng, rng.randint(0, 60))) for _ in range(30)] + ["Solve step by step: 2+3?", "Rate it 1-10.", ""]
    completions = [" ".join(_words(rng, rng.randint(0, 40))) for _ in range(31)] + ["Step 1: 2+3=5. Therefore 5.", None]
    picks = [rng.randrange(len(prompts)) for _ in range(300)]
    batch_p, batch_c = [prompts[i] for i in picks], [completions[i] for i in picks]
    monkeypatch.setattr(text, "_caches", {})
    # each distinct text measured once, in one batch of distinct texts: nothing comes from the cache
    fresh_p = _python(_m(prompts, [None] * len(prompts)))
    fresh_c = _python(_m([""] * len(completions), completions))
    measured = []  # how many prompts each measurement call measured
    measure_prompts = text._measure_prompts
    monkeypatch.setattr(text, "_measure_prompts", lambda data, starts, ends, *a: measured.append(len(starts)) or
                        measure_prompts(data, starts, ends, *a))  # fmt: skip
    monkeypatch.setattr(text, "_caches", {})
    monkeypatch.setattr(text, "CACHE_GENERATION", 7)  # generations turn over inside a batch and between batches
    bounds = [0, 1, 40, 41, 150, 300]
    for _ in range(2):  # the second time round, more comes from earlier batches
        for lo, hi in pairwise(bounds):
            p, c = batch_p[lo:hi], batch_c[lo:hi]
            cols = _python(_m(p, c) if lo else _m(pa.array(p), pa.array(c)))
            for k, i in enumerate(picks[lo:hi]):
                for name in TEXT_COLUMNS:
                    want = fresh_c[name][i] if name.startswith("completion") else fresh_p[name][i]
                    assert cols[name][k] == want, (name, lo + k)
    # texts were served from earlier batches, and evicted ones measured again
    distinct_per_batch = sum(len(set(picks[lo:hi])) for lo, hi in pairwise(bounds))
    assert len(set(picks)) < sum(measured) < 2 * distinct_per_batch, (sum(measured), distinct_per_batch)


def test_nulls_measure_as_empty_texts():
    # a null slot may hold bytes (Arrow leaves them undefined): they are not read
    validity, offsets = pa.array([True, False, True]).buffers()[1], pa.array([0, 2, 5, 7], pa.int32()).buffers()[1]
    holding = pa.Array.from_buffers(pa.string(), 3, [validity, offsets, pa.py_buffer(b"hinulok")])
    empty = pa.array(["hi", None, "ok"])
    want = _python(_m(["hi", "", "ok"], ["hi", "", "ok"]))
    for texts in (holding, empty, pa.chunked_array([empty[:1], empty[1:]])):
        assert _python(_m(texts, texts)) == want


def test_length_mismatch_raises():
    with pytest.raises(ValueError):
        measure_texts(["a"], [])


def test_deterministic_across_processes():
    import subprocess
    import sys

    code = (
        "from distillguard.features.text import measure_texts;"
        "c = measure_texts(['Explain your reasoning: why is the sky blue today?'], [None], benchmark_index=False);"
        "print(int(c['prompt_hash'][0]), int(c['template_prefix_hash'][0]), c['minhash_bands'].to_pylist())"
    )
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in range(2)}
    assert len(runs) == 1
    c = _m(["Explain your reasoning: why is the sky blue today?"])
    assert runs.pop().split()[0] == str(int(c["prompt_hash"][0]))
