"""Compiled per-text loops of the text measurements (numba, cached on disk).

The text measurements of :mod:`distillguard.features.text` touch every character
of every prompt.  Each kernel here takes a batch of texts as their UTF-8 bytes
(``str.encode("utf-8", "surrogatepass")``, joined; text ``k`` is
``buf[offsets[k] : offsets[k + 1]]``, or ``buf[starts[k] : ends[k]]`` for the
measurements, which read a subset of a batch in place) and measures one text at
a time in scratch arrays that stay in cache, so nothing per character or per
token goes back to Python:

* :func:`token_hashes`: the token hashes of each text.
* :func:`shingle_hashes`: the sampled ``w``-token shingle hashes of token runs.
* :func:`prompt_hashes`: xxh64 of each text lowercased, whitespace-folded and stripped.
* :func:`measure_prompts`: everything :func:`distillguard.features.text.measure_texts`
  reads from a prompt in one pass: exact hash, view tokens, cue-phrase counts and
  proximities, template keys, MinHash band keys, script and symbol counts, think
  tags and benchmark shingle hits.
* :func:`measure_completions`: the same for the view of a completion (cue counts,
  symbols, number tokens, think tags).
* :func:`text_keys`, :func:`find_keys`, :func:`index_rows`: the measurement cache's
  keyed text hashes and its open-addressing tables (``text._MeasureCache``).
* :func:`siphash24`: the keyed hashes of stored prefixes (:mod:`distillguard.siphash`), here so
  that both SipHash variants share one round function (numba's cache tracks only the file a
  function is defined in: a function shared across files could run stale from another's cache).

They compute exactly what the definitions in ``text.py``'s docstring describe;
``tests/features/test_kernels.py`` compares them with plain-Python definitions.
Numba compiles each kernel on first use (seconds) and caches the machine code
next to this file, so later processes load it in milliseconds.

Example:
    >>> import numpy as np
    >>> from distillguard.features.text import _get_tables
    >>> buf = np.frombuffer("ab c".encode(), np.uint8)
    >>> hashes, lo, hi = token_hashes(buf, np.array([0, 4]), _get_tables().packed)
    >>> lo.tolist(), hi.tolist()   # text 0 has tokens 0 and 1
    ([0], [2])
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "token_hashes", "shingle_hashes", "prompt_hashes", "measure_prompts", "measure_completions",
    "text_keys", "find_keys", "index_rows", "siphash24",
]  # fmt: skip

# the packed table's layout: text.py builds the table with these values (kept numba-free so the scan
# process need not import numba); tests/features/test_kernels.py checks that they match
PK_LOWER_MASK = (1 << 21) - 1
PK_KIND_SHIFT, PK_QUOTE_SHIFT, PK_CODE_SHIFT, PK_MATH_SHIFT = 21, 23, 24, 25
PK_DIGIT_SHIFT, PK_SCRIPT_SHIFT, PK_SPACE_SHIFT = 26, 27, 31
KIND_WORD = 1
BASE = 0x100000001B3
KEY_MUL = 0x9E3779B97F4A7C15

_U1, _U32, _U33 = np.uint64(1), np.uint64(32), np.uint64(33)
_BASE = np.uint64(BASE)
_KEY_MUL = np.uint64(KEY_MUL)
_LOWER_MASK = np.uint32(PK_LOWER_MASK)
_P1, _P2, _P3 = np.uint64(0x9E3779B185EBCA87), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9)
_P4, _P5 = np.uint64(0x85EBCA77C2B2AE63), np.uint64(0x27D4EB2F165667C5)  # xxh64's primes


@njit(cache=True, nogil=True)
def _mix64(x):
    x ^= x >> _U33
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> _U33
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> _U33
    return x


@njit(cache=True, nogil=True)
def _log2(size):
    """log2 of a table size (a power of two): the table is indexed by that many top bits of a hash."""
    bits = 0
    while (1 << bits) < size:
        bits += 1
    return bits


# --------------------------------------------------------------------------- decoding


@njit(cache=True, nogil=True)
def _decode(buf, a, b, out, w, limit):
    """Code points of the UTF-8 bytes ``buf[a:b]`` into ``out[w:]``, at most ``limit``; returns the new ``w``.

    The bytes are well-formed (``str.encode`` wrote them; surrogatepass writes a lone
    surrogate as an ordinary 3-byte sequence), so nothing is validated.
    """
    i = a
    stop = w + limit
    while i < b and w < stop:
        c = np.int64(buf[i])
        if c < 0x80:
            i += 1
        elif c < 0xE0:
            c = ((c & 0x1F) << 6) | (buf[i + 1] & 0x3F)
            i += 2
        elif c < 0xF0:
            c = ((c & 0x0F) << 12) | ((buf[i + 1] & 0x3F) << 6) | (buf[i + 2] & 0x3F)
            i += 3
        else:
            c = ((c & 0x07) << 18) | ((buf[i + 1] & 0x3F) << 12) | ((buf[i + 2] & 0x3F) << 6) | (buf[i + 3] & 0x3F)
            i += 4
        out[w] = c
        w += 1
    return w


@njit(cache=True, nogil=True)
def _decode_view(buf, a, b, head, tail, out):
    """The view of the text ``buf[a:b]`` into ``out``: the whole text if it has at most
    ``head + tail`` code points, else its first ``head``, a newline and its last ``tail``.
    Returns the view's length."""
    w = _decode(buf, a, b, out, 0, head + tail + 1)
    if w <= head + tail:
        return w
    out[head] = 10
    i = b
    k = 0
    while k < tail:  # back to the first byte of the tail's first code point
        i -= 1
        k += (buf[i] & 0xC0) != 0x80  # every code point has one byte that is not a continuation
    return _decode(buf, i, b, out, head + 1, tail)


@njit(cache=True, nogil=True)
def _view_of(cp, n, head, tail, out):
    """:func:`_decode_view` of already decoded code points ``cp[:n]``: ``(array, length)``."""
    if n <= head + tail:
        return cp, n
    out[:head] = cp[:head]
    out[head] = 10
    out[head + 1 : head + 1 + tail] = cp[n - tail : n]
    return out, head + 1 + tail


# --------------------------------------------------------------------------- tokens


@njit(cache=True, nogil=True)
def _tokenize(cp, n, packed, hashes, first, length, quotes_before):
    """Tokens of ``cp[:n]``: mixed hash, packed-table word of the first character, length,
    and the number of quote characters before each token.

    Returns ``(tokens, quote characters, code characters, math characters)``.
    """
    t = 0
    n_quotes = 0
    n_code = 0
    n_math = 0
    # the current token in registers, stored when it ends
    acc = np.uint64(0)  # sum of lowercase(c_i) * BASE**i
    acc_pow = _BASE  # BASE ** (characters of the current token so far)
    size = 0
    in_word = False  # the previous character continues a word
    for i in range(n):
        p = packed[cp[i]]
        n_quotes += (p >> np.uint32(PK_QUOTE_SHIFT)) & np.uint32(1)
        n_code += (p >> np.uint32(PK_CODE_SHIFT)) & np.uint32(1)
        n_math += (p >> np.uint32(PK_MATH_SHIFT)) & np.uint32(1)
        kind = (p >> np.uint32(PK_KIND_SHIFT)) & np.uint32(3)
        if kind == 0:
            in_word = False
            continue
        low = np.uint64(p & _LOWER_MASK)
        if kind == KIND_WORD and in_word:
            acc += low * acc_pow
            acc_pow *= _BASE
            size += 1
            continue
        if t:
            hashes[t - 1] = _mix64(acc)
            length[t - 1] = size
        acc = low
        acc_pow = _BASE
        size = 1
        first[t] = p
        quotes_before[t] = n_quotes
        t += 1
        in_word = kind == KIND_WORD
    if t:
        hashes[t - 1] = _mix64(acc)
        length[t - 1] = size
    return t, n_quotes, n_code, n_math


@njit(cache=True, nogil=True)
def token_hashes(buf, offsets, packed):
    """Token hashes of each text: ``(hashes, lo, hi)``, text ``k``'s tokens being ``hashes[lo[k] : hi[k]]``."""
    n = len(offsets) - 1
    width = 1
    for k in range(n):
        width = max(width, offsets[k + 1] - offsets[k])
    cp = np.empty(width, np.uint32)
    first = np.empty(width, np.uint32)
    length = np.empty(width, np.int64)
    quotes_before = np.empty(width, np.int64)
    out = np.empty(max(len(buf), 1), np.uint64)
    lo = np.empty(n, np.int64)
    hi = np.empty(n, np.int64)
    t = 0
    for k in range(n):
        m = _decode(buf, offsets[k], offsets[k + 1], cp, 0, width)
        lo[k] = t
        ntok = _tokenize(cp, m, packed, out[t:], first, length, quotes_before)[0]
        t += ntok
        hi[k] = t
    return out[:t], lo, hi


@njit(cache=True, nogil=True)
def _sampled_shingles(hashes, a, b, w, seed_xor, sample_mask, out, m):
    """Append to ``out[m:]`` the mixed hashes of the ``w``-token windows of ``hashes[a:b]`` whose
    unmixed hash ``x`` (``hashes[i] ^ seed_xor``, then ``x * BASE + hashes[i + j]`` for each next
    token) has ``(x >> 32) & sample_mask == 0``; returns the new ``m``."""
    if b - a < w:
        return m
    top = _U1  # BASE ** (w - 1)
    for _ in range(w - 1):
        top *= _BASE
    window = np.uint64(0)  # sum of hashes[i + j] * BASE ** (w - 1 - j): rolled along, one token in and one out
    for i in range(a, a + w - 1):
        window = window * _BASE + hashes[i]
    for i in range(a, b - w + 1):
        window = window * _BASE + hashes[i + w - 1]
        x = window + ((hashes[i] ^ seed_xor) - hashes[i]) * top
        window -= hashes[i] * top
        out[m] = _mix64(x)
        m += (x >> _U32) & sample_mask == 0  # branch-free: a random half is kept
    return m


@njit(cache=True, nogil=True)
def shingle_hashes(hashes, lo, hi, w, seed_xor, sample_mask):
    """:func:`_sampled_shingles` of each run ``hashes[lo[k] : hi[k]]``: ``(hashes, run index)``."""
    out = np.empty(len(hashes), np.uint64)
    row = np.empty(len(hashes), np.int64)
    m = 0
    for k in range(len(lo)):
        m_k = _sampled_shingles(hashes, lo[k], hi[k], w, seed_xor, sample_mask, out, m)
        row[m:m_k] = k
        m = m_k
    return out[:m], row[:m]


# --------------------------------------------------------------------------- exact prompt hash


@njit(cache=True, nogil=True)
def _lane(x, i):
    return np.uint64(x[i]) | (np.uint64(x[i + 1]) << _U32)


@njit(cache=True, nogil=True)
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@njit(cache=True, nogil=True)
def _xxh_round(acc, lane):
    return _rotl(acc + lane * _P2, 31) * _P1


@njit(cache=True, nogil=True)
def _xxh64(x, n, seed):
    """xxh64 of the UTF-32-LE bytes of the code points ``x[:n]`` (little-endian: two code points per lane)."""
    i = 0
    if n >= 8:
        v1 = seed + _P1 + _P2
        v2 = seed + _P2
        v3 = seed
        v4 = seed - _P1
        while i + 8 <= n:
            v1 = _xxh_round(v1, _lane(x, i))
            v2 = _xxh_round(v2, _lane(x, i + 2))
            v3 = _xxh_round(v3, _lane(x, i + 4))
            v4 = _xxh_round(v4, _lane(x, i + 6))
            i += 8
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        for v in (v1, v2, v3, v4):
            h = (h ^ _xxh_round(np.uint64(0), v)) * _P1 + _P4
    else:
        h = seed + _P5
    h += np.uint64(4 * n)
    while i + 2 <= n:
        h ^= _xxh_round(np.uint64(0), _lane(x, i))
        h = _rotl(h, 27) * _P1 + _P4
        i += 2
    if i < n:
        h ^= np.uint64(x[i]) * _P1
        h = _rotl(h, 23) * _P2 + _P3
    h ^= h >> _U33
    h *= _P2
    h ^= h >> np.uint64(29)
    h *= _P3
    h ^= h >> _U32
    return h


@njit(cache=True, nogil=True)
def _folded_hash(cp, n, packed, folded, seed):
    """xxh64 of ``cp[:n]`` lowercased, whitespace runs folded to one space, ends stripped."""
    # unsigned throughout: an unsigned index needs no negative-index check (a third faster)
    w = np.uint64(0)
    pending = np.uint64(0)  # a space is due before the next other character
    started = np.uint64(0)
    for i in range(np.uint64(n)):
        c = cp[i]
        p = packed[c]
        other = _U1 - np.uint64((p >> np.uint32(PK_SPACE_SHIFT)) & np.uint32(1))
        # branch-free (spaces come at random): a write that is not kept is overwritten by the next one
        folded[w] = 32
        w += pending & other
        # a character that is not part of a token has no lowercase mapping
        folded[w] = p & _LOWER_MASK if (p >> np.uint32(PK_KIND_SHIFT)) & np.uint32(3) else c
        w += other
        started |= other
        pending = started & (_U1 - other)
    return _xxh64(folded, np.int64(w), seed)


@njit(cache=True, nogil=True)
def prompt_hashes(buf, offsets, packed, seed):
    """:func:`_folded_hash` of each text (uint64)."""
    n = len(offsets) - 1
    width = 1
    for k in range(n):
        width = max(width, offsets[k + 1] - offsets[k])
    cp = np.empty(width, np.uint32)
    folded = np.empty(width, np.uint32)
    out = np.empty(n, np.uint64)
    for k in range(n):
        m = _decode(buf, offsets[k], offsets[k + 1], cp, 0, width)
        out[k] = _folded_hash(cp, m, packed, folded, seed)
    return out


# --------------------------------------------------------------------------- per-text steps


@njit(cache=True, nogil=True)
def _code_points(buf, a, b):
    """Code points of the UTF-8 bytes ``buf[a:b]``: the bytes that are not continuation bytes, as Arrow's
    ``utf8_length`` counts them."""
    n = 0
    for i in range(np.uint64(a), np.uint64(b)):  # unsigned: no negative-index check, so it vectorizes
        n += (buf[i] & 0xC0) != 0x80
    return n


@njit(cache=True, nogil=True)
def _count(cp, n, c):
    found = 0
    for i in range(n):  # vectorizes
        found += cp[i] == c
    return found


@njit(cache=True, nogil=True)
def _has_tag(cp, n, tags, tag_start):
    """Whether one of the strings ``tags[tag_start[j] : tag_start[j + 1]]`` occurs in ``cp[:n]``."""
    for j in range(len(tag_start) - 1):
        a, b = tag_start[j], tag_start[j + 1]
        if not _count(cp, n, tags[a]):  # the common case: the tag's first character is rare
            continue
        for i in range(n - (b - a) + 1):
            k = 0
            while k < b - a and cp[i + k] == tags[a + k]:
                k += 1
            if k == b - a:
                return True
    return False


@njit(cache=True, nogil=True)
def _phrase_slot(key, n, table_bits):
    """Where the open-addressing phrase table starts looking for the length-``n`` prefix ``key``."""
    return _mix64(key ^ np.uint64(n)) >> np.uint64(64 - table_bits)


@njit(cache=True, nogil=True)
def _match_cues(hashes, ntok, cues, vid, pos, mask):
    """Cue-phrase occurrences in ``hashes[:ntok]`` into ``pos`` / ``mask`` (start token, class
    bitmask), by start and then length; returns their number.

    ``cues`` is ``(vocab, slot, mask1, prefix1, keys, lengths, masks, max_len)``: the sorted
    phrase words; over the top bits of a hash the id + 1 of the word with those bits (0 = none;
    negated when several words share them: the first of them); by word id + 1 the classes of the
    one-word phrases and whether a longer phrase starts with it; and an open-addressing table
    (slot :func:`_phrase_slot`, then the next ones until an empty slot, ``lengths == 0``) of
    every phrase prefix of two or more words (key = word ids + 1 folded with ``KEY_MUL``) with
    the classes of the whole phrases ending there (0 for a prefix only).
    """
    vocab, slot, mask1, prefix1, keys, lengths, masks, max_len = cues
    shift = np.uint64(64 - _log2(len(slot)))
    table_bits = _log2(len(keys))
    for i in range(ntok):
        h = hashes[i]
        s = slot[h >> shift]
        if s >= 0:  # no word or one word with these bits (branch-free: half the tokens are phrase words)
            vid[i] = s if (s > 0) & (vocab[max(s, 1) - 1] == h) else 0
            continue
        v = 0
        for j in range(-s - 1, len(vocab)):  # the sorted words from the first with these bits
            if vocab[j] >= h:
                v = j + 1 if vocab[j] == h else 0
                break
        vid[i] = v
    m = 0
    for i in range(ntok):
        v1 = vid[i]
        if v1 == 0:
            continue
        if mask1[v1] != 0:
            pos[m] = i
            mask[m] = mask1[v1]
            m += 1
        if not prefix1[v1]:
            continue
        acc = np.uint64(v1)
        for n in range(2, max_len + 1):
            j = i + n - 1
            if j >= ntok or vid[j] == 0:
                break
            acc = acc * _KEY_MUL + np.uint64(vid[j])
            k = _phrase_slot(acc, n, table_bits)
            while lengths[k] != 0 and (keys[k] != acc or lengths[k] != n):
                k = (k + _U1) & np.uint64(len(keys) - 1)
            if lengths[k] == 0:
                break  # no phrase starts this way
            if masks[k] != 0:
                pos[m] = i
                mask[m] = masks[k]
                m += 1
    return m


@njit(cache=True, nogil=True)
def _cue_counts(pos, mask, m, near_terms, counts, near):
    """Per cue class its occurrences (``counts``); per near term ``(a, b, window)`` whether an
    occurrence of class ``a`` starts within ``window`` tokens of one of class ``b`` (``near``;
    not the same occurrence, and for ``a == b`` not at the same token)."""
    present = np.uint64(0)  # the classes that occur
    for e in range(m):
        present |= mask[e]
        for c in range(len(counts)):
            counts[c] += (mask[e] >> np.uint64(c)) & _U1
    near_a, near_b, near_w = near_terms
    for t in range(len(near_a)):
        abit = _U1 << np.uint64(near_a[t])
        bbit = _U1 << np.uint64(near_b[t])
        if not (present & abit and present & bbit):
            near[t] = False
            continue
        same = near_a[t] == near_b[t]
        w = near_w[t]
        found = False
        last = -1  # start of the latest class-a occurrence before this one
        for e in range(m):
            if mask[e] & bbit:
                p = pos[e]
                if (mask[e] & abit and not same) or (last >= 0 and p - last <= w and (p != last or not same)):
                    found = True
                    break
            if mask[e] & abit:
                last = pos[e]
        following = -1  # start of the earliest class-a occurrence after this one
        for e in range(m - 1, -1, -1):
            if found:
                break
            p = pos[e]
            found = (mask[e] & bbit) != 0 and following >= 0 and following - p <= w and (p != following or not same)
            if mask[e] & abit:
                following = p
        near[t] = found


@njit(cache=True, nogil=True)
def _digit_tokens(first, ntok):
    n = 0
    for i in range(ntok):
        n += (first[i] >> np.uint32(PK_DIGIT_SHIFT)) & np.uint32(1)
    return n


@njit(cache=True, nogil=True)
def _template_keys(hashes, first, quotes_before, ntok, n_quotes, template, kept):
    """Prefix and suffix keys (0 = none) of the tokens with numbers and closed quoted spans
    replaced by placeholders (one per span)."""
    words, min_words, num_mark, quote_mark = template
    m = 0
    prev_quoted = False
    for i in range(ntok):
        quoted = n_quotes > 0 and quotes_before[i] & 1 == 1 and quotes_before[i] < n_quotes
        if quoted and prev_quoted:
            continue
        prev_quoted = quoted
        if quoted:
            kept[m] = quote_mark
        elif (first[i] >> np.uint32(PK_DIGIT_SHIFT)) & np.uint32(1):
            kept[m] = num_mark
        else:
            kept[m] = hashes[i]
        m += 1
    if m < min_words:
        return np.uint64(0), np.uint64(0)
    prefix = np.uint64(0x5052)
    suffix = np.uint64(0x5355)
    for k in range(words):
        prefix = _mix64(prefix * _BASE + kept[k])
        suffix = _mix64(suffix * _BASE + kept[m - words + k])
    # 0 means "no key"
    return max(prefix, _U1), max(suffix, _U1)


@njit(cache=True, nogil=True)
def _band_keys(hashes, ntok, minhash, shingles, keys):
    """MinHash LSH band keys of ``hashes[:min(ntok, max_tokens)]`` into ``keys`` (``shingles``: scratch
    of ``max_tokens``).

    Shingles are ``shingle`` consecutive tokens (a text shorter than that is one
    shingle of what it has), hashed polynomially from ``hash ^ seed_xor`` and
    mixed; each permutation ``p`` maps a shingle's top 32 bits ``v`` to
    ``(v ^ perm_xor[p]) * perm_mul[p] mod 2**32`` and keeps the minimum; band
    ``j`` hashes its ``rows_per_band`` minima, starting from ``j + 0xB4D``.
    """
    max_tokens, shingle, seed_xor, perm_xor, perm_mul, rows_per_band = minhash
    b = min(ntok, max_tokens)
    m = 0
    for i in range(b):
        if i + shingle - 1 >= b and i != 0:
            break  # no later window fits either
        acc = hashes[i] ^ seed_xor
        for j in range(1, shingle):
            acc = acc * _BASE + (hashes[i + j] if i + j < b else np.uint64(0))
        shingles[m] = np.uint32(_mix64(acc) >> _U32)
        m += 1
    for band in range(len(keys)):
        acc = np.uint64(band) + np.uint64(0xB4D)
        for r in range(rows_per_band):
            p = band * rows_per_band + r
            low = np.uint32(0xFFFFFFFF)
            for i in range(m):  # one permutation over all shingles: uint32 arithmetic is mod 2**32, and vectorizes
                low = min(low, np.uint32((shingles[i] ^ perm_xor[p]) * perm_mul[p]))
            acc = _mix64(acc * _BASE + np.uint64(low))
        keys[band] = acc


@njit(cache=True, nogil=True)
def _benchmark_hits(hashes, ntok, bench, shingles, per_name):
    """Sampled shingles of ``hashes[:ntok]`` found in the benchmark index: ``(hits, id of the
    benchmark with most hits, first on ties; -1 without hits)``.

    ``bench`` is ``(sorted shingle hashes, benchmark id per hash, bloom bits over the top
    bits of the hashes, where the hashes of each value of their top bits start, shingle words,
    seed_xor, sample_mask)``.
    """
    index_hashes, index_ids, bloom, starts, w, seed_xor, sample_mask = bench
    if not len(index_hashes):
        return 0, -1
    m = _sampled_shingles(hashes, 0, ntok, w, seed_xor, sample_mask, shingles, 0)
    bloom_shift = np.uint64(64 - 3 - _log2(len(bloom)))  # 8 bits a byte
    bucket_shift = np.uint64(64 - _log2(len(starts) - 1))
    per_name[:] = 0
    hits = 0
    for i in range(m):
        x = shingles[i]
        top = x >> bloom_shift
        if not (bloom[top >> np.uint64(3)] >> (top & np.uint64(7))) & 1:
            continue
        bucket = x >> bucket_shift
        for j in range(starts[bucket], starts[bucket + 1]):
            if index_hashes[j] >= x:
                if index_hashes[j] == x:
                    hits += 1
                    per_name[index_ids[j]] += 1
                break
    if not hits:
        return 0, -1
    return hits, np.argmax(per_name)


# --------------------------------------------------------------------------- whole measurements


@njit(cache=True, nogil=True)
def measure_prompts(
    buf, starts, ends, packed, hash_seed, view, tags, tag_start, cues, near_terms, n_classes, template, minhash, bench,
    n_names, n_scripts,
):
    """Everything measured from each prompt ``buf[starts[k] : ends[k]]`` (``view = (head, tail)``;
    the other parameters as the step functions above describe them).

    Returns per prompt: ``chars`` (:func:`_code_points`), ``hash`` (uint64), ``prefix``,
    ``suffix`` (uint64, 0 = none), ``bands`` ([prompts, bands] uint64), ``script_chars``
    ([prompts, scripts]: characters of the tokens by the script of their first character),
    ``cue_counts`` ([prompts, classes]),
    ``near`` ([prompts, near terms]), ``code_chars``, ``math_chars``, ``digit_tokens``
    (tokens starting with a digit), ``tokens``, ``tagged`` (a tag occurs in the view),
    ``bench_hits`` and ``bench_best``; everything but ``chars`` and ``hash`` is of the view.
    """
    head, tail = view
    n = len(starts)
    width = 1
    for k in range(n):
        width = max(width, ends[k] - starts[k])
    view_width = head + tail + 1
    max_len = cues[7]
    cp = np.empty(width, np.uint32)
    folded = np.empty(width, np.uint32)
    view_cp = np.empty(view_width, np.uint32)
    hashes = np.empty(view_width, np.uint64)
    first = np.empty(view_width, np.uint32)
    length = np.empty(view_width, np.int64)
    quotes_before = np.empty(view_width, np.int64)
    kept = np.empty(view_width, np.uint64)
    vid = np.empty(view_width, np.int64)
    pos = np.empty(view_width * max_len, np.int64)
    mask = np.empty(view_width * max_len, np.uint64)
    band_shingles = np.empty(minhash[0], np.uint32)
    shingles = np.empty(view_width, np.uint64)
    per_name = np.zeros(max(n_names, 1), np.int64)
    chars = np.empty(n, np.int64)
    out_hash = np.empty(n, np.uint64)
    prefix = np.empty(n, np.uint64)
    suffix = np.empty(n, np.uint64)
    bands = np.zeros((n, len(minhash[3]) // minhash[5]), np.uint64)
    script_chars = np.zeros((n, n_scripts), np.int64)
    cue_counts = np.zeros((n, n_classes), np.int32)
    near = np.zeros((n, len(near_terms[0])), np.bool_)
    code_chars = np.empty(n, np.int64)
    math_chars = np.empty(n, np.int64)
    digit_tokens = np.empty(n, np.int64)
    tokens = np.empty(n, np.int64)
    tagged = np.empty(n, np.bool_)
    bench_hits = np.empty(n, np.int64)
    bench_best = np.empty(n, np.int64)
    for k in range(n):
        m = _decode(buf, starts[k], ends[k], cp, 0, width)
        chars[k] = _code_points(buf, starts[k], ends[k])
        out_hash[k] = _folded_hash(cp, m, packed, folded, hash_seed)
        v, nv = _view_of(cp, m, head, tail, view_cp)
        tagged[k] = _has_tag(v, nv, tags, tag_start)
        ntok, n_quotes, code_chars[k], math_chars[k] = _tokenize(v, nv, packed, hashes, first, length, quotes_before)
        tokens[k] = ntok
        n_cues = _match_cues(hashes, ntok, cues, vid, pos, mask)
        _cue_counts(pos, mask, n_cues, near_terms, cue_counts[k], near[k])
        digit_tokens[k] = _digit_tokens(first, ntok)
        prefix[k], suffix[k] = _template_keys(hashes, first, quotes_before, ntok, n_quotes, template, kept)
        if ntok:
            _band_keys(hashes, ntok, minhash, band_shingles, bands[k])
        for i in range(ntok):
            script_chars[k, (first[i] >> np.uint32(PK_SCRIPT_SHIFT)) & np.uint32(15)] += length[i]
        bench_hits[k], bench_best[k] = _benchmark_hits(hashes, ntok, bench, shingles, per_name)
    return (
        chars, out_hash, prefix, suffix, bands, script_chars, cue_counts, near,
        code_chars, math_chars, digit_tokens, tokens, tagged, bench_hits, bench_best,
    )  # fmt: skip


@njit(cache=True, nogil=True)
def measure_completions(buf, starts, ends, packed, view, tags, tag_start, cues, n_classes):
    """What is measured from the view of each completion ``buf[starts[k] : ends[k]]`` (``view =
    (head, tail)``): ``chars`` (of the whole completion), ``cue_counts`` ([completions, classes]),
    ``code_chars``, ``math_chars``, ``digit_tokens`` and ``tagged``, as :func:`measure_prompts` returns them."""
    head, tail = view
    n = len(starts)
    view_width = head + tail + 1
    max_len = cues[7]
    view_cp = np.empty(view_width, np.uint32)
    hashes = np.empty(view_width, np.uint64)
    first = np.empty(view_width, np.uint32)
    length = np.empty(view_width, np.int64)
    quotes_before = np.empty(view_width, np.int64)
    vid = np.empty(view_width, np.int64)
    pos = np.empty(view_width * max_len, np.int64)
    mask = np.empty(view_width * max_len, np.uint64)
    no_terms = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    no_near = np.zeros(0, np.bool_)
    chars = np.empty(n, np.int64)
    cue_counts = np.zeros((n, n_classes), np.int32)
    code_chars = np.empty(n, np.int64)
    math_chars = np.empty(n, np.int64)
    digit_tokens = np.empty(n, np.int64)
    tagged = np.empty(n, np.bool_)
    for k in range(n):
        chars[k] = _code_points(buf, starts[k], ends[k])
        nv = _decode_view(buf, starts[k], ends[k], head, tail, view_cp)
        tagged[k] = _has_tag(view_cp, nv, tags, tag_start)
        ntok, _, code_chars[k], math_chars[k] = _tokenize(view_cp, nv, packed, hashes, first, length, quotes_before)
        n_cues = _match_cues(hashes, ntok, cues, vid, pos, mask)
        _cue_counts(pos, mask, n_cues, no_terms, cue_counts[k], no_near)
        digit_tokens[k] = _digit_tokens(first, ntok)
    return chars, cue_counts, code_chars, math_chars, digit_tokens, tagged


# --------------------------------------------------------------------------- measurement cache

_SIP0, _SIP1 = np.uint64(0x736F6D6570736575), np.uint64(0x646F72616E646F6D)
_SIP2, _SIP3 = np.uint64(0x6C7967656E657261), np.uint64(0x7465646279746573)


@njit(cache=True, nogil=True)
def _sip_round(v0, v1, v2, v3):
    v0 += v1
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 += v3
    v3 = _rotl(v3, 16) ^ v2
    v0 += v3
    v3 = _rotl(v3, 21) ^ v0
    v2 += v1
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


@njit(cache=True, nogil=True)
def _word(buf, i):
    """The little-endian 64-bit word at ``buf[i]`` (``i`` unsigned: no negative-index check, so
    the eight loads compile to one unaligned load)."""
    w = np.uint64(buf[i])
    for j in range(1, 8):
        w |= np.uint64(buf[i + np.uint64(j)]) << np.uint64(8 * j)
    return w


@njit(cache=True, nogil=True)
def _sip_absorb(buf, a, b, v0, v1, v2, v3, c_rounds):
    """The SipHash state after the message ``buf[a:b]`` (``a``, ``b`` unsigned), ``c_rounds``
    compression rounds per 8-byte word, the last word carrying the length's low byte."""
    i = a
    while i + np.uint64(8) <= b:
        m = _word(buf, i)
        v3 ^= m
        for _ in range(c_rounds):
            v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
        v0 ^= m
        i += np.uint64(8)
    m = (b - a) << np.uint64(56)  # the length's low byte over the last 0-7 bytes
    shift = np.uint64(0)
    while i < b:
        m |= np.uint64(buf[i]) << shift
        i += _U1
        shift += np.uint64(8)
    v3 ^= m
    for _ in range(c_rounds):
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    v0 ^= m
    return v0, v1, v2, v3


@njit(cache=True, nogil=True)
def text_keys(buf, offsets, key):
    """SipHash-1-3 with 128-bit output of each text's bytes under ``key = (k0, k1)``: [texts, 2] uint64
    (the reference implementation's two output words, little-endian)."""
    k0, k1 = key
    n = len(offsets) - 1
    out = np.empty((n, 2), np.uint64)
    for k in range(n):
        a, b = np.uint64(offsets[k]), np.uint64(offsets[k + 1])
        v0, v1, v2, v3 = _sip_absorb(buf, a, b, k0 ^ _SIP0, k1 ^ _SIP1 ^ np.uint64(0xEE), k0 ^ _SIP2, k1 ^ _SIP3, 1)
        v2 ^= np.uint64(0xEE)
        for _ in range(3):
            v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
        out[k, 0] = v0 ^ v1 ^ v2 ^ v3
        v1 ^= np.uint64(0xDD)
        for _ in range(3):
            v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
        out[k, 1] = v0 ^ v1 ^ v2 ^ v3
    return out


@njit(cache=True, nogil=True)
def siphash24(buf, offsets, k0, k1, out):
    """``out[k]`` = SipHash-2-4 (64-bit output) under the key ``(k0, k1)`` of each text's bytes
    ``buf[offsets[k] : offsets[k + 1]]`` (:func:`distillguard.siphash.siphash24_column`)."""
    for k in range(len(offsets) - 1):
        a, b = np.uint64(offsets[k]), np.uint64(offsets[k + 1])
        v0, v1, v2, v3 = _sip_absorb(buf, a, b, k0 ^ _SIP0, k1 ^ _SIP1, k0 ^ _SIP2, k1 ^ _SIP3, 2)
        v2 ^= np.uint64(0xFF)
        for _ in range(4):
            v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
        out[k] = v0 ^ v1 ^ v2 ^ v3


@njit(cache=True, nogil=True)
def _find_key(slots, keys, k0, k1):
    """``(slot, row)`` of the key ``(k0, k1)`` in an open-addressing table over the rows of ``keys``
    (``slots`` a power of two long, each row + 1 or 0 for empty, probed from the key's low bits):
    its row, or -1 and the empty slot where it would go."""
    mask = np.uint64(len(slots) - 1)
    s = k0 & mask
    while slots[s] != 0:
        row = slots[s] - 1
        if keys[row, 0] == k0 and keys[row, 1] == k1:
            return s, row
        s = (s + _U1) & mask
    return s, -1


@njit(cache=True, nogil=True)
def find_keys(keys, new_slots, new_keys, old_slots, old_keys):
    """The distinct rows of ``keys`` ([n, 2]) and where each is in two :func:`_find_key` tables.

    Returns ``(first, inverse, distinct, in_new, in_old)``: per distinct key the position of its
    first occurrence; per position its distinct key's number; the distinct keys; and per distinct
    key its row in the new table (-1 = absent) and, where absent there, in the old one.
    """
    n = len(keys)
    slots = np.zeros(1 << _log2(2 * n), np.int32)  # at most half full
    distinct = np.empty((n, 2), np.uint64)
    first = np.empty(n, np.int64)
    inverse = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        s, d = _find_key(slots, distinct, keys[i, 0], keys[i, 1])
        if d < 0:
            d = m
            slots[s] = m + 1
            distinct[m] = keys[i]
            first[m] = i
            m += 1
        inverse[i] = d
    in_new = np.empty(m, np.int64)
    in_old = np.full(m, -1, np.int64)
    for d in range(m):
        in_new[d] = _find_key(new_slots, new_keys, distinct[d, 0], distinct[d, 1])[1]
        if in_new[d] < 0:
            in_old[d] = _find_key(old_slots, old_keys, distinct[d, 0], distinct[d, 1])[1]
    return first[:m], inverse, distinct[:m], in_new, in_old


@njit(cache=True, nogil=True)
def index_rows(slots, keys, lo, hi):
    """Enter rows ``lo..hi - 1`` of ``keys`` into their :func:`_find_key` table (a key already there keeps its row)."""
    for row in range(lo, hi):
        s, found = _find_key(slots, keys, keys[row, 0], keys[row, 1])
        if found < 0:
            slots[s] = row + 1
