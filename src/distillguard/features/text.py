"""Per-event text measurements: the text-derived columns of ``EVENT_SCHEMA``.

The prompt and completion text are dropped after this step, so everything the
detectors need from the text is measured here, in one compiled pass per text
(:mod:`distillguard.features.kernels`, over the texts' UTF-8 bytes) and a few
array operations per batch:

* one tokenizer for everything: words are runs
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
    >>> bool(cols["reasoning_elicit"][0]), cols["capability"].to_pylist(), cols["script"].to_pylist()
    (True, ['math'], ['latin'])
"""

from __future__ import annotations

import secrets
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

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

_M64 = (1 << 64) - 1
_KEY_MUL = 0x9E3779B97F4A7C15  # folds a cue phrase's word ids into its key (kernels.KEY_MUL)

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
_PK_LOWER_MASK = (1 << 21) - 1  # packed table layout (see _Tables.packed)
_PK_KIND_SHIFT, _PK_QUOTE_SHIFT, _PK_CODE_SHIFT, _PK_MATH_SHIFT = 21, 23, 24, 25
_PK_DIGIT_SHIFT, _PK_SCRIPT_SHIFT, _PK_SPACE_SHIFT = 26, 27, 31


@dataclass(frozen=True)
class _Tables:
    # uint32 per code point: lowercase | kind << 21 | quote << 23 | code << 24 | math << 25
    # | digit << 26 | script << 27 | space << 31, where lowercase is 0 for characters that are
    # not part of a token and digit / script are those of the lowercase (a token's first character)
    packed: np.ndarray
    lower: np.ndarray  # uint32: simple lowercase mapping (length-preserving)


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
    code = np.zeros(n, bool)
    code[[ord(c) for c in _CODE_CHARS]] = True
    math = np.zeros(n, bool)
    math[[ord(c) for c in _MATH_CHARS]] = True
    token_lower = np.where(kind > 0, lower, 0).astype(np.uint32)
    # one gather per character: every per-character field in one word
    u32 = np.uint32
    packed = (
        token_lower
        | (kind.astype(u32) << u32(_PK_KIND_SHIFT))
        | (quote.astype(u32) << u32(_PK_QUOTE_SHIFT))
        | (code.astype(u32) << u32(_PK_CODE_SHIFT))
        | (math.astype(u32) << u32(_PK_MATH_SHIFT))
        | (digit[token_lower].astype(u32) << u32(_PK_DIGIT_SHIFT))
        | (script[token_lower].astype(u32) << u32(_PK_SCRIPT_SHIFT))
        | (space.astype(u32) << u32(_PK_SPACE_SHIFT))
    )
    return _Tables(packed, lower)


_tables_lock = threading.Lock()
_tables: _Tables | None = None


def _get_tables() -> _Tables:
    global _tables
    if _tables is None:
        with _tables_lock:
            if _tables is None:
                _tables = _build_tables()
    return _tables


def _utf8(texts: Sequence[str | None] | pa.Array | pa.ChunkedArray) -> pa.Array:
    """``texts`` as one Arrow string array with nulls as "" (the kernels' input; Arrow columns pass as they are)."""
    if not isinstance(texts, (pa.Array, pa.ChunkedArray)):
        strings = ["" if t is None else t if type(t) is str else str(t) for t in texts]
        try:
            texts = pa.array(strings, pa.string())
        except UnicodeEncodeError:  # lone surrogates: measured as the code points they are, as before
            data, offsets = _joined(_encode(strings))
            texts = pa.Array.from_buffers(pa.string(), len(strings), [None, pa.py_buffer(offsets.astype(np.int32)),
                                                                      pa.py_buffer(data)])  # fmt: skip
    elif isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if texts.type != pa.string():
        texts = texts.cast(pa.string())
    if not texts.null_count:
        return texts
    _, offsets = _buffers(texts)
    if np.diff(offsets)[~texts.is_valid().to_numpy(zero_copy_only=False)].any():
        return texts.fill_null("")
    # every null is an empty slot (as readers write them): the same bytes without the validity bitmap, no copy
    return pa.Array.from_buffers(pa.string(), len(texts), [None, *texts.buffers()[1:]], offset=texts.offset)


def _buffers(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The kernels' view of an Arrow string array: its UTF-8 bytes, and where each text starts (plus the end)."""
    _, offsets, data = texts.buffers()
    offsets = np.frombuffer(offsets, np.int32)[texts.offset : texts.offset + len(texts) + 1].astype(np.int64)
    return (np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)), offsets


def _encode(texts: Sequence[str]) -> list[bytes]:
    return [t.encode("utf-8", "surrogatepass") for t in texts]


def _joined(encoded: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The kernels' view of a batch: all bytes, and where each text starts (plus the end)."""
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded)), out=offsets[1:])
    return np.frombuffer(b"".join(encoded), np.uint8), offsets


# --------------------------------------------------------------------------- tokenizer


def token_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Flattened token hashes (uint64) and per-text offsets (``len(texts) + 1``).

    Example:
        >>> h, off = token_hashes(["a b", "c"])
        >>> off.tolist(), len(h)
        ([0, 2, 3], 3)
    """
    from distillguard.features import kernels  # numba: ~100 MB, only where text is measured

    hashes, lo, hi = kernels.token_hashes(*_joined(_encode(texts)), _get_tables().packed)
    return hashes, np.concatenate([lo, hi[-1:]]) if len(texts) else np.zeros(1, np.int64)


def tokenize(text: str) -> list[int]:
    """Token hashes (uint64 as Python ints) of one text, as every measurement sees them.

    Example:
        >>> tokenize("Step-by-step") == tokenize("step by STEP")
        True
        >>> len(tokenize("一步一步")), len(tokenize("hello, world"))
        (4, 2)
    """
    return token_hashes([text])[0].tolist()


def _shingle_seed(w: int) -> np.uint64:
    """What a ``w``-token shingle's first token hash is xored with."""
    return np.uint64((w * 0x9E3779B97F4A7C15) & _M64)


def word_shingle_hashes(
    texts: Sequence[str], w: int = BENCHMARK_SHINGLE, sample_mask: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the ``w``-word shingles of each text (the benchmark index's key).

    Returns ``(hashes uint64, text index int64)``.  Texts shorter than ``w``
    words have no shingles.  ``sample_mask=BENCHMARK_SAMPLE_MASK`` keeps the
    content-defined sample that the benchmark index stores and looks up: the
    shingles whose unmixed hash has ``(x >> 32) & sample_mask == 0`` (the same
    window is kept wherever it occurs).

    Example:
        >>> h, r = word_shingle_hashes(["one two three four five six seven eight nine"])
        >>> len(h), r.tolist()
        (2, [0, 0])
    """
    from distillguard.features import kernels

    hashes, offsets = token_hashes(texts)
    return kernels.shingle_hashes(hashes, offsets[:-1], offsets[1:], w, _shingle_seed(w), np.uint64(sample_mask))


# --------------------------------------------------------------------------- exact hash


def prompt_hash(text: str) -> int:
    """Signed 64-bit xxh64 of the lowercased, whitespace-folded prompt.

    Example:
        >>> prompt_hash("Hello   World ") == prompt_hash("hello world")
        True
    """
    return _prompt_hashes([text])[0]


def _prompt_hashes(texts: Sequence[str]) -> list[int]:
    from distillguard.features import kernels

    hashes = kernels.prompt_hashes(*_joined(_encode(texts)), _get_tables().packed, np.uint64(PROMPT_HASH_SEED))
    return hashes.view(np.int64).tolist()


# --------------------------------------------------------------------------- template keys and MinHash LSH

_NUM_MARK = np.uint64(0x4E554D)  # placeholder token for a number
_QUOTE_MARK = np.uint64(0x51554F5445)  # placeholder token for a "quoted span"
_TEMPLATE = (TEMPLATE_WORDS, TEMPLATE_MIN_WORDS, _NUM_MARK, _QUOTE_MARK)

_MINHASH_PERMS = MINHASH_BANDS * MINHASH_ROWS
_rng = np.random.default_rng(20240611)  # fixed: band keys must be comparable across runs
_MH_XOR = _rng.integers(0, 1 << 32, _MINHASH_PERMS, dtype=np.uint64).astype(np.uint32)
_MH_MUL = (_rng.integers(0, 1 << 31, _MINHASH_PERMS, dtype=np.uint64) * 2 + 1).astype(np.uint32)
del _rng
_MINHASH = (MINHASH_MAX_TOKENS, MINHASH_SHINGLE, _shingle_seed(MINHASH_SHINGLE), _MH_XOR, _MH_MUL, MINHASH_ROWS)


def _tag_table(*tags: str) -> tuple[np.ndarray, np.ndarray]:
    """The strings as one code-point array and where each starts (plus the end)."""
    return np.array([ord(c) for c in "".join(tags)], np.uint32), np.cumsum([0] + [len(t) for t in tags], dtype=np.int64)


# "<think>" is punctuation-wrapped, invisible to the tokenizer: matched as a substring of the view
_PROMPT_TAGS = _tag_table("<think", "<reasoning")
_COMPLETION_TAGS = _tag_table("<think", "<reasoning", "<thought")


# --------------------------------------------------------------------------- cue lexicon


class _CompiledLexicon:
    """Phrase tables for every cue class, matched over token hashes, and the rules' proximity terms."""

    MAX_PHRASE = 14  # per-character scripts spell a phrase in many tokens
    SLOT_BITS = 16  # words by their top hash bits: 256 kB, ~4% of the slots used

    def __init__(self) -> None:
        classes = list(_lexicon.CUES)
        if len(classes) > 63:
            raise ValueError("at most 63 cue classes")
        self.classes = classes
        self.index = {c: i for i, c in enumerate(classes)}
        phrases: list[str] = []
        owners: list[int] = []
        for i, cls in enumerate(classes):
            for _lang, items in _lexicon.CUES[cls].items():
                for p in _lexicon.expand_all(items):
                    phrases.append(p)
                    owners.append(i)
        hashes, offsets = token_hashes(phrases)
        seqs = [hashes[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)]
        vocab = np.unique(hashes)
        # over the top hash bits: id + 1 of the word with those bits, 0 = none, negated for the first
        # of several (words are sorted, so the others follow it)
        buckets, first, size = np.unique(vocab >> np.uint64(64 - self.SLOT_BITS), return_index=True, return_counts=True)
        slot = np.zeros(1 << self.SLOT_BITS, np.int32)
        slot[buckets.astype(np.int64)] = np.where(size > 1, -(first + 1), first + 1)
        # every phrase prefix: matching extends only sequences that can still become a phrase;
        # mask != 0 where a whole phrase ends
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
        prefix1 = np.zeros(len(vocab) + 1, bool)  # by word id + 1: starts a longer phrase
        mask1 = np.zeros(len(vocab) + 1, np.uint64)  # by word id + 1: one-word phrase classes
        for (n, key), msk in table.items():
            if n == 1:
                mask1[key] = msk
        prefix1[sorted(starters)] = True
        # longer prefixes in an open-addressing table at most half full (kernels._match_cues)
        longer = [(n, key, msk) for (n, key), msk in table.items() if n > 1]
        bits = max(2 * len(longer) - 1, 1).bit_length()
        keys = np.zeros(1 << bits, np.uint64)
        lengths = np.zeros(1 << bits, np.uint8)
        masks = np.zeros(1 << bits, np.uint64)
        from distillguard.features import kernels  # where the kernel will look: its own slot function

        start = [int(kernels._phrase_slot(np.uint64(key), n, bits)) for n, key, _ in longer]
        for (n, key, msk), k in zip(longer, start, strict=True):
            while lengths[k]:
                k = (k + 1) & ((1 << bits) - 1)
            keys[k], lengths[k], masks[k] = key, n, msk
        max_len = max((n for n, _ in table), default=1)
        self.cues = (vocab, slot, mask1, prefix1, keys, lengths, masks, max_len)
        # the rules' ("near", a, b, window) terms, each computed once per text
        rules = _lexicon.RULES.values()
        terms = list(dict.fromkeys(t[1:] for clauses in rules for clause in clauses for t in clause if not isinstance(t, str)))
        self.near_index = {term: j for j, term in enumerate(terms)}
        self.near_terms = (
            np.array([self.index[a] for a, _, _ in terms], np.int64),
            np.array([self.index[b] for _, b, _ in terms], np.int64),
            np.array([w for _, _, w in terms], np.int64),
        )

    def rule(self, clauses, counts: np.ndarray, near: np.ndarray) -> np.ndarray:
        """OR over clauses of AND over terms: "cls", "!cls", ("near", a, b, w), ("!near", a, b, w),
        from the per-text cue counts and near-term flags."""
        result = np.zeros(len(counts), bool)
        for clause in clauses:
            acc = np.ones(len(counts), bool)
            for term in clause:
                if isinstance(term, str):
                    v = counts[:, self.index[term.lstrip("!")]] > 0
                    neg = term.startswith("!")
                else:
                    op, a, b, w = term
                    v = near[:, self.near_index[(a, b, w)]]
                    neg = op.startswith("!")
                acc &= ~v if neg else v
            result |= acc
        return result

    def count(self, counts: np.ndarray, cls: str) -> np.ndarray:
        return counts[:, self.index[cls]]


_lexicon_lock = threading.Lock()
_compiled: _CompiledLexicon | None = None


def _get_lexicon() -> _CompiledLexicon:
    global _compiled
    if _compiled is None:
        with _lexicon_lock:
            if _compiled is None:
                _compiled = _CompiledLexicon()
    return _compiled


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


def _capability(lex: _CompiledLexicon, counts: np.ndarray, code_chars, math_chars, digit_tokens, tokens) -> np.ndarray:
    """Each text's capability as an index into :data:`CAPABILITIES`."""
    n = len(counts)
    w = _lexicon.CAPABILITY_WEIGHTS
    score = np.zeros((n, len(CAPABILITIES)))
    for j, cap in enumerate(CAPABILITIES):
        cls = f"cap.{cap}"
        if cls in lex.index:
            score[:, j] = w.get(cap, 1.0) * lex.count(counts, cls)
    score[:, CAPABILITIES.index("code")] += np.minimum(code_chars / 6.0, 4.0)
    score[:, CAPABILITIES.index("math")] += np.minimum(math_chars / 2.0 + digit_tokens / 4.0, 4.0)
    # priority on ties follows CAPABILITIES order (argmax takes the first maximum)
    best = score.argmax(axis=1)
    top = score[np.arange(n), best]
    chat, other = CAPABILITIES.index("chat"), CAPABILITIES.index("other")
    caps = np.where(top >= 1.0, best, np.where(tokens <= 60, chat, other))
    return np.where(tokens == 0, other, caps)


def _scripts(script_chars: np.ndarray) -> np.ndarray:
    """Each text's dominant script as an index into :data:`SCRIPTS`."""
    counts = script_chars.astype(np.float64)
    counts[:, 0] = 0
    best = counts.argmax(axis=1)
    cjk, kana = SCRIPTS.index("cjk"), SCRIPTS.index("kana")
    # Japanese mixes kanji and kana: any real share of kana means Japanese
    group = counts[:, cjk] + counts[:, kana]
    is_cjk_group = (best == cjk) | (best == kana)
    best = np.where(is_cjk_group, np.where(counts[:, kana] >= 0.15 * group, kana, cjk), best)
    return np.where(counts.max(axis=1) > 0, best, 0)


# --------------------------------------------------------------------------- benchmark overlap


_BUCKET_BITS = 16  # then where the hashes of each value of their top 16 bits start: 256 kB, ~8 hashes a bucket


def _benchmark_arrays(index) -> tuple:
    """What the prompt kernel looks shingles up in (see ``kernels._benchmark_hits``); empty without an index."""
    from distillguard.features.benchmark_index import empty_index  # (it imports this module)

    if index is None or not len(index.names):
        index = empty_index()
    hashes = index.hashes
    bucket_first = np.arange(1 << _BUCKET_BITS, dtype=np.uint64) << np.uint64(64 - _BUCKET_BITS)
    starts = np.append(np.searchsorted(hashes, bucket_first), len(hashes)).astype(np.int64)
    seed = _shingle_seed(BENCHMARK_SHINGLE)
    return hashes, index.bench, index.bloom, starts, BENCHMARK_SHINGLE, seed, np.uint64(BENCHMARK_SAMPLE_MASK)


# --------------------------------------------------------------------------- entry point

#: What is kept of a measured prompt: the columns of :func:`measure_texts` it gives, ``minhash_bands``
#: whole (used where ``has_tokens``), and codes for the string columns: an index into :data:`SCRIPTS`,
#: :data:`CAPABILITIES`, the benchmark index's names (-1 = none).
_PROMPT_VALUES = np.dtype([
    ("prompt_chars", np.int64), ("prompt_hash", np.int64), ("template_prefix_hash", np.int64),
    ("template_suffix_hash", np.int64), ("minhash_bands", np.int64, (MINHASH_BANDS,)), ("has_tokens", np.bool_),
    ("script", np.uint8), ("capability", np.uint8), ("reasoning_elicit", np.bool_), ("rubric_grading", np.bool_),
    ("benchmark_hits", np.int64), ("benchmark_name", np.int32),
])  # fmt: skip
_COMPLETION_VALUES = np.dtype([("completion_chars", np.int64), ("completion_has_reasoning", np.bool_)])
_SCRIPT_NAMES = pa.array(SCRIPTS, pa.string())
_CAPABILITY_NAMES = pa.array(CAPABILITIES, pa.string())


def _measure_prompts(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, index, bench: tuple) -> np.ndarray:
    """The ``_PROMPT_VALUES`` of each prompt ``data[starts[k] : ends[k]]`` (UTF-8)."""
    from distillguard.features import kernels

    lex = _get_lexicon()
    (chars, hashes, prefix, suffix, bands, script_chars, counts, near,
     code_chars, math_chars, digit_tokens, tokens, tagged, hits, best) = kernels.measure_prompts(
        data, starts, ends, _get_tables().packed, np.uint64(PROMPT_HASH_SEED), (VIEW_HEAD, VIEW_TAIL),
        *_PROMPT_TAGS, lex.cues, lex.near_terms, len(lex.classes), _TEMPLATE, _MINHASH,
        bench, len(index.names) if index is not None else 0, len(SCRIPTS),
    )  # fmt: skip
    rules = _lexicon.RULES
    flags = {name: lex.rule(clauses, counts, near) for name, clauses in rules.items() if not name.startswith("completion")}
    values = np.empty(len(starts), _PROMPT_VALUES)
    values["prompt_chars"] = chars
    values["prompt_hash"] = hashes.view(np.int64)
    values["template_prefix_hash"] = prefix.view(np.int64)
    values["template_suffix_hash"] = suffix.view(np.int64)
    values["minhash_bands"] = bands.view(np.int64)
    values["has_tokens"] = tokens > 0
    values["script"] = _scripts(script_chars)
    values["capability"] = _capability(lex, counts, code_chars, math_chars, digit_tokens, tokens)
    values["reasoning_elicit"] = flags["reasoning_elicit"] | tagged
    values["rubric_grading"] = flags["rubric_grading"]
    values["benchmark_hits"] = hits
    values["benchmark_name"] = np.where(hits >= BENCHMARK_MIN_HITS, best, -1)
    return values


def _measure_completions(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The ``_COMPLETION_VALUES`` of each completion ``data[starts[k] : ends[k]]`` (UTF-8)."""
    from distillguard.features import kernels

    lex = _get_lexicon()
    chars, counts, code_chars, eq, num_tokens, think_tag = kernels.measure_completions(
        data, starts, ends, _get_tables().packed, (COMPLETION_HEAD, COMPLETION_TAIL), *_COMPLETION_TAGS,
        lex.cues, len(lex.classes),
    )  # fmt: skip
    trace_classes = ("trace.step", "trace.connective", "trace.ordinal", "trace.strong")
    step, conn, ordinal, strong = (lex.count(counts, c) for c in trace_classes)
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
    values = np.empty(len(starts), _COMPLETION_VALUES)
    values["completion_chars"] = chars
    values["completion_has_reasoning"] = has_trace
    return values


#: Texts per generation of a :class:`_MeasureCache` (two generations are kept): ~140 bytes per prompt (its
#: values, key and table slots), so ~7 MB per ingest worker for prompts.  On the throughput input 40,000
#: saved 4% of prompt measurements.
CACHE_GENERATION = 25_000
#: The measurement cache's SipHash key: drawn at import, so no text can be made offline to collide with another.
_TEXT_KEY = tuple(np.frombuffer(secrets.token_bytes(16), np.uint64))


def _records(values: np.ndarray) -> np.ndarray:
    """A structured array as opaque records: numpy copies those whole (~15x faster than field by field)."""
    return values.view(np.dtype((np.void, values.dtype.itemsize)))


class _Generation:
    """Up to ``capacity`` measured texts: their keys, values, and an open-addressing table over the keys
    (``kernels.find_keys``; at most half full)."""

    def __init__(self, dtype: np.dtype, capacity: int):
        self.slots = np.zeros(1 << (2 * capacity - 1).bit_length(), np.int32)
        self.keys = np.zeros((capacity, 2), np.uint64)
        self.values = np.zeros(capacity, dtype)
        self.size = 0

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        from distillguard.features import kernels

        lo, hi = self.size, self.size + len(keys)
        self.keys[lo:hi] = keys
        _records(self.values)[lo:hi] = _records(values)
        kernels.index_rows(self.slots, self.keys, lo, hi)
        self.size = hi

    def clear(self) -> None:
        self.slots[:] = 0
        self.size = 0


class _MeasureCache:
    """Measurements of recently seen texts, so a repeated text is measured once.

    Harvesting replays templates and datasets, and chat clients resend the same
    prompts, so a batch repeats many texts and the next batches repeat more.
    Every measurement is a pure function of one text, so cached values are exactly
    what measuring again would give.  Keys are SipHash-1-3 128-bit hashes of the
    text's bytes under a key drawn per process (:data:`_TEXT_KEY`), not the text,
    to bound memory: SipHash is a pseudorandom function of its key, so texts
    chosen without the key collide as random 128-bit values do (among 10**9 texts
    with probability ~1e-21), and a colliding pair cannot be prepared offline.
    Two generations of :data:`CACHE_GENERATION` texts approximate an LRU: a text
    found in the old one is copied into the new one, which replaces the old one
    when full.
    """

    def __init__(self, dtype: np.dtype, generation: int | None = None):
        self.generation = generation or CACHE_GENERATION
        self._new = _Generation(dtype, self.generation)
        self._old = _Generation(dtype, self.generation)
        self._lock = threading.Lock()  # one batch's lookup or store at a time; measuring runs outside it

    def measured(self, texts: pa.Array, measure) -> tuple[np.ndarray, np.ndarray]:
        """``(values, rows)``: the values of the distinct texts of ``texts`` (an Arrow string array without
        nulls) and, per text, its row in them; the unseen ones from one call ``measure(data, starts, ends)``
        over the :func:`_buffers` of ``texts``."""
        from distillguard.features import kernels

        data, offsets = _buffers(texts)
        keys = kernels.text_keys(data, offsets, _TEXT_KEY)
        with self._lock:
            new, old = self._new, self._old
            first, rows, distinct, in_new, in_old = kernels.find_keys(keys, new.slots, new.keys, old.slots, old.keys)
            values = np.empty(len(first), new.values.dtype)
            found_new, found_old = np.flatnonzero(in_new >= 0), np.flatnonzero(in_old >= 0)
            _records(values)[found_new] = _records(new.values)[in_new[found_new]]
            _records(values)[found_old] = _records(old.values)[in_old[found_old]]
        unseen = np.flatnonzero((in_new < 0) & (in_old < 0))
        if len(unseen):
            _records(values)[unseen] = _records(measure(data, offsets[first[unseen]], offsets[first[unseen] + 1]))
        stored = np.concatenate([found_old, unseen])  # the old generation's hits move to the new one
        with self._lock:
            self._store(distinct[stored], _records(values)[stored])
        return values, rows

    def _store(self, keys: np.ndarray, values: np.ndarray) -> None:
        done = 0
        while done < len(keys):
            room = min(self.generation - self._new.size, len(keys) - done)
            self._new.add(keys[done : done + room], values[done : done + room])
            done += room
            if self._new.size == self.generation:
                self._old.clear()
                self._old, self._new = self._new, self._old


_cache_lock = threading.Lock()


@dataclass(frozen=True)
class _IndexCaches:
    """What measuring with one benchmark index keeps between batches."""

    index: object  # held: its id stays its own
    prompts: _MeasureCache
    completions: _MeasureCache
    bench: tuple  # the index's kernel arrays
    names: pa.Array  # the index's benchmark names


_caches: dict[int, _IndexCaches] = {}


def _caches_for(index) -> _IndexCaches:
    entry = _caches.get(id(index))
    if entry is None or entry.index is not index:
        with _cache_lock:
            if len(_caches) >= 4:  # indexes come and go in tests; a scan uses one
                _caches.clear()
            names = pa.array(index.names if index is not None else [], pa.string())
            entry = _caches[id(index)] = _IndexCaches(
                index, _MeasureCache(_PROMPT_VALUES), _MeasureCache(_COMPLETION_VALUES), _benchmark_arrays(index), names
            )
    return entry


def _bands_column(values: np.ndarray, rows: np.ndarray) -> pa.ListArray:
    """The ``minhash_bands`` column of prompt ``values`` at ``rows``: a prompt's bands where it has tokens,
    else an empty list."""
    has_tokens = values["has_tokens"][rows]
    offsets = np.zeros(len(rows) + 1, np.int32)
    np.cumsum(has_tokens * np.int32(MINHASH_BANDS), out=offsets[1:])
    return pa.ListArray.from_arrays(offsets, values["minhash_bands"][rows[has_tokens]].ravel())


def measure_texts(
    prompts: Sequence[str] | pa.Array | pa.ChunkedArray,
    completions: Sequence[str | None] | pa.Array | pa.ChunkedArray,
    *,
    benchmark_index=None,
) -> dict[str, np.ndarray | pa.Array]:
    """Measure a batch of (last user message, response text) pairs (lists, or Arrow string columns; None is "").

    Returns one equal-length column per name in :data:`TEXT_COLUMNS`, each of
    its ``EVENT_SCHEMA`` type: ``prompt_chars``/``completion_chars``/
    ``prompt_hash``/``template_*_hash``/``benchmark_hits`` as int64 ndarrays,
    the flags as bool ndarrays, ``minhash_bands`` as an Arrow list<int64> array
    (an empty list for a prompt without tokens), and ``script``/``capability``/
    ``benchmark_name`` as Arrow string arrays (``benchmark_name`` null for no
    benchmark).  ``benchmark_index`` defaults to the bundled index
    (:func:`distillguard.features.benchmark_index.load_index`); pass ``False``
    to skip the benchmark lookup.

    Example:
        >>> cols = measure_texts(["Rate the response on a scale of 1 to 10."], [None])
        >>> bool(cols["rubric_grading"][0]), int(cols["completion_chars"][0]), cols["script"].to_pylist()
        (True, 0, ['latin'])
    """
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    prompts, completions = _utf8(prompts), _utf8(completions)
    if benchmark_index is None:
        from distillguard.features.benchmark_index import load_index

        benchmark_index = load_index()
    elif benchmark_index is False:
        benchmark_index = None
    caches = _caches_for(benchmark_index)
    values, rows = caches.prompts.measured(
        prompts, lambda data, starts, ends: _measure_prompts(data, starts, ends, benchmark_index, caches.bench)
    )
    completion_values, completion_rows = caches.completions.measured(completions, _measure_completions)
    benchmarks = values["benchmark_name"][rows]
    return {
        "prompt_chars": values["prompt_chars"][rows],  # characters, as len(str) counts
        "completion_chars": completion_values["completion_chars"][completion_rows],
        "prompt_hash": values["prompt_hash"][rows],
        "template_prefix_hash": values["template_prefix_hash"][rows],
        "template_suffix_hash": values["template_suffix_hash"][rows],
        "minhash_bands": _bands_column(values, rows),
        "script": _SCRIPT_NAMES.take(values["script"][rows]),
        "capability": _CAPABILITY_NAMES.take(values["capability"][rows]),
        "reasoning_elicit": values["reasoning_elicit"][rows],
        "rubric_grading": values["rubric_grading"][rows],
        "benchmark_hits": values["benchmark_hits"][rows],
        "benchmark_name": caches.names.take(pa.array(benchmarks, mask=benchmarks < 0)),
        "completion_has_reasoning": completion_values["completion_has_reasoning"][completion_rows],
    }
