"""The compiled text kernels against plain-Python definitions of what they compute."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache

import numpy as np
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from distillguard.features import lexicon, text
from distillguard.features.benchmark_index import BenchmarkIndex
from distillguard.features.kernels import BASE, KIND_WORD, PK_KIND_SHIFT

M64 = (1 << 64) - 1


def _mix(x: int) -> int:
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & M64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & M64
    return x ^ (x >> 33)


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


@dataclass
class Token:
    hash: int
    first: str  # lowercased first character
    length: int
    quotes_before: int  # quote characters before it in its text


def reference_token_list(s: str) -> list[Token]:
    """Maximal runs of word characters, or one per-character-script character; hash = mix(sum lower(c_i) * BASE**i)."""
    t = text._get_tables()
    runs: list[tuple[list[int], int]] = []
    prev_word = False
    quotes = 0
    for ch in s:
        cp = ord(ch)
        kind = (int(t.packed[cp]) >> PK_KIND_SHIFT) & 3
        if kind == 0:
            quotes += ch in text._QUOTES
            prev_word = False
            continue
        if kind == KIND_WORD and prev_word:
            runs[-1][0].append(int(t.lower[cp]))
        else:
            runs.append(([int(t.lower[cp])], quotes))
        prev_word = kind == KIND_WORD
    return [
        Token(_mix(sum(c * pow(BASE, i, 1 << 64) for i, c in enumerate(chars)) & M64), chr(chars[0]), len(chars), q)
        for chars, q in runs
    ]


def reference_tokens(s: str) -> list[int]:
    return [tok.hash for tok in reference_token_list(s)]


def reference_prompt_hash(s: str) -> int:
    t = text._get_tables()
    lowered = "".join(chr(int(t.lower[ord(c)])) for c in s)
    folded = " ".join(lowered.split())
    return _signed(xxhash.xxh64_intdigest(folded.encode("utf-32-le", "surrogatepass"), text.PROMPT_HASH_SEED))


texts = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(list(" \t\n\"'«»,.-_0123456789一步ステップпривет")),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_tokenizer_matches_the_definition(s):
    assert text.tokenize(s) == reference_tokens(s)


@settings(max_examples=300, deadline=None)
@given(st.lists(texts, min_size=1, max_size=5))
def test_prompt_hash_matches_the_definition(batch):
    assert text._prompt_hashes(batch) == [reference_prompt_hash(s) for s in batch]


def test_prompt_hash_strips_and_collapses():
    folded = xxhash.xxh64_intdigest("ab c".encode("utf-32-le"), text.PROMPT_HASH_SEED)
    assert text.prompt_hash("  Ab \t\n C  ") == _signed(folded)


def reference_bands(hashes: list[int]) -> list[int]:
    """MinHash bands of one token-hash sequence, written out loop by loop."""
    h = hashes[: text.MINHASH_MAX_TOKENS]
    w = text.MINHASH_SHINGLE
    seed = (w * 0x9E3779B97F4A7C15) & M64
    shingles = []
    for i in range(len(h)):
        if i + w - 1 >= len(h) and i != 0:
            break
        acc = h[i] ^ seed
        for j in range(1, w):
            acc = (acc * BASE + (h[i + j] if i + j < len(h) else 0)) & M64
        shingles.append(_mix(acc) >> 32)
    mins = [min(((v ^ int(x)) * int(m)) & 0xFFFFFFFF for v in shingles) for x, m in zip(text._MH_XOR, text._MH_MUL, strict=True)]
    keys = []
    for band in range(text.MINHASH_BANDS):
        acc = band + 0xB4D
        for r in range(text.MINHASH_ROWS):
            acc = _mix((acc * BASE + mins[band * text.MINHASH_ROWS + r]) & M64)
        keys.append(_signed(acc))
    return keys


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="abc de", max_size=60), min_size=1, max_size=4))
def test_minhash_bands_match_the_definition(batch):
    got = text.measure_texts(batch, [None] * len(batch), benchmark_index=False)["minhash_bands"].to_pylist()
    for k, s in enumerate(batch):
        hashes = reference_tokens(s)
        assert got[k] == (reference_bands(hashes) if hashes else [])


def test_minhash_reads_only_the_first_tokens():
    words = [f"w{i}" for i in range(300)]
    prompts = [" ".join(words), " ".join(words[:128]), " ".join(words[:128] + ["other"] * 50), " ".join(words[150:278])]
    bands = text.measure_texts(prompts, [None] * 4, benchmark_index=False)["minhash_bands"].to_pylist()
    assert bands[0] == bands[1] == bands[2] != bands[3]


def test_text_keys_are_siphash_1_3_128():
    # the measurement cache's collision argument is SipHash's: these are the reference implementation's
    # SipHash-1-3 128-bit outputs for key 00..0f and messages 00..(n-1), the texts at unaligned offsets
    from distillguard.features import kernels

    want = {
        0: "e77ebcb22788a5befd62db6add303001",
        1: "fc6f370460d3eda85e0573cc2b2ff063",
        7: "1084b923f2aae0c3a62f2ec80848ab77",
        8: "aa12fee1d5e3dab4724f16ab35f9c799",
        15: "c17e5505b2bd526c2921cdec1e7e0109",
        63: "4c5800e34efe426f079f6b0aa75260ad",
    }
    messages = [bytes(range(n)) for n in want]
    buf = np.frombuffer(b"".join(messages), np.uint8)
    offsets = np.cumsum([0] + [len(m) for m in messages])
    key = tuple(np.frombuffer(bytes(range(16)), "<u8"))
    got = kernels.text_keys(buf, offsets, key)
    assert [row.astype("<u8").tobytes().hex() for row in got] == list(want.values())


def test_text_and_kernels_share_one_table_layout():
    from distillguard.features import kernels

    assert (text._PK_LOWER_MASK, text._PK_KIND_SHIFT, text._PK_QUOTE_SHIFT, text._PK_CODE_SHIFT, text._PK_MATH_SHIFT) == (
        kernels.PK_LOWER_MASK, kernels.PK_KIND_SHIFT, kernels.PK_QUOTE_SHIFT, kernels.PK_CODE_SHIFT, kernels.PK_MATH_SHIFT,
    )  # fmt: skip
    assert (text._PK_DIGIT_SHIFT, text._PK_SCRIPT_SHIFT, text._PK_SPACE_SHIFT) == (
        kernels.PK_DIGIT_SHIFT, kernels.PK_SCRIPT_SHIFT, kernels.PK_SPACE_SHIFT,
    )  # fmt: skip
    assert (text._KIND_WORD, text._KEY_MUL) == (kernels.KIND_WORD, kernels.KEY_MUL)


def test_packed_table_lowercases_what_the_fold_lowercases():
    # the fold reads its lowercase from the packed table: a character outside tokens has none
    t = text._get_tables()
    kind = (t.packed >> np.uint32(text._PK_KIND_SHIFT)) & np.uint32(3)
    from_packed = np.where(kind > 0, t.packed & np.uint32(text._PK_LOWER_MASK), np.arange(len(t.lower), dtype=np.uint32))
    assert np.array_equal(from_packed, t.lower)


# --------------------------------------------------------------------------- whole measurements


@cache
def _phrases() -> tuple[dict[tuple[int, ...], set[str]], int]:
    """Cue phrase (token hashes) -> its classes, and the longest phrase."""
    phrases: dict[tuple[int, ...], set[str]] = {}
    for cls, langs in lexicon.CUES.items():
        for items in langs.values():
            for p in lexicon.expand_all(items):
                if key := tuple(reference_tokens(p)):
                    phrases.setdefault(key, set()).add(cls)
    return phrases, max(map(len, phrases))


def reference_cues(hashes: list[int]) -> list[tuple[int, int, str]]:
    """(start, length, class) of every cue-phrase occurrence."""
    phrases, longest = _phrases()
    return [
        (i, n, cls)
        for i in range(len(hashes))
        for n in range(1, min(longest, len(hashes) - i) + 1)
        for cls in phrases.get(tuple(hashes[i : i + n]), ())
    ]  # fmt: skip


def reference_rule(clauses, cues: list[tuple[int, int, str]]) -> bool:
    def has(cls):
        return any(c == cls for _, _, c in cues)

    def near(a, b, w):  # an occurrence of a starts within w tokens of one of b: not itself, for a == b not at the same token
        return any(abs(i - j) <= w and (i != j or a != b) for i, _, ca in cues if ca == a for j, _, cb in cues if cb == b)

    def holds(term):
        if isinstance(term, str):
            return has(term.lstrip("!")) != term.startswith("!")
        op, a, b, w = term
        return near(a, b, w) != op.startswith("!")

    return any(all(holds(term) for term in clause) for clause in clauses)


def _view(s: str, head: int, tail: int) -> str:
    return s if len(s) <= head + tail else s[:head] + "\n" + s[-tail:]


def _is_number(tok: Token) -> bool:
    return unicodedata.category(tok.first) == "Nd"


def _script(tok: Token) -> int:
    if _is_number(tok):
        return 0
    for name, ranges in text._SCRIPT_RANGES.items():
        if any(a <= ord(tok.first) <= b for a, b in ranges):
            return text.SCRIPTS.index(name)
    return 0


def reference_template_keys(toks: list[Token], quotes: int) -> tuple[int, int]:
    values, prev_quoted = [], False
    for tok in toks:
        quoted = tok.quotes_before % 2 == 1 and tok.quotes_before < quotes  # inside a closed "..." span
        if not (quoted and prev_quoted):
            values.append(int(text._QUOTE_MARK) if quoted else int(text._NUM_MARK) if _is_number(tok) else tok.hash)
        prev_quoted = quoted
    if len(values) < text.TEMPLATE_MIN_WORDS:
        return 0, 0
    keys = []
    for part, salt in ((values[: text.TEMPLATE_WORDS], 0x5052), (values[-text.TEMPLATE_WORDS :], 0x5355)):
        acc = salt
        for v in part:
            acc = _mix((acc * BASE + v) & M64)
        keys.append(_signed(acc) or 1)
    return keys[0], keys[1]


def reference_benchmark(hashes: list[int], index) -> tuple[int, str | None]:
    if index is None:
        return 0, None
    w, seed = text.BENCHMARK_SHINGLE, (text.BENCHMARK_SHINGLE * 0x9E3779B97F4A7C15) & M64
    sampled = []
    for i in range(len(hashes) - w + 1):
        acc = hashes[i] ^ seed
        for j in range(1, w):
            acc = (acc * BASE + hashes[i + j]) & M64
        if (acc >> 32) & text.BENCHMARK_SAMPLE_MASK == 0:
            sampled.append(_mix(acc))
    found = [b for b in index.lookup(np.array(sampled, np.uint64)).tolist() if b >= 0]
    if len(found) < text.BENCHMARK_MIN_HITS:
        return len(found), None
    per = [found.count(b) for b in range(len(index.names))]
    return len(found), index.names[per.index(max(per))]


def reference_prompt(s: str, index) -> dict:
    """Every prompt column of measure_texts, written out for one prompt."""
    view = _view(s, text.VIEW_HEAD, text.VIEW_TAIL)
    toks = reference_token_list(view)
    hashes = [tok.hash for tok in toks]
    cues = reference_cues(hashes)
    scripts = [0] * len(text.SCRIPTS)
    for tok in toks:
        scripts[_script(tok)] += tok.length
    scripts[0] = 0
    best = scripts.index(max(scripts))
    cjk, kana = text.SCRIPTS.index("cjk"), text.SCRIPTS.index("kana")
    if best in (cjk, kana):
        best = kana if scripts[kana] >= 0.15 * (scripts[cjk] + scripts[kana]) else cjk
    score = [
        lexicon.CAPABILITY_WEIGHTS.get(cap, 1.0) * sum(c == f"cap.{cap}" for _, _, c in cues) if f"cap.{cap}" in lexicon.CUES else 0.0
        for cap in text.CAPABILITIES
    ]
    code_chars = sum(ch in text._CODE_CHARS for ch in view)
    math_chars = sum(ch in text._MATH_CHARS for ch in view)
    score[text.CAPABILITIES.index("code")] += min(code_chars / 6.0, 4.0)
    score[text.CAPABILITIES.index("math")] += min(math_chars / 2.0 + sum(map(_is_number, toks)) / 4.0, 4.0)
    top = max(score)
    capability = text.CAPABILITIES[score.index(top)] if top >= 1.0 else "chat" if len(toks) <= 60 else "other"
    prefix, suffix = reference_template_keys(toks, sum(ch in text._QUOTES for ch in view))
    hits, name = reference_benchmark(hashes, index)
    tagged = "<think" in view or "<reasoning" in view
    return {
        "prompt_chars": len(s),
        "prompt_hash": reference_prompt_hash(s),
        "template_prefix_hash": prefix,
        "template_suffix_hash": suffix,
        "minhash_bands": reference_bands(hashes) if hashes else [],
        "script": text.SCRIPTS[best if max(scripts) > 0 else 0],
        "capability": capability if toks else "other",
        "reasoning_elicit": reference_rule(lexicon.RULES["reasoning_elicit"], cues) or tagged,
        "rubric_grading": reference_rule(lexicon.RULES["rubric_grading"], cues),
        "benchmark_hits": hits,
        "benchmark_name": name,
    }


def reference_completion_has_reasoning(s: str) -> bool:
    view = _view(s, text.COMPLETION_HEAD, text.COMPLETION_TAIL)
    toks = reference_token_list(view)
    cues = reference_cues([tok.hash for tok in toks])
    step, conn, ordinal, strong = (sum(c == f"trace.{k}" for _, _, c in cues) for k in ("step", "connective", "ordinal", "strong"))
    eq = sum(ch in text._MATH_CHARS for ch in view)
    code_chars = sum(ch in text._CODE_CHARS for ch in view)
    numbers = sum(map(_is_number, toks))
    return (
        any(tag in view for tag in ("<think", "<reasoning", "<thought"))
        or (strong >= 1 and conn + step + eq >= 1)
        or (step >= 2 and (conn >= 1 or eq >= 1))
        or (conn >= 2 and eq >= 2)
        or (ordinal >= 2 and conn >= 1)
        or (conn >= 1 and eq >= 4)
        or (step >= 1 and conn >= 1 and eq >= 1)
        or (eq >= 3 and numbers >= 6 and code_chars <= 2 * eq + 4)
    )


QUESTIONS = {
    "toy_math": ["A farmer has seventeen sheep in a field and all but nine of them run away, so how many are left?"],
    "toy_code": ["Write a function that takes a list of integers and returns only the even numbers in their order."],
}
_CUE_PHRASES = sorted({p for langs in lexicon.CUES.values() for items in langs.values() for p in lexicon.expand_all(items)})
pieces = st.one_of(
    st.sampled_from(_CUE_PHRASES),
    st.sampled_from([q for qs in QUESTIONS.values() for q in qs]),
    st.sampled_from(["<think>", "<reasoning>", "<thought>", '"', "«", "»", "「", "」", "{", "}", "=", "+", "×", "π", "x = 3 + 4"]),
    st.sampled_from(["2024", "3.14", "１２", "٣", "Step 1:", "Therefore,", "Rate it 1 to 10", "Response A", "Response B"]),
    st.sampled_from(["一步一步", "ステップ", "단계별로", "สวัสดี", "привет", "مرحبا", "नमस्ते", "Γειά", "שלום", "İ", "ǅ", "ß", "ﬁ"]),
    st.sampled_from(["😀", "🎉", "𠀀", "𝟙", "\ud83d", "\udc00", "\u200b", "\x00", "\t", "\n\n", "  "]),
    st.text(alphabet="一步思考ステップです단계별로สวัสดีпривет مرحبا", min_size=1, max_size=20),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
)
varied_texts = st.builds(
    lambda parts, seps: "".join(p + s for p, s in zip(parts, seps)),
    st.lists(pieces, max_size=40),
    st.lists(st.sampled_from([" ", "", ", ", ".\n", " - "]), min_size=40, max_size=40),
)
# long texts: only their two ends are read, and they are joined at one separator
long_texts = st.builds(lambda a, n, b: a + " filler words here" * n + b, varied_texts, st.integers(150, 400), varied_texts)
any_texts = st.one_of(varied_texts, long_texts)


def _python(cols: dict) -> dict[str, list]:
    """measure_texts' columns (numpy or Arrow arrays) as lists of Python values."""
    return {name: col.tolist() if isinstance(col, np.ndarray) else col.to_pylist() for name, col in cols.items()}


@cache
def _index() -> BenchmarkIndex:
    return BenchmarkIndex.from_texts(QUESTIONS)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(any_texts, any_texts), min_size=1, max_size=4), st.booleans())
def test_measurements_match_the_definition(pairs, with_index):
    prompts, completions = [p for p, _ in pairs], [c for _, c in pairs]
    index = _index() if with_index else None
    cols = _python(text.measure_texts(prompts, completions, benchmark_index=index if with_index else False))
    for k, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        want = reference_prompt(p, index)
        for name, value in want.items():
            assert cols[name][k] == value, (name, p)
        assert cols["completion_has_reasoning"][k] == reference_completion_has_reasoning(c), c
        assert cols["completion_chars"][k] == len(c)


def test_measurements_match_the_definition_on_edge_cases():
    q = QUESTIONS["toy_math"][0]
    prompts = [
        "", " ", "\x00", "\ud83d lone surrogate", "😀" * 4000, "𠀀一" * 2000, "a" * 100000, "ab " * 1200,
        "x" * 1499 + "<think" + "y" * 3000, "y" * 3000 + "<reasoning" + "x" * 1490, "«" + "a b " * 800 + "»",
        '"' + "a b " * 800 + '"', q + " " + "z " * 5000 + q, "think step " * 1499 + "by step",
    ]  # fmt: skip
    completions = [
        "", "<thought>", "a" * 399 + "<think>" + "b" * 500, "a" * 394 + "<think>" + "b" * 500, "1 + 2 = 3; " * 100,
        "Step 1: 2+2=4. Therefore 4.", "😀" * 1000, "\udc00" * 600, *[""] * 6,
    ]  # fmt: skip
    cols = _python(text.measure_texts(prompts, completions, benchmark_index=_index()))
    for k, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        for name, value in reference_prompt(p, _index()).items():
            assert cols[name][k] == value, (name, k)
        assert cols["completion_has_reasoning"][k] == reference_completion_has_reasoning(c), k
        assert cols["completion_chars"][k] == len(c)
