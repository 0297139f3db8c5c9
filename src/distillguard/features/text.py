"""Per-event text measurements: the text-derived columns of ``EVENT_SCHEMA``.

The prompt and completion text are dropped after this step, so everything the
detectors need from the text is measured here, in one vectorized pass per batch:

* one tokenizer for everything (a compiled pass over UTF-32 code points,
  :mod:`distillguard.features.kernels`): words are runs
  of letters / marks / digits / ``_`` in space-delimited scripts; every CJK
  ideograph, kana, hangul syllable and Thai-family character is its own token
  (those scripts do not put spaces between words, so cue phrases in them match
  as substrings).  Tokens are lowercased and hashed with a polynomial hash
  finished by a 64-bit mixer: deterministic on every machine, and ~50x faster
  than one ``xxhash`` call per word.
* exact prompt hash: xxh64 (seed :data:`PROMPT_HASH_SEED`) of the UTF-32-LE
  bytes of the lowercased, whitespace-folded, stripped prompt.
* template prefix / suffix keys: the first / last :data:`TEMPLATE_WORDS` tokens
  with numbers and "double-quoted spans" each replaced by a placeholder.
* MinHash LSH: word 3-shingles, :data:`MINHASH_BANDS` bands x
  :data:`MINHASH_ROWS` rows; two prompts share a band with probability
  ``1 - (1 - J**3)**8``: ~0.5 at Jaccard 0.5, 0.99 at 0.8, < 0.01 at 0.1.
* cue families (reasoning elicitation, rubric grading, capability, reasoning
  traces in completions) from the multilingual phrase lists in
  :mod:`distillguard.features.lexicon`, matched as token sequences.
* public-benchmark overlap through :mod:`distillguard.features.benchmark_index`.

A text seen recently (in this batch or the last 25,000-50,000 distinct ones) is not
measured again: prompts and completions repeat a lot in harvesting and in chat
replays, and every measurement depends on its own text alone (see ``_MeasureCache``).

Only the first and last ``VIEW_HEAD``/``VIEW_TAIL`` characters of a long
prompt are tokenized (cues, templates and benchmark questions live at the ends;
a pasted document in the middle costs time and adds nothing); the exact hash
and the character counts use the whole text.

Example:
    >>> cols = measure_texts(["Solve step by step: what is 2+2?"], ["Step 1: 2+2=4. Therefore 4."])
    >>> bool(cols["reasoning_elicit"][0]), cols["capability"][0], cols["script"][0]
    (True, 'math', 'latin')
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xxhash

from distillguard.features import lexicon as _lexicon

__all__ = [
    "measure_texts",
    "tokenize",
    "token_hashes",
    "word_shingle_hashes",
    "prompt_hash",
    "cue_flags",
    "TEXT_COLUMNS",
    "SCRIPTS",
    "CAPABILITIES",
    "MINHASH_BANDS",
    "MINHASH_ROWS",
    "MINHASH_SHINGLE",
    "TEMPLATE_WORDS",
    "BENCHMARK_SHINGLE",
    "BENCHMARK_MIN_HITS",
]

#: Columns :func:`measure_texts` returns, in ``EVENT_SCHEMA`` order.
TEXT_COLUMNS = (
    "prompt_chars",
    "completion_chars",
    "prompt_hash",
    "template_prefix_hash",
    "template_suffix_hash",
    "minhash_bands",
    "script",
    "capability",
    "reasoning_elicit",
    "rubric_grading",
    "benchmark_hits",
    "benchmark_name",
    "completion_has_reasoning",
)

SCRIPTS = ("other", "latin", "cjk", "cyrillic", "arabic", "devanagari", "hangul", "kana", "greek", "hebrew", "thai")
CAPABILITIES = ("code", "math", "reasoning", "writing", "translation", "extraction", "chat", "other")

PROMPT_HASH_SEED = 0x6469_7374  # "dist"
VIEW_HEAD, VIEW_TAIL = 1500, 1500  # prompt characters tokenized at each end
COMPLETION_HEAD, COMPLETION_TAIL = 400, 150  # a trace shows itself early ("Step 1", "<think>") and at the end
TEMPLATE_WORDS = 6
TEMPLATE_MIN_WORDS = TEMPLATE_WORDS + 2  # fewer tokens: no payload to wrap, keys are 0
MINHASH_SHINGLE = 3
MINHASH_BANDS, MINHASH_ROWS = 8, 3
MINHASH_MAX_TOKENS = 128  # near-duplicates are decided on the first 128 tokens of the view
BENCHMARK_SHINGLE = 8
BENCHMARK_SAMPLE_MASK = 1  # a shingle is indexed and looked up iff bit 32 of its unmixed hash is 0 (1 in 2)
BENCHMARK_MIN_HITS = 3  # benchmark_name is set from this many sampled-shingle hits on
_CHUNK_CHARS = 1 << 18  # keep every per-character array in cache

_M64 = (1 << 64) - 1
_BASE = 0x100000001B3  # the token hash's polynomial base (kernels.BASE)
_KEY_MUL = 0x9E3779B97F4A7C15

# --------------------------------------------------------------------------- character tables

_KIND_WORD, _KIND_SINGLE = 1, 3  # 0 = not part of a token
_SCRIPT_RANGES = {
    "latin": [(0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x1E00, 0x1EFF), (0x2C60, 0x2C7F), (0xA720, 0xA7FF), (0xFF21, 0xFF5A)],
    "greek": [(0x370, 0x3FF), (0x1F00, 0x1FFF)],
    "cyrillic": [(0x400, 0x52F), (0x1C80, 0x1C8F), (0x2DE0, 0x2DFF), (0xA640, 0xA69F)],
    "hebrew": [(0x590, 0x5FF), (0xFB1D, 0xFB4F)],
    "arabic": [(0x600, 0x6FF), (0x750, 0x77F), (0x8A0, 0x8FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)],
    "devanagari": [(0x900, 0x97F), (0xA8E0, 0xA8FF)],
    "thai": [(0xE00, 0xE7F)],
    "hangul": [(0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xAC00, 0xD7FF)],
    "kana": [(0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F)],
    "cjk": [(0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3FFFF)],
}
# scripts written without spaces between words: one token per character
_PER_CHAR_RANGES = _SCRIPT_RANGES["cjk"] + _SCRIPT_RANGES["kana"] + _SCRIPT_RANGES["hangul"] + _SCRIPT_RANGES["thai"] + [
    (0xE80, 0xEFF),  # lao
    (0x1000, 0x109F),  # myanmar
    (0x1780, 0x17FF),  # khmer
]
_QUOTES = '"\u201c\u201d\u201e\u00ab\u00bb\u300c\u300d\u300e\u300f\uff02'
_CODE_CHARS = "{};<>[]`|"
_MATH_CHARS = "=+^$\u221a\u2211\u222b\u03c0\u2264\u2265\u00b1\u00d7\u00f7\u2260\u2248"
_SYM_MATH = 1 << 12  # symbol table: code chars count 1, math chars 1<<12 (views are < 4096 chars)
_PK_LOWER_MASK = (1 << 21) - 1  # packed table layout (see _Tables.packed)
_PK_KIND_SHIFT, _PK_QUOTE_SHIFT, _PK_CODE_SHIFT, _PK_MATH_SHIFT = 21, 23, 24, 25


@dataclass(frozen=True)
class _Tables:
    kind: np.ndarray  # uint8: 0 / _KIND_WORD / _KIND_SINGLE
    lower: np.ndarray  # uint32: simple lowercase mapping (length-preserving)
    token_lower: np.ndarray  # uint32: lower, but 0 for characters that are not part of a token
    space: np.ndarray  # bool: str.isspace
    quote: np.ndarray  # bool: double-quote-like characters
    digit: np.ndarray  # bool: decimal digits (token starts with one -> a number)
    script: np.ndarray  # uint8: index into SCRIPTS (0 = not a letter)
    symbol: np.ndarray  # int32: code/math symbol weights
    packed: np.ndarray  # uint32: token_lower | kind << 21 | quote << 23 | code << 24 | math << 25


def _build_tables() -> _Tables:
    n = 0x110000
    kind = np.zeros(n, np.uint8)
    lower = np.arange(n, dtype=np.uint32)
    space = np.zeros(n, bool)
    digit = np.zeros(n, bool)
    for cp in range(0x20000):  # BMP + SMP; higher planes are CJK extensions, set below
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat[0] in "LMN" or ch == "_":
            kind[cp] = _KIND_WORD
            lo = ch.lower()
            if len(lo) == 1:
                lower[cp] = ord(lo)
            if cat == "Nd":
                digit[cp] = True
        elif ch.isspace():
            space[cp] = True
    script = np.zeros(n, np.uint8)
    for name, ranges in _SCRIPT_RANGES.items():
        for a, b in ranges:
            script[a : b + 1] = SCRIPTS.index(name)
    for a, b in _PER_CHAR_RANGES:
        seg = slice(a, b + 1)
        kind[seg] = np.where((kind[seg] > 0) | (b >= 0x20000), _KIND_SINGLE, 0)
    script[kind == 0] = 0
    script[digit] = 0
    quote = np.zeros(n, bool)
    quote[[ord(c) for c in _QUOTES]] = True
    symbol = np.zeros(n, np.int32)
    symbol[[ord(c) for c in _CODE_CHARS]] = 1
    symbol[[ord(c) for c in _MATH_CHARS]] = _SYM_MATH
    token_lower = np.where(kind > 0, lower, 0).astype(np.uint32)
    # one gather per character instead of four: every per-character field in one word
    packed = (
        token_lower
        | (kind.astype(np.uint32) << np.uint32(_PK_KIND_SHIFT))
        | (quote.astype(np.uint32) << np.uint32(_PK_QUOTE_SHIFT))
        | ((symbol == 1).astype(np.uint32) << np.uint32(_PK_CODE_SHIFT))
        | ((symbol == _SYM_MATH).astype(np.uint32) << np.uint32(_PK_MATH_SHIFT))
    )
    return _Tables(kind, lower, token_lower, space, quote, digit, script, symbol, packed)


_tables_lock = threading.Lock()
_tables: _Tables | None = None


def _get_tables() -> _Tables:
    global _tables
    if _tables is None:
        with _tables_lock:
            if _tables is None:
                _tables = _build_tables()
    return _tables


def _mix64(x: np.ndarray) -> np.ndarray:
    """Murmur3 fmix64 finalizer over a uint64 array (wraps mod 2**64)."""
    x = x ^ (x >> np.uint64(33))
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x


# --------------------------------------------------------------------------- tokenizer


@dataclass
class _Tokens:
    """Tokens of a batch of segments (texts), flattened."""

    hashes: np.ndarray  # uint64 per token
    lo: np.ndarray  # int64 per segment: first token index
    hi: np.ndarray  # int64 per segment: one past the last token
    row: np.ndarray  # int64 per token: segment index
    first_cp: np.ndarray  # uint32 per token: first code point (lowercased)
    length: np.ndarray  # int64 per token: characters
    quoted: np.ndarray | None  # bool per token: inside a closed "double-quoted" span
    symbols: np.ndarray  # int32 per segment: code-char count + _SYM_MATH * math-char count
    seg_start: np.ndarray  # int64 per segment: first character in ``codepoints``
    seg_len: np.ndarray  # int64 per segment


def _tokenize(texts: Sequence[str], want_quotes: bool | int = False) -> _Tokens:
    """Tokenize ``texts``; ``want_quotes`` (True, or the number of leading segments that need it)
    marks tokens inside closed double-quoted spans (``quoted`` is only meaningful for those segments)."""
    t = _get_tables()
    n = len(texts)
    seg_len = np.fromiter(map(len, texts), np.int64, n)
    seg_start = np.empty(n, np.int64)
    if n:
        np.cumsum(seg_len[:-1] + 1, out=seg_start[1:])
        seg_start[0] = 0
    seg_start += 1  # a leading separator: no token starts at character 0
    joined = "\x00" + "\x00".join(texts) + "\x00"
    cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), np.uint32)
    quote_segments = (n if want_quotes is True else int(want_quotes)) if want_quotes else 0
    from distillguard.features.kernels import tokenize_codepoints  # numba: ~100 MB, only where text is measured

    _start, lo, hi, hashes, first_cp, length, quoted, symbols = tokenize_codepoints(
        cp, t.packed, seg_start, seg_len, quote_segments
    )
    row = np.repeat(np.arange(n, dtype=np.int64), hi - lo)
    return _Tokens(hashes, lo, hi, row, first_cp, length, quoted if want_quotes else None, symbols, seg_start, seg_len)


def tokenize(text: str) -> list[int]:
    """Token hashes (uint64 as Python ints) of one text, as every measurement sees them.

    Example:
        >>> tokenize("Step-by-step") == tokenize("step by STEP")
        True
        >>> len(tokenize("一步一步")), len(tokenize("hello, world"))
        (4, 2)
    """
    return _tokenize([text]).hashes.tolist()


def token_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Flattened token hashes (uint64) and per-text offsets (``len(texts) + 1``).

    Example:
        >>> h, off = token_hashes(["a b", "c"])
        >>> off.tolist(), len(h)
        ([0, 2, 3], 3)
    """
    tok = _tokenize(list(texts))
    return tok.hashes, np.concatenate([tok.lo, tok.hi[-1:]]) if len(texts) else np.zeros(1, np.int64)


# --------------------------------------------------------------------------- shingles


def _shingles(
    h: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    row: np.ndarray,
    w: int,
    seed: int,
    allow_short: bool,
    sample_mask: int = 0,
):
    """Hashes of w-token windows inside each segment.

    Returns (shingle hashes uint64, segment index per shingle).  A segment with
    fewer than ``w`` tokens yields one shingle of what it has if ``allow_short``.
    With ``sample_mask``, only windows whose unmixed hash has ``(x >> 32) & mask == 0``
    are kept (a content-defined sample: the same window is kept wherever it occurs).
    """
    m = len(h)
    if m == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    idx = np.arange(m, dtype=np.int64)
    row_hi = hi[row]
    padded = np.concatenate([h, np.zeros(w, np.uint64)])
    acc = h ^ np.uint64((seed * 0x9E3779B97F4A7C15) & _M64)
    base = np.uint64(_BASE)
    for j in range(1, w):
        nxt = padded[j : j + m]
        if allow_short:
            nxt = np.where(idx + j < row_hi, nxt, np.uint64(0))
        np.multiply(acc, base, out=acc)
        np.add(acc, nxt, out=acc)
    keep = idx + (w - 1) < row_hi
    if allow_short:
        keep |= idx == lo[row]
    if sample_mask:
        keep &= ((acc >> np.uint64(32)) & np.uint64(sample_mask)) == 0
    return _mix64(acc[keep]), row[keep]


def word_shingle_hashes(
    texts: Sequence[str], w: int = BENCHMARK_SHINGLE, sample_mask: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the ``w``-word shingles of each text (the benchmark index's key).

    Returns ``(hashes uint64, text index int64)``.  Texts shorter than ``w``
    words have no shingles.  ``sample_mask=BENCHMARK_SAMPLE_MASK`` keeps the
    content-defined sample that the benchmark index stores and looks up.

    Example:
        >>> h, r = word_shingle_hashes(["one two three four five six seven eight nine"])
        >>> len(h), r.tolist()
        (2, [0, 0])
    """
    tok = _tokenize(list(texts))
    return _shingles(tok.hashes, tok.lo, tok.hi, tok.row, w, seed=w, allow_short=False, sample_mask=sample_mask)


# --------------------------------------------------------------------------- exact and template hashes


def prompt_hash(text: str) -> int:
    """Signed 64-bit xxh64 of the lowercased, whitespace-folded prompt.

    Example:
        >>> prompt_hash("Hello   World ") == prompt_hash("hello world")
        True
    """
    return _prompt_hashes([text])[0]


def _prompt_hashes(texts: Sequence[str]) -> list[int]:
    from distillguard.features.kernels import fold_codepoints

    t = _get_tables()
    out: list[int] = []
    hash_ = xxhash.xxh64_intdigest
    for first in range(0, len(texts), 2048):
        part = texts[first : first + 2048]
        n = len(part)
        seg_len = np.fromiter(map(len, part), np.int64, n)
        seg_start = np.zeros(n, np.int64)
        np.cumsum(seg_len[:-1] + 1, out=seg_start[1:])
        cp = np.frombuffer("\x00".join(part).encode("utf-32-le", "surrogatepass"), np.uint32)
        folded, a, b = fold_codepoints(cp, t.space, t.lower, seg_start, seg_len)
        mv = memoryview(folded).cast("B")
        out.extend(hash_(mv[4 * x : 4 * y], PROMPT_HASH_SEED) for x, y in zip(a.tolist(), b.tolist(), strict=True))
    return np.array(out, dtype=np.uint64).view(np.int64).tolist()


_NUM_MARK = np.uint64(0x4E554D)  # placeholder token for a number
_QUOTE_MARK = np.uint64(0x51554F5445)  # placeholder token for a "quoted span"


def _template_keys(tok: _Tokens, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Prefix / suffix keys (int64, 0 = none) of the first ``n`` segments."""
    t = _get_tables()
    end = tok.hi[n - 1] if n else 0
    h = tok.hashes[:end].copy()
    row = tok.row[:end]
    h[t.digit[tok.first_cp[:end]]] = _NUM_MARK
    keep = np.ones(end, bool)
    if tok.quoted is not None:
        q = tok.quoted[:end]
        h[q] = _QUOTE_MARK
        prev_q = np.concatenate([[False], q[:-1]]) & np.concatenate([[False], row[1:] == row[:-1]])
        keep = ~(q & prev_q)  # one placeholder per quoted span, however long
    h = h[keep]
    row = row[keep]
    counts = np.bincount(row, minlength=n)[:n]
    lo = np.zeros(n, np.int64)
    np.cumsum(counts[:-1], out=lo[1:])
    hi = lo + counts
    ok = counts >= TEMPLATE_MIN_WORDS
    prefix = np.zeros(n, np.int64)
    suffix = np.zeros(n, np.int64)
    if ok.any() and len(h):
        j = np.arange(TEMPLATE_WORDS)
        first = h[(lo[ok][:, None] + j).reshape(-1)].reshape(-1, TEMPLATE_WORDS)
        last = h[(hi[ok][:, None] - TEMPLATE_WORDS + j).reshape(-1)].reshape(-1, TEMPLATE_WORDS)
        for arr, out, salt in ((first, prefix, 0x5052), (last, suffix, 0x5355)):
            acc = np.full(len(arr), np.uint64(salt))
            for k in range(TEMPLATE_WORDS):
                acc = _mix64(acc * np.uint64(_BASE) + arr[:, k])
            v = acc.view(np.int64)
            v = np.where(v == 0, 1, v)  # 0 means "no key"
            out[ok] = v
    return prefix, suffix


# --------------------------------------------------------------------------- MinHash LSH

_MINHASH_PERMS = MINHASH_BANDS * MINHASH_ROWS
_rng = np.random.default_rng(20240611)  # fixed: band keys must be comparable across runs
_MH_XOR = _rng.integers(0, 1 << 32, _MINHASH_PERMS, dtype=np.uint64).astype(np.uint32)
_MH_MUL = (_rng.integers(0, 1 << 31, _MINHASH_PERMS, dtype=np.uint64) * 2 + 1).astype(np.uint32)
del _rng
_MH_XOR_64, _MH_MUL_64 = _MH_XOR.astype(np.uint64), _MH_MUL.astype(np.uint64)


def _minhash_bands(tok: _Tokens, n: int) -> list[list[int]]:
    from distillguard.features.kernels import minhash_band_keys

    keys, has = minhash_band_keys(
        tok.hashes, tok.lo[:n], tok.hi[:n], MINHASH_MAX_TOKENS, MINHASH_SHINGLE,
        np.uint64((MINHASH_SHINGLE * 0x9E3779B97F4A7C15) & _M64), _MH_XOR_64, _MH_MUL_64, MINHASH_ROWS,
    )  # fmt: skip
    rows = keys.view(np.int64).tolist()
    return [r if h else [] for r, h in zip(rows, has.tolist(), strict=True)]


# --------------------------------------------------------------------------- cue lexicon


class _CompiledLexicon:
    """Phrase tables for every cue class, matched over token hashes."""

    MAX_PHRASE = 14  # per-character scripts spell a phrase in many tokens

    def __init__(self) -> None:
        classes = list(_lexicon.CUES)
        if len(classes) > 63:
            raise ValueError("at most 63 cue classes")
        self.classes = classes
        self.bit = {c: np.uint64(1 << i) for i, c in enumerate(classes)}
        phrases: list[str] = []
        owners: list[int] = []
        for i, cls in enumerate(classes):
            for _lang, items in _lexicon.CUES[cls].items():
                for p in _lexicon.expand_all(items):
                    phrases.append(p)
                    owners.append(i)
        tok = _tokenize(phrases)
        seqs = [tok.hashes[a:b] for a, b in zip(tok.lo.tolist(), tok.hi.tolist(), strict=True)]
        vocab = np.unique(np.concatenate(seqs)) if seqs else np.zeros(0, np.uint64)
        self.vocab = vocab
        # direct-address table over the top 20 hash bits: vocab id + 1, 0 = none, -1 = shared bucket
        bucket = (vocab >> np.uint64(44)).astype(np.int64)
        id_type = np.int16 if len(vocab) < (1 << 15) else np.int32
        self.slot = np.zeros(1 << 20, id_type)
        self.slot[bucket] = np.arange(1, len(vocab) + 1, dtype=id_type)
        shared = np.unique(bucket, return_counts=True)
        self.slot[shared[0][shared[1] > 1]] = -1
        # one table per length n holding every phrase prefix of that length: matching extends
        # only sequences that can still become a phrase; mask != 0 where a whole phrase ends
        table: dict[tuple[int, int], int] = {}
        starters: set[int] = set()
        for seq, owner, text in zip(seqs, owners, phrases, strict=True):
            if len(seq) == 0:
                continue
            if len(seq) > self.MAX_PHRASE:
                raise ValueError(f"cue phrase longer than {self.MAX_PHRASE} tokens: {text!r}")
            ids = (np.searchsorted(vocab, seq) + 1).tolist()
            if len(ids) > 1:
                starters.add(ids[0])
            acc = 0
            for n, v in enumerate(ids, start=1):
                acc = (acc * _KEY_MUL + v) & _M64
                mask = (1 << owner) if n == len(ids) else 0
                table[(n, acc)] = table.get((n, acc), 0) | mask
        self.max_len = max((n for n, _ in table), default=0)
        self.prefix1 = np.zeros(len(vocab) + 1, bool)  # by vocab id: starts a longer phrase
        self.mask1 = np.zeros(len(vocab) + 1, np.uint64)  # by vocab id: one-token phrase classes
        for (ln, k), msk in table.items():
            if ln == 1:
                self.mask1[k] = msk
        self.prefix1[sorted(starters)] = True
        self.keys: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for n in range(1, self.max_len + 1):
            items = sorted((k, m) for (ln, k), m in table.items() if ln == n)
            self.keys[n] = (
                np.array([k for k, _ in items], dtype=np.uint64),
                np.array([m for _, m in items], dtype=np.uint64),
            )

    def match(self, tok: _Tokens) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Phrase occurrences: (token position, segment, class bitmask), in position order."""
        h = tok.hashes
        vid = np.zeros(len(h) + 1, np.uint64)  # vocab id + 1 per token, 0 = not a cue word
        slot = self.slot[(h >> np.uint64(44)).astype(np.int64)]
        cand = np.flatnonzero(slot > 0)
        sid = slot[cand].astype(np.int64)
        ok = self.vocab[sid - 1] == h[cand]
        vid[cand[ok]] = sid[ok].astype(np.uint64)
        shared = np.flatnonzero(slot < 0)
        if len(shared):
            hs = h[shared]
            ids = np.minimum(np.searchsorted(self.vocab, hs), len(self.vocab) - 1)
            ok = self.vocab[ids] == hs
            vid[shared[ok]] = (ids[ok] + 1).astype(np.uint64)
        pos = np.flatnonzero(vid[:-1])
        row = tok.row
        # length 1: the key is the vocab id itself
        v1 = vid[pos]
        m1 = self.mask1[v1]
        done = m1 != 0
        out_pos, out_mask = [pos[done]], [m1[done]]
        live = self.prefix1[v1]
        start, acc = pos[live], v1[live]
        mul = np.uint64(_KEY_MUL)
        for n in range(2, self.max_len + 1):
            if not len(start):
                break
            nxt = np.minimum(start + (n - 1), len(h))  # vid[len(h)] == 0 ends a sequence
            v = vid[nxt]
            same_row = row[np.minimum(nxt, len(row) - 1)] == row[start]
            live = (v > 0) & same_row
            start, acc, v = start[live], acc[live], v[live]
            acc = acc * mul + v
            keys, masks = self.keys[n]
            i = np.minimum(np.searchsorted(keys, acc), len(keys) - 1)
            is_prefix = keys[i] == acc
            m = masks[i]
            done = is_prefix & (m != 0)
            if done.any():
                out_pos.append(start[done])
                out_mask.append(m[done])
            start, acc = start[is_prefix], acc[is_prefix]
        if not out_pos:
            z = np.zeros(0, np.int64)
            return z, z, np.zeros(0, np.uint64)
        p = np.concatenate(out_pos)
        order = np.argsort(p, kind="stable")
        p = p[order]
        return p, row[p], np.concatenate(out_mask)[order]


_lexicon_lock = threading.Lock()
_compiled: _CompiledLexicon | None = None


def _get_lexicon() -> _CompiledLexicon:
    global _compiled
    if _compiled is None:
        with _lexicon_lock:
            if _compiled is None:
                _compiled = _CompiledLexicon()
    return _compiled


@dataclass
class _Matches:
    pos: np.ndarray
    row: np.ndarray
    mask: np.ndarray
    nrows: int
    lex: _CompiledLexicon

    def has(self, cls: str) -> np.ndarray:
        sel = (self.mask & self.lex.bit[cls]) != 0
        out = np.zeros(self.nrows, bool)
        out[self.row[sel]] = True
        return out

    def count(self, cls: str) -> np.ndarray:
        sel = (self.mask & self.lex.bit[cls]) != 0
        return np.bincount(self.row[sel], minlength=self.nrows)[: self.nrows]

    def near(self, a: str, b: str, window: int) -> np.ndarray:
        """Rows where a phrase of class ``a`` starts within ``window`` tokens of one of class ``b``."""
        sa = (self.mask & self.lex.bit[a]) != 0
        sb = (self.mask & self.lex.bit[b]) != 0
        pa, ra = self.pos[sa], self.row[sa]
        pb, rb = self.pos[sb], self.row[sb]
        out = np.zeros(self.nrows, bool)
        if not len(pa) or not len(pb):
            return out
        i = np.searchsorted(pa, pb)
        close = np.zeros(len(pb), bool)
        for k in (i - 1, i):
            kk = np.clip(k, 0, len(pa) - 1)
            d = np.abs(pa[kk] - pb)
            close |= (k >= 0) & (k < len(pa)) & (ra[kk] == rb) & (d <= window) & ((d > 0) | (a != b))
        out[rb[close]] = True
        return out

    def rule(self, clauses) -> np.ndarray:
        """OR over clauses of AND over terms: "cls", "!cls", ("near", a, b, w), ("!near", a, b, w)."""
        result = np.zeros(self.nrows, bool)
        for clause in clauses:
            acc = np.ones(self.nrows, bool)
            for term in clause:
                if isinstance(term, str):
                    v = self.has(term.lstrip("!"))
                    neg = term.startswith("!")
                else:
                    op, a, b, w = term
                    v = self.near(a, b, w)
                    neg = op.startswith("!")
                acc &= ~v if neg else v
            result |= acc
        return result


def _match(tok: _Tokens) -> _Matches:
    lex = _get_lexicon()
    pos, row, mask = lex.match(tok)
    return _Matches(pos, row, mask, len(tok.lo), lex)


def cue_flags(prompts: Sequence[str]) -> dict[str, np.ndarray]:
    """Reasoning-elicitation and rubric-grading flags of prompts (a convenience for tests and tools).

    Example:
        >>> flags = cue_flags(["Explain your reasoning step by step.", "Give me step-by-step instructions to bake bread."])
        >>> flags["reasoning_elicit"].tolist()
        [True, False]
    """
    cols = measure_texts(list(prompts), [None] * len(prompts))
    return {k: np.asarray(cols[k]) for k in ("reasoning_elicit", "rubric_grading")}


# --------------------------------------------------------------------------- capability and script


def _capability(m: _Matches, tok: _Tokens, n: int) -> list[str]:
    t = _get_tables()
    sym = tok.symbols[:n]
    code_chars = sym & (_SYM_MATH - 1)
    math_chars = sym >> 12
    end = tok.hi[n - 1] if n else 0
    num_tokens = np.bincount(tok.row[:end][t.digit[tok.first_cp[:end]]], minlength=n)[:n]
    ntok = (tok.hi - tok.lo)[:n]
    w = _lexicon.CAPABILITY_WEIGHTS
    score = np.zeros((n, len(CAPABILITIES)))
    for j, cap in enumerate(CAPABILITIES):
        cls = f"cap.{cap}"
        if cls in m.lex.bit:
            score[:, j] = w.get(cap, 1.0) * m.count(cls)[:n]
    score[:, CAPABILITIES.index("code")] += np.minimum(code_chars / 6.0, 4.0)
    score[:, CAPABILITIES.index("math")] += np.minimum(math_chars / 2.0 + num_tokens / 4.0, 4.0)
    # priority on ties follows CAPABILITIES order (argmax takes the first maximum)
    best = score.argmax(axis=1)
    top = score[np.arange(n), best]
    caps = np.array(CAPABILITIES, dtype=object)[best]
    caps = np.where(top >= 1.0, caps, np.where(ntok[:n] <= 60, "chat", "other"))
    caps = np.where(ntok[:n] == 0, "other", caps)
    return caps.tolist()


def _scripts(tok: _Tokens, n: int) -> list[str]:
    t = _get_tables()
    end = tok.hi[n - 1] if n else 0
    sid = t.script[tok.first_cp[:end]].astype(np.int64)
    ns = len(SCRIPTS)
    counts = np.bincount(tok.row[:end] * ns + sid, weights=tok.length[:end], minlength=n * ns)[: n * ns]
    counts = counts.reshape(n, ns)
    counts[:, 0] = 0
    best = counts.argmax(axis=1)
    cjk, kana = SCRIPTS.index("cjk"), SCRIPTS.index("kana")
    # Japanese mixes kanji and kana: any real share of kana means Japanese
    group = counts[:, cjk] + counts[:, kana]
    is_cjk_group = (best == cjk) | (best == kana)
    best = np.where(is_cjk_group, np.where(counts[:, kana] >= 0.15 * group, kana, cjk), best)
    best = np.where(counts.max(axis=1) > 0, best, 0)
    return np.array(SCRIPTS, dtype=object)[best].tolist()


# --------------------------------------------------------------------------- benchmark overlap


def _benchmark(tok: _Tokens, n: int, index) -> tuple[np.ndarray, list[str | None]]:
    end = tok.hi[n - 1] if n else 0
    hits = np.zeros(n, np.int64)
    names: list[str | None] = [None] * n
    if index is None or not len(index.names):
        return hits, names
    sh, srow = _shingles(
        tok.hashes[:end], tok.lo[:n], tok.hi[:n], tok.row[:end], BENCHMARK_SHINGLE,
        seed=BENCHMARK_SHINGLE, allow_short=False, sample_mask=BENCHMARK_SAMPLE_MASK,
    )
    if not len(sh):
        return hits, names
    bench = index.lookup(sh)  # -1 = not in the index
    found = bench >= 0
    if not found.any():
        return hits, names
    hits = np.bincount(srow[found], minlength=n)[:n].astype(np.int64)
    nb = len(index.names)
    per = np.bincount(srow[found] * nb + bench[found], minlength=n * nb)[: n * nb].reshape(n, nb)
    best = per.argmax(axis=1)
    for r in np.flatnonzero(hits >= BENCHMARK_MIN_HITS).tolist():
        names[r] = index.names[best[r]]
    return hits, names


# --------------------------------------------------------------------------- entry point


def _view(text: str, head: int, tail: int) -> str:
    return text if len(text) <= head + tail else text[:head] + "\n" + text[-tail:]


def _measure_prompt_chunk(prompts: list[str], index) -> dict[str, list]:
    n = len(prompts)
    pv = [_view(p, VIEW_HEAD, VIEW_TAIL) for p in prompts]
    tok = _tokenize(pv, want_quotes=True)
    m = _match(tok)
    rules = _lexicon.RULES
    prompt_flags = {name: m.rule(clauses) for name, clauses in rules.items() if not name.startswith("completion")}
    # "<think>" is punctuation-wrapped, invisible to the tokenizer: a direct substring check
    tag_prompt = np.fromiter((("<think" in p) or ("<reasoning" in p) for p in pv), bool, n)
    reasoning = prompt_flags["reasoning_elicit"] | tag_prompt
    prefix, suffix = _template_keys(tok, n)
    hits, names = _benchmark(tok, n, index)
    return {
        "template_prefix_hash": prefix.tolist(),
        "template_suffix_hash": suffix.tolist(),
        "minhash_bands": _minhash_bands(tok, n),
        "script": _scripts(tok, n),
        "capability": _capability(m, tok, n),
        "reasoning_elicit": reasoning.tolist(),
        "rubric_grading": prompt_flags["rubric_grading"].tolist(),
        "benchmark_hits": hits.tolist(),
        "benchmark_name": names,
    }


def _measure_completion_chunk(completions: list[str]) -> dict[str, list]:
    n = len(completions)
    cv = [_view(c, COMPLETION_HEAD, COMPLETION_TAIL) for c in completions]
    tok = _tokenize(cv)
    # completion traces: counts over the completion segments
    cm = _match(tok)
    eq = tok.symbols >> 12
    code_chars = tok.symbols & (_SYM_MATH - 1)
    t = _get_tables()
    num_tokens = np.bincount(tok.row[t.digit[tok.first_cp]], minlength=n)[:n]
    think_tag = np.fromiter((("<think" in c) or ("<reasoning" in c) or ("<thought" in c) for c in cv), bool, n)
    step, conn, ordinal, strong = (cm.count(c) for c in ("trace.step", "trace.connective", "trace.ordinal", "trace.strong"))
    has_trace = (
        think_tag
        | ((strong >= 1) & ((conn + step + eq) >= 1))
        | ((step >= 2) & ((conn >= 1) | (eq >= 1)))
        | ((conn >= 2) & (eq >= 2))
        | ((ordinal >= 2) & (conn >= 1))
        | ((conn >= 1) & (eq >= 4))
        | ((step >= 1) & (conn >= 1) & (eq >= 1))
        # a bare worked calculation ("16 - 3 - 4 = 9 ... 9 * 2 = 18"), not an assignment-heavy program
        | ((eq >= 3) & (num_tokens >= 6) & (code_chars <= 2 * eq + 4))
    )
    return {"completion_has_reasoning": has_trace.tolist()}


#: Per-prompt columns of :func:`measure_texts`, in the order a cached prompt row holds them.
_PROMPT_FIELDS = (
    "prompt_hash", "template_prefix_hash", "template_suffix_hash", "minhash_bands", "script", "capability",
    "reasoning_elicit", "rubric_grading", "benchmark_hits", "benchmark_name",
)  # fmt: skip
_COMPLETION_FIELDS = ("completion_has_reasoning",)
#: Texts per generation of a :class:`_MeasureCache` (two generations are kept): ~0.85 kB per prompt row, so
#: ~45 MB per ingest worker for prompts.  On the throughput input 40,000 saved 4% of prompt measurements for ~30 MB more.
CACHE_GENERATION = 25_000


def _in_chunks(texts: list[str], view_chars: int, measure) -> dict[str, list]:
    """``measure`` over runs of ``texts`` of bounded size (keeps the per-character arrays in cache)."""
    cols: dict[str, list] = {}
    start = 0
    while start < len(texts):
        size = 0
        stop = start
        while stop < len(texts) and (size < _CHUNK_CHARS or stop == start):
            size += min(len(texts[stop]), view_chars) + 1
            stop += 1
        for name, values in measure(texts[start:stop]).items():
            cols.setdefault(name, []).extend(values)
        start = stop
    return cols


def _prompt_rows(prompts: list[str], index) -> list[tuple]:
    cols = _in_chunks(prompts, VIEW_HEAD + VIEW_TAIL, lambda part: _measure_prompt_chunk(part, index))
    cols["prompt_hash"] = _prompt_hashes(prompts)
    return list(zip(*(cols[name] for name in _PROMPT_FIELDS), strict=True))


def _completion_rows(completions: list[str]) -> list[tuple]:
    cols = _in_chunks(completions, COMPLETION_HEAD + COMPLETION_TAIL, _measure_completion_chunk)
    return list(zip(*(cols[name] for name in _COMPLETION_FIELDS), strict=True))


class _MeasureCache:
    """Measurements of recently seen texts, so a repeated text is measured once.

    Harvesting replays templates and datasets, and chat clients resend the same
    prompts, so a batch repeats many texts and the next batches repeat more.
    Every measurement is a pure function of one text, so a cached row is exactly
    what measuring again would give.  Keys are 128-bit xxh3 hashes of the text (a
    collision among 10**9 texts has probability ~1e-21), not the text, to bound
    memory; two generations of :data:`CACHE_GENERATION` rows approximate an LRU.
    """

    def __init__(self, generation: int | None = None):
        self.generation = generation or CACHE_GENERATION
        self._new: dict[int, tuple] = {}
        self._old: dict[int, tuple] = {}

    def rows(self, texts: list[str], measure) -> list[tuple]:
        """One row per text: from the cache, else from ``measure`` called once on the distinct unseen texts."""
        key_of = xxhash.xxh3_128_intdigest
        new, old = self._new, self._old
        out: list = []
        missing: dict[int, int] = {}  # key -> position in to_measure
        to_measure: list[str] = []
        for text in texts:
            key = key_of(text.encode("utf-8", "surrogatepass"))
            row = new.get(key)
            if row is None:
                row = old.get(key)
                if row is None:
                    j = missing.get(key)
                    if j is None:
                        j = missing[key] = len(to_measure)
                        to_measure.append(text)
                    out.append(j)  # a position, replaced below
                    continue
                new[key] = row
            out.append(row)
        if to_measure:
            measured = measure(to_measure)
            for key, j in missing.items():
                self._put(key, measured[j])
            out = [measured[x] if type(x) is int else x for x in out]
        return out

    def _put(self, key: int, row: tuple) -> None:
        self._new[key] = row
        if len(self._new) >= self.generation:
            self._old, self._new = self._new, {}


_cache_lock = threading.Lock()
_caches: dict[int, tuple[object, _MeasureCache, _MeasureCache]] = {}  # id(index) -> (index, prompts, completions)


def _caches_for(index) -> tuple[_MeasureCache, _MeasureCache]:
    entry = _caches.get(id(index))
    if entry is None or entry[0] is not index:
        with _cache_lock:
            if len(_caches) >= 4:  # indexes come and go in tests; a scan uses one
                _caches.clear()
            entry = _caches[id(index)] = (index, _MeasureCache(), _MeasureCache())  # holds index: its id stays its own
    return entry[1], entry[2]


def measure_texts(
    prompts: Sequence[str],
    completions: Sequence[str | None],
    *,
    benchmark_index=None,
) -> dict[str, list | np.ndarray]:
    """Measure a batch of (last user message, response text) pairs.

    Returns one equal-length column per name in :data:`TEXT_COLUMNS`:
    ``prompt_chars``/``completion_chars``/``prompt_hash``/``template_*_hash``/
    ``benchmark_hits`` as int64 ndarrays, ``minhash_bands`` as a list of
    ``list[int]`` (empty for an empty prompt), ``script``/``capability``/
    ``benchmark_name`` as lists of str (None for no benchmark), and the flags
    as bool ndarrays.  ``benchmark_index`` defaults to the bundled index
    (:func:`distillguard.features.benchmark_index.load_index`); pass ``False``
    to skip the benchmark lookup.

    Example:
        >>> cols = measure_texts(["Rate the response on a scale of 1 to 10."], [None])
        >>> bool(cols["rubric_grading"][0]), int(cols["completion_chars"][0])
        (True, 0)
    """
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    prompts = ["" if p is None else str(p) for p in prompts]
    completions = ["" if c is None else str(c) for c in completions]
    if benchmark_index is None:
        from distillguard.features.benchmark_index import load_index

        benchmark_index = load_index()
    elif benchmark_index is False:
        benchmark_index = None
    prompt_cache, completion_cache = _caches_for(benchmark_index)
    prompt_rows = prompt_cache.rows(prompts, lambda texts: _prompt_rows(texts, benchmark_index))
    completion_rows = completion_cache.rows(completions, _completion_rows)
    cols: dict[str, list | np.ndarray] = {}
    cols["prompt_chars"] = np.fromiter(map(len, prompts), np.int64, len(prompts))
    cols["completion_chars"] = np.fromiter(map(len, completions), np.int64, len(completions))
    by_name = dict(zip(_PROMPT_FIELDS, zip(*prompt_rows, strict=True), strict=True)) if prompt_rows else {}
    by_name.update(zip(_COMPLETION_FIELDS, zip(*completion_rows, strict=True), strict=True) if completion_rows else ())
    for name in _PROMPT_FIELDS + _COMPLETION_FIELDS:
        values = list(by_name.get(name, ()))
        if name in _ARRAY_DTYPES:
            cols[name] = np.array(values, dtype=_ARRAY_DTYPES[name])
        else:
            cols[name] = values
    return {name: cols[name] for name in TEXT_COLUMNS}


_ARRAY_DTYPES = {
    "prompt_hash": np.int64,
    "template_prefix_hash": np.int64,
    "template_suffix_hash": np.int64,
    "benchmark_hits": np.int64,
    "reasoning_elicit": bool,
    "rubric_grading": bool,
    "completion_has_reasoning": bool,
}
