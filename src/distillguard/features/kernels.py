"""Compiled per-character loops of the text measurements (numba, cached on disk).

The text measurements of :mod:`distillguard.features.text` touch every character
of every prompt; as numpy passes that is ~30 array operations per character.
These kernels do the character- and token-level steps in one pass each and return
exactly what the numpy definitions in ``text.py``'s docstring describe (the
tests compare them with a plain-Python definition):

* :func:`tokenize_codepoints`: token boundaries, the polynomial token hash,
  first code point and length per token, code/math symbol counts per segment,
  and which tokens sit inside a closed double-quoted span.
* :func:`fold_codepoints`: the lowercased, whitespace-folded, stripped form of
  each segment that the exact prompt hash is taken over.
* :func:`minhash_band_keys`: MinHash LSH band keys of each prompt's first tokens.

Numba compiles each kernel on first use (about a second) and caches the
machine code next to this file, so later processes load it in milliseconds.

Example:
    >>> import numpy as np
    >>> from distillguard.features.text import _get_tables
    >>> t = _get_tables()
    >>> cp = np.frombuffer("\\x00ab c\\x00".encode("utf-32-le"), np.uint32)
    >>> out = tokenize_codepoints(cp, t.packed, np.array([1]), np.array([4]), 0)
    >>> out[1].tolist(), out[2].tolist()   # lo, hi: segment 0 has tokens 0 and 1
    ([0], [2])
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["tokenize_codepoints", "fold_codepoints", "minhash_band_keys"]

# the packed table's layout: text.py builds the table with these values (kept numba-free so the scan
# process need not import numba); tests/features/test_kernels.py checks that they match
PK_LOWER_MASK = (1 << 21) - 1
PK_KIND_SHIFT, PK_QUOTE_SHIFT, PK_CODE_SHIFT, PK_MATH_SHIFT = 21, 23, 24, 25
KIND_WORD = 1
SYM_MATH = 1 << 12
BASE = 0x100000001B3


@njit(cache=True, nogil=True)
def _mix64(x):
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x


@njit(cache=True, nogil=True)
def tokenize_codepoints(cp, packed, seg_start, seg_len, quote_segments):
    """Tokens of the segments ``cp[seg_start[k] : seg_start[k] + seg_len[k]]``.

    ``cp`` is the UTF-32 code points of the texts joined with a separator
    (any code point that is not part of a token) before, between and after them.
    Tokens of the first ``quote_segments`` segments get their quoted flag.

    Returns ``(start, lo, hi, hashes, first_cp, length, quoted, symbols)``:
    per token its first character index, mixed hash, lowercased first code
    point, length and quoted flag; per segment its first token index ``lo``,
    one past its last ``hi``, and its code-character count plus ``SYM_MATH``
    times its math-character count.
    """
    n = len(seg_start)
    cap = len(cp)
    start = np.empty(cap, np.int64)
    hashes = np.empty(cap, np.uint64)
    first_cp = np.empty(cap, np.uint32)
    length = np.empty(cap, np.int64)
    quoted = np.zeros(cap, np.bool_)
    before = np.empty(cap, np.int64)  # quote characters in the segment before each token
    lo = np.empty(n, np.int64)
    hi = np.empty(n, np.int64)
    symbols = np.zeros(n, np.int32)
    lower_mask = np.uint32(PK_LOWER_MASK)
    base = np.uint64(BASE)
    acc_pow = base  # BASE ** (characters of the current token so far)
    t = 0
    for k in range(n):
        a = seg_start[k]
        b = a + seg_len[k]
        lo[k] = t
        n_quotes = 0
        n_code = 0
        n_math = 0
        in_word = False  # the previous character continues a word
        for i in range(a, b):
            p = packed[cp[i]]
            if (p >> np.uint32(PK_QUOTE_SHIFT)) & np.uint32(1):
                n_quotes += 1
            if (p >> np.uint32(PK_CODE_SHIFT)) & np.uint32(1):
                n_code += 1
            if (p >> np.uint32(PK_MATH_SHIFT)) & np.uint32(1):
                n_math += 1
            kind = (p >> np.uint32(PK_KIND_SHIFT)) & np.uint32(3)
            if kind == 0:
                in_word = False
                continue
            low = np.uint64(p & lower_mask)
            if kind == KIND_WORD and in_word:
                # continues token t-1: add low * BASE**(i - start)
                hashes[t - 1] += low * acc_pow
                acc_pow *= base
                length[t - 1] += 1
                continue
            start[t] = i
            hashes[t] = low
            acc_pow = base
            first_cp[t] = np.uint32(low)
            length[t] = 1
            before[t] = n_quotes
            t += 1
            in_word = kind == KIND_WORD
        hi[k] = t
        symbols[k] = n_code + SYM_MATH * n_math
        if k < quote_segments and n_quotes:
            for j in range(lo[k], t):
                quoted[j] = (before[j] & 1) == 1 and before[j] < n_quotes
    for j in range(t):
        hashes[j] = _mix64(hashes[j])
    return start[:t], lo, hi, hashes[:t], first_cp[:t], length[:t], quoted[:t], symbols


@njit(cache=True, nogil=True)
def fold_codepoints(cp, space, lower, seg_start, seg_len):
    """Each segment lowercased, whitespace runs folded to one space, ends stripped.

    Returns ``(folded, a, b)``: segment ``k`` folds to ``folded[a[k] : b[k]]``
    (code points; whitespace is ``space[c]``, lowercase ``lower[c]``).
    """
    n = len(seg_start)
    out = np.empty(len(cp), np.uint32)
    a_out = np.empty(n, np.int64)
    b_out = np.empty(n, np.int64)
    w = 0
    for k in range(n):
        a_out[k] = w
        pending = False
        started = False
        for i in range(seg_start[k], seg_start[k] + seg_len[k]):
            c = cp[i]
            if space[c]:
                pending = started
                continue
            if pending:
                out[w] = 32
                w += 1
                pending = False
            out[w] = lower[c]
            w += 1
            started = True
        b_out[k] = w
    return out[:w], a_out, b_out


@njit(cache=True, nogil=True)
def minhash_band_keys(hashes, lo, hi, max_tokens, shingle, seed_xor, perm_xor, perm_mul, rows_per_band):
    """MinHash LSH band keys of each segment's first ``max_tokens`` token hashes.

    Shingles are ``shingle`` consecutive tokens (a segment shorter than that is
    one shingle of what it has), hashed polynomially from ``hash ^ seed_xor`` and
    mixed; each permutation ``p`` maps a shingle's top 32 bits ``v`` to
    ``(v ^ perm_xor[p]) * perm_mul[p] mod 2**32`` and keeps the minimum; band
    ``j`` hashes its ``rows_per_band`` minima, starting from ``j + 0xB4D``.

    Returns ``(keys uint64 [segments, bands], has_tokens bool [segments])``.
    """
    n = len(lo)
    n_perm = len(perm_xor)
    n_bands = n_perm // rows_per_band
    keys = np.zeros((n, n_bands), np.uint64)
    has = np.zeros(n, np.bool_)
    mins = np.empty(n_perm, np.uint64)
    base = np.uint64(BASE)
    mask32 = np.uint64(0xFFFFFFFF)
    zero = np.uint64(0)
    for k in range(n):
        a = lo[k]
        b = min(hi[k], a + max_tokens)
        if b <= a:
            continue
        has[k] = True
        mins[:] = mask32
        for i in range(a, b):
            if i + shingle - 1 >= b and i != a:
                break  # no later window fits either
            acc = hashes[i] ^ seed_xor
            for j in range(1, shingle):
                acc = acc * base + (hashes[i + j] if i + j < b else zero)
            v = _mix64(acc) >> np.uint64(32)
            for p in range(n_perm):
                x = ((v ^ perm_xor[p]) * perm_mul[p]) & mask32
                if x < mins[p]:
                    mins[p] = x
        for band in range(n_bands):
            acc = np.uint64(band) + np.uint64(0xB4D)
            for r in range(rows_per_band):
                acc = _mix64(acc * base + mins[band * rows_per_band + r])
            keys[k, band] = acc
    return keys, has
