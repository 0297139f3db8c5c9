"""The compiled text kernels against plain-Python definitions of what they compute."""

from __future__ import annotations

import numpy as np
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from distillguard.features import text
from distillguard.features.kernels import BASE, KIND_WORD, PK_KIND_SHIFT, fold_codepoints, minhash_band_keys

M64 = (1 << 64) - 1


def _mix(x: int) -> int:
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & M64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & M64
    return x ^ (x >> 33)


def reference_tokens(s: str) -> list[int]:
    """Maximal runs of word characters, or one per-character-script character; hash = mix(sum lower(c_i) * BASE**i)."""
    t = text._get_tables()
    tokens: list[list[int]] = []
    prev_word = False
    for ch in s:
        cp = ord(ch)
        kind = (int(t.packed[cp]) >> PK_KIND_SHIFT) & 3
        if kind == 0:
            prev_word = False
            continue
        if kind == KIND_WORD and prev_word:
            tokens[-1].append(int(t.lower[cp]))
        else:
            tokens.append([int(t.lower[cp])])
        prev_word = kind == KIND_WORD
    return [_mix(sum(c * pow(BASE, i, 1 << 64) for i, c in enumerate(tok)) & M64) for tok in tokens]


def reference_prompt_hash(s: str) -> int:
    t = text._get_tables()
    lowered = "".join(chr(int(t.lower[ord(c)])) for c in s)
    folded = " ".join(lowered.split())
    h = xxhash.xxh64_intdigest(folded.encode("utf-32-le", "surrogatepass"), text.PROMPT_HASH_SEED)
    return h - (1 << 64) if h >= 1 << 63 else h


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


def test_fold_strips_and_collapses():
    t = text._get_tables()
    s = "  Ab \t\n C  "
    cp = np.frombuffer(s.encode("utf-32-le"), np.uint32)
    folded, a, b = fold_codepoints(cp, t.space, t.lower, np.array([0]), np.array([len(s)]))
    assert "".join(map(chr, folded[a[0] : b[0]].tolist())) == "ab c"


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
        keys.append(acc - (1 << 64) if acc >= 1 << 63 else acc)
    return keys


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="abc de", max_size=60), min_size=1, max_size=4))
def test_minhash_bands_match_the_definition(batch):
    tok = text._tokenize(batch)
    got = text._minhash_bands(tok, len(batch))
    for k, s in enumerate(batch):
        hashes = tok.hashes[tok.lo[k] : tok.hi[k]].tolist()
        assert got[k] == (reference_bands(hashes) if hashes else [])


def test_minhash_kernel_reads_only_the_first_tokens():
    h = np.arange(1, 300, dtype=np.uint64)
    args = (text.MINHASH_SHINGLE, np.uint64(1), text._MH_XOR_64, text._MH_MUL_64, text.MINHASH_ROWS)
    full, _ = minhash_band_keys(h, np.array([0]), np.array([len(h)]), 128, *args)
    cut, _ = minhash_band_keys(h[:128], np.array([0]), np.array([128]), 128, *args)
    other, _ = minhash_band_keys(h[150:278], np.array([0]), np.array([128]), 128, *args)
    assert full.tolist() == cut.tolist() != other.tolist()


def test_text_and_kernels_share_one_table_layout():
    from distillguard.features import kernels

    assert (text._PK_LOWER_MASK, text._PK_KIND_SHIFT, text._PK_QUOTE_SHIFT, text._PK_CODE_SHIFT, text._PK_MATH_SHIFT) == (
        kernels.PK_LOWER_MASK, kernels.PK_KIND_SHIFT, kernels.PK_QUOTE_SHIFT, kernels.PK_CODE_SHIFT, kernels.PK_MATH_SHIFT,
    )  # fmt: skip
    assert (text._KIND_WORD, text._SYM_MATH, text._BASE) == (kernels.KIND_WORD, kernels.SYM_MATH, kernels.BASE)


def test_quoted_spans_and_symbol_counts():
    tok = text._tokenize(['say "hello there" now {x}', 'a "b c'], want_quotes=True)
    assert tok.quoted[tok.lo[0] : tok.hi[0]].tolist() == [False, True, True, False, False]
    assert not tok.quoted[tok.lo[1] : tok.hi[1]].any()  # an unclosed quote marks nothing
    assert tok.symbols.tolist() == [2, 0]  # "{" and "}"
    assert tok.length[tok.lo[0] : tok.hi[0]].tolist() == [3, 5, 5, 3, 1]
