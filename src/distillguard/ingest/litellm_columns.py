"""LiteLLM ``StandardLoggingPayload`` lines straight to exchange columns, in compiled code.

The contract: **a line this module takes becomes exactly the row the Python
reader gives it; anything unusual is left to the Python reader.**  For a taken
line, the row equals ``exchange_table(LiteLLMReader().parse_lines(path, [(line_no,
raw)]))`` value for value (floats bit for bit).  A line is left when it is not
JSON orjson reads, when the Python reader would quarantine it, and whenever
mapping it needs more than the common case covers (ids derived from a line
hash, content-part lists, user agents from headers, numbers not converted
exactly, duplicate keys, ...).  Leaving a line is always correct, only slower.

Why: ``orjson.loads`` plus :func:`~distillguard.ingest.litellm.litellm_event` plus
:func:`~distillguard.normalize.exchange_table` cost ~30 µs a line, most of it
building Python objects that are thrown away a moment later.  Here one numba
pass per block walks each line's bytes once: it validates the whole line as
JSON, notes where the values the mapping reads are (a few dozen *slots*,
:data:`_FIELDS`), and maps them to one row of columns (string cells as
positions in the block, numbers with validity flags).  One more pass decodes
the string cells into Arrow buffers.  No Python object is made per taken line.

Two parts: generic JSON scanning over bytes (validate, locate, decode tokens),
then the LiteLLM walk and mapping built on it.

Example:
    >>> block = (b'{"id":"c1","startTime":1.7e9,"model":"m","messages":[{"role":"user","content":"hi"}]}\\n'
    ...          b'{"id":"c2","startTime":"2024-01-01T00:00:00Z"}\\n')
    >>> table, left = litellm_columns(block, 1, "x.jsonl")  # doctest: +SKIP
    >>> table.column("prompt_text").to_pylist(), [n for n, _ in left]  # doctest: +SKIP
    (['hi'], [2])
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from numba import njit

from distillguard.normalize import EXCHANGE_SCHEMA

__all__ = ["litellm_columns", "decode_string", "parse_number"]

# =========================================================================== JSON scanning
#
# Generic: validate and locate JSON tokens in a uint8 buffer without building objects.  Each scanner
# takes byte positions and returns the position just past what it scanned, or -1 when the bytes are
# not JSON exactly as orjson accepts it, or are JSON this module should not interpret:
#
# * anything orjson refuses: invalid UTF-8, control characters in strings, bad or lone-surrogate
#   escapes, leading zeros, NaN, trailing commas, ...;
# * valid JSON orjson reads as something unusual: integers of more than 18 digits (orjson turns huge
#   ones into floats), numbers that may overflow a double (orjson refuses those), exponents beyond
#   +-400, nesting deeper than MAX_DEPTH.
#
# A line feed is never whitespace here: a line feed always ends a line (strings cannot hold a raw one).
# Numbers are converted exactly or not at all (scan_number: Clinger's fast path).
#
# It lives in this module, not one of its own, on purpose: numba's on-disk cache notices changes to
# the file of the function it compiled only, so a scanner edited in another file would stay stale,
# inlined into this file's cached kernels.

#: Kinds of a JSON value, as token scanners record them (ABSENT: the key was not there).
ABSENT, NULL, FALSE, TRUE, STRING, INT, FLOAT, OBJECT, ARRAY = range(9)

#: Deepest nesting :func:`skip_value` follows (orjson's limit is 1024; real logs stay far below this).
MAX_DEPTH = 60

_QUOTE, _BACKSLASH = 0x22, 0x5C
_LBRACE, _RBRACE, _LBRACKET, _RBRACKET, _COMMA, _COLON = 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A
_MINUS, _PLUS, _DOT, _ZERO, _NINE = 0x2D, 0x2B, 0x2E, 0x30, 0x39
_U1, _U2, _U3, _U4, _U5, _U6, _U7, _U8 = (np.uint64(k) for k in range(1, 9))
_U16, _U24, _U32, _U40, _U48, _U56 = (np.uint64(k) for k in range(16, 57, 8))
# byte-wise constants of _has_special_byte
_ONES, _HIGH_BITS = np.uint64(0x0101010101010101), np.uint64(0x8080808080808080)
_QUOTES, _BACKSLASHES = np.uint64(0x2222222222222222), np.uint64(0x5C5C5C5C5C5C5C5C)
_SPACES = np.uint64(0x2020202020202020)

#: Largest integer a double holds exactly; larger decimal mantissas are not converted.
_MAX_EXACT_MANTISSA = 1 << 53
#: 10**0 .. 10**22: every one exact as a double (the condition of Clinger's fast path).
_POW10 = np.array([float(10**k) for k in range(23)])


def _string_byte_classes() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What each byte can be inside a JSON string, and for UTF-8 lead bytes the allowed second byte and length.

    The second-byte ranges exclude overlong forms (E0, F0), UTF-16 surrogates (ED)
    and code points above U+10FFFF (F4), as a strict UTF-8 decoder does.
    """
    classes = np.full(256, 4, np.uint8)  # 4: never valid here (control character, stray continuation, C0, F5..)
    classes[0x20:0x80] = 0  # 0: plain ASCII
    classes[_QUOTE] = 1  # 1: ends the string
    classes[_BACKSLASH] = 2  # 2: starts an escape
    second_lo = np.zeros(256, np.uint8)
    second_hi = np.zeros(256, np.uint8)
    length = np.zeros(256, np.uint8)
    for lead in range(0xC2, 0xF5):
        classes[lead] = 3  # 3: starts a multi-byte UTF-8 sequence
        second_lo[lead], second_hi[lead] = 0x80, 0xBF
        length[lead] = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    second_lo[0xE0], second_hi[0xED] = 0xA0, 0x9F
    second_lo[0xF0], second_hi[0xF4] = 0x90, 0x8F
    return classes, second_lo, second_hi, length


_CLASS, _SECOND_LO, _SECOND_HI, _SEQ_LEN = _string_byte_classes()
_PLAIN, _END, _ESCAPE, _MULTIBYTE = 0, 1, 2, 3

#: The byte each one-character escape stands for (0: not a valid escape; ``u`` is handled apart).
_SIMPLE_ESCAPES = np.zeros(256, np.uint8)
for _char, _byte in zip(b'"\\/bfnrt', b'"\\/\b\f\n\r\t'):
    _SIMPLE_ESCAPES[_char] = _byte


@njit(cache=True, nogil=True)
def skip_ws(buf, i, end):
    """The first position at or after ``i`` that is not a space, tab or carriage return (a line feed ends a line)."""
    while i < end:
        c = buf[i]
        if c != 0x20 and c != 0x09 and c != 0x0D:
            return i
        i += 1
    return i


@njit(cache=True, nogil=True)
def _hex4(buf, i, end):
    """The value of the four hex digits at ``buf[i:i+4]``, or -1."""
    if i + 4 > end:
        return -1
    value = 0
    for k in range(i, i + 4):
        c = buf[k]
        if 0x30 <= c <= 0x39:
            digit = c - 0x30
        elif 0x41 <= c <= 0x46:
            digit = c - 0x37
        elif 0x61 <= c <= 0x66:
            digit = c - 0x57
        else:
            return -1
        value = value * 16 + digit
    return value


@njit(cache=True, nogil=True)
def _scan_escape(buf, i, end):
    """Past the escape starting at the backslash ``buf[i]``, or -1 (unknown escape, lone surrogate)."""
    if i + 1 >= end:
        return -1
    c = buf[i + 1]
    if c != 0x75:  # not \u
        return i + 2 if _SIMPLE_ESCAPES[c] != 0 else -1
    unit = _hex4(buf, i + 2, end)
    if unit < 0 or 0xDC00 <= unit <= 0xDFFF:  # a low surrogate cannot come first
        return -1
    if unit < 0xD800 or unit > 0xDBFF:
        return i + 6
    # a high surrogate: only valid followed by a low one
    if i + 7 >= end or buf[i + 6] != _BACKSLASH or buf[i + 7] != 0x75:
        return -1
    low = _hex4(buf, i + 8, end)
    if low < 0xDC00 or low > 0xDFFF:
        return -1
    return i + 12


@njit(cache=True, nogil=True)
def _word(buf, u):
    """The 8 bytes at ``buf[u:]`` as one little-endian integer (LLVM makes it a single load)."""
    return (np.uint64(buf[u]) | np.uint64(buf[u + _U1]) << _U8 | np.uint64(buf[u + _U2]) << _U16
            | np.uint64(buf[u + _U3]) << _U24 | np.uint64(buf[u + _U4]) << _U32
            | np.uint64(buf[u + _U5]) << _U40 | np.uint64(buf[u + _U6]) << _U48
            | np.uint64(buf[u + _U7]) << _U56)  # fmt: skip


@njit(cache=True, nogil=True)
def _has_special_byte(v):
    """Whether any of the 8 bytes of ``v`` is not plain string text: ``"``, ``\\``, below 0x20 or above 0x7F.

    The classic has-zero-byte test (Hacker's Delight) per condition: exact for "any byte".
    """
    quote, backslash = v ^ _QUOTES, v ^ _BACKSLASHES
    return ((v | ((quote - _ONES) & ~quote) | ((backslash - _ONES) & ~backslash) | ((v - _SPACES) & ~v))
            & _HIGH_BITS) != 0  # fmt: skip


@njit(cache=True, nogil=True)
def _plain_run(buf, i, end):
    """The first position at or after ``i`` that is not plain ASCII string text (or ``end``).

    Most bytes of a log are here: 8 at a time while none is special, then one by
    one.  The index is unsigned: numba then skips its negative-index check,
    which halves the time per byte.
    """
    u, stop = np.uint64(i), np.uint64(end)
    while u + _U8 <= stop and not _has_special_byte(_word(buf, u)):
        u += _U8
    while u < stop and _CLASS[buf[u]] == _PLAIN:
        u += _U1
    return np.int64(u)


@njit(cache=True, nogil=True)
def scan_string(buf, i, end):
    """Validate the string whose opening quote is ``buf[i]``: ``(position past its closing quote, has escapes)``.

    The position is -1 for anything orjson refuses.  The text is ``buf[i + 1 : position - 1]``.
    """
    i += 1
    escaped = False
    while i < end:
        i = _plain_run(buf, i, end)
        if i >= end:
            break
        c = buf[i]
        kind = _CLASS[c]
        if kind == _END:
            return i + 1, escaped
        elif kind == _ESCAPE:
            escaped = True
            i = _scan_escape(buf, i, end)
            if i < 0:
                return -1, escaped
        elif kind == _MULTIBYTE:
            n = _SEQ_LEN[c]
            if i + n > end or not (_SECOND_LO[c] <= buf[i + 1] <= _SECOND_HI[c]):
                return -1, escaped
            for k in range(i + 2, i + n):
                if buf[k] & 0xC0 != 0x80:
                    return -1, escaped
            i += n
        else:
            return -1, escaped
    return -1, escaped


@njit(cache=True, nogil=True)
def scan_number(buf, i, end):
    """Validate the number starting at ``buf[i]``: ``(position past it, is_int, int_value, float_value, exact)``.

    ``is_int``: no fraction or exponent (orjson makes it a Python int, ``int_value``;
    ``float_value`` is ``float(int_value)``).  ``exact``: ``float_value`` is exactly
    Python's ``float()`` of the token (Clinger's fast path; always true for an int of
    at most 2**53).  The position is -1 when the token is invalid, is an int of more
    than 18 digits, or may overflow a double.
    """
    j = i
    negative = False
    if j < end and buf[j] == _MINUS:
        negative = True
        j += 1
    if j >= end or not (_ZERO <= buf[j] <= _NINE):
        return -1, False, 0, 0.0, False
    mantissa = 0
    significant = 0  # digits in mantissa, from the first non-zero one
    truncated = False  # digits beyond 18 significant ones were dropped: not exact
    int_digits = 0
    scale = 0  # the value is mantissa * 10**(scale + exponent)
    if buf[j] == _ZERO:
        j += 1
        int_digits = 1
        if j < end and _ZERO <= buf[j] <= _NINE:
            return -1, False, 0, 0.0, False  # leading zero
    else:
        while j < end and _ZERO <= buf[j] <= _NINE:
            if significant < 18:
                mantissa = mantissa * 10 + (buf[j] - _ZERO)
                significant += 1
            else:
                truncated = True
            int_digits += 1
            j += 1
    is_int = True
    if j < end and buf[j] == _DOT:
        is_int = False
        j += 1
        if j >= end or not (_ZERO <= buf[j] <= _NINE):
            return -1, False, 0, 0.0, False
        while j < end and _ZERO <= buf[j] <= _NINE:
            digit = buf[j] - _ZERO
            if significant < 18:
                if mantissa != 0 or digit != 0:
                    significant += 1
                mantissa = mantissa * 10 + digit
                scale -= 1
            elif digit != 0:
                truncated = True
            j += 1
    exponent = 0
    if j < end and (buf[j] == 0x65 or buf[j] == 0x45):  # e or E
        is_int = False
        j += 1
        exponent_sign = 1
        if j < end and (buf[j] == _MINUS or buf[j] == _PLUS):
            exponent_sign = -1 if buf[j] == _MINUS else 1
            j += 1
        if j >= end or not (_ZERO <= buf[j] <= _NINE):
            return -1, False, 0, 0.0, False
        while j < end and _ZERO <= buf[j] <= _NINE:
            if exponent <= 1000:
                exponent = exponent * 10 + (buf[j] - _ZERO)
            j += 1
        if exponent > 400:
            return -1, False, 0, 0.0, False
        exponent *= exponent_sign
    if is_int:
        if int_digits > 18:
            return -1, False, 0, 0.0, False  # orjson reads huge ints as floats: not ours
        value = -mantissa if negative else mantissa
        return j, True, value, float(value), mantissa <= _MAX_EXACT_MANTISSA
    if int_digits + exponent > 308:
        return -1, False, 0, 0.0, False  # might be infinite, which orjson refuses
    power = scale + exponent
    while mantissa != 0 and mantissa % 10 == 0:  # trailing zeros (1000000000000000.0) are no precision
        mantissa //= 10
        power += 1
    exact = not truncated and mantissa <= _MAX_EXACT_MANTISSA and -22 <= power <= 22
    result = 0.0
    if mantissa == 0:
        exact = True  # 0 whatever the exponent
    elif exact:
        # both operands exact, one correctly rounded operation: the correctly rounded result
        result = mantissa * _POW10[power] if power >= 0 else mantissa / _POW10[-power]
    if negative:
        result = -result
    return j, False, 0, result, exact


@njit(cache=True, nogil=True)
def scan_literal(buf, i, end):
    """``(position past the literal at buf[i], its kind TRUE/FALSE/NULL)``, or ``(-1, ABSENT)``."""
    c = buf[i]
    if c == 0x74 and i + 4 <= end and buf[i + 1] == 0x72 and buf[i + 2] == 0x75 and buf[i + 3] == 0x65:
        return i + 4, TRUE
    if c == 0x6E and i + 4 <= end and buf[i + 1] == 0x75 and buf[i + 2] == 0x6C and buf[i + 3] == 0x6C:
        return i + 4, NULL
    if (c == 0x66 and i + 5 <= end and buf[i + 1] == 0x61 and buf[i + 2] == 0x6C and buf[i + 3] == 0x73
            and buf[i + 4] == 0x65):  # fmt: skip
        return i + 5, FALSE
    return -1, ABSENT


@njit(cache=True, nogil=True)
def _member_key(buf, i, end):
    """Past ``"key" :`` and the whitespace after it, with ``buf[i]`` the key's opening quote; or -1."""
    if i >= end or buf[i] != _QUOTE:
        return -1
    i, _ = scan_string(buf, i, end)
    if i < 0:
        return -1
    i = skip_ws(buf, i, end)
    if i >= end or buf[i] != _COLON:
        return -1
    return skip_ws(buf, i + 1, end)


@njit(cache=True, nogil=True)
def skip_value(buf, i, end):
    """Past the JSON value starting at ``buf[i]``, validating all of it; -1 when it is not JSON orjson reads.

    Containers nest up to :data:`MAX_DEPTH`, followed with a bit per level (set: object).
    """
    objects = np.uint64(0)
    depth = 0
    while True:
        # a value starts at i
        if i >= end:
            return -1
        c = buf[i]
        if c == _LBRACE or c == _LBRACKET:
            i = skip_ws(buf, i + 1, end)
            if i < end and buf[i] == (_RBRACE if c == _LBRACE else _RBRACKET):
                i += 1  # empty: a complete value
            else:
                if depth == MAX_DEPTH:
                    return -1
                if c == _LBRACE:
                    objects |= np.uint64(1) << np.uint64(depth)
                    i = _member_key(buf, i, end)
                    if i < 0:
                        return -1
                else:
                    objects &= ~(np.uint64(1) << np.uint64(depth))
                depth += 1
                continue
        elif c == _QUOTE:
            i, _ = scan_string(buf, i, end)
        elif c == _MINUS or _ZERO <= c <= _NINE:
            i = scan_number(buf, i, end)[0]
        else:
            i = scan_literal(buf, i, end)[0]
        if i < 0:
            return -1
        # a value ended at i: close containers until one continues with another member
        while depth > 0:
            i = skip_ws(buf, i, end)
            if i >= end:
                return -1
            c = buf[i]
            in_object = (objects >> np.uint64(depth - 1)) & np.uint64(1)
            if c == _COMMA:
                i = skip_ws(buf, i + 1, end)
                if in_object:
                    i = _member_key(buf, i, end)
                    if i < 0:
                        return -1
                break
            if c != (_RBRACE if in_object else _RBRACKET):
                return -1
            depth -= 1
            i += 1
        if depth == 0:
            return i


@njit(cache=True, nogil=True)
def skip_array(buf, i, end):
    """``(position past the array opened at buf[i], its number of elements)``; position -1 when not valid."""
    i = skip_ws(buf, i + 1, end)
    if i < end and buf[i] == _RBRACKET:
        return i + 1, 0
    count = 0
    while True:
        i = skip_value(buf, i, end)
        if i < 0:
            return -1, count
        count += 1
        i = skip_ws(buf, i, end)
        if i >= end:
            return -1, count
        if buf[i] == _RBRACKET:
            return i + 1, count
        if buf[i] != _COMMA:
            return -1, count
        i = skip_ws(buf, i + 1, end)


# --------------------------------------------------------------------------- decoding


@njit(cache=True, nogil=True)
def _put_utf8(out, w, code_point):
    """Write ``code_point`` as UTF-8 at ``out[w:]``; returns the new ``w``."""
    if code_point < 0x80:
        out[w] = code_point
        return w + 1
    if code_point < 0x800:
        out[w] = 0xC0 | (code_point >> 6)
        out[w + 1] = 0x80 | (code_point & 0x3F)
        return w + 2
    if code_point < 0x10000:
        out[w] = 0xE0 | (code_point >> 12)
        out[w + 1] = 0x80 | ((code_point >> 6) & 0x3F)
        out[w + 2] = 0x80 | (code_point & 0x3F)
        return w + 3
    out[w] = 0xF0 | (code_point >> 18)
    out[w + 1] = 0x80 | ((code_point >> 12) & 0x3F)
    out[w + 2] = 0x80 | ((code_point >> 6) & 0x3F)
    out[w + 3] = 0x80 | (code_point & 0x3F)
    return w + 4


@njit(cache=True, nogil=True)
def _copy_until_escape(buf, i, b, out, w):
    """Copy ``buf[i:b]`` to ``out[w:]`` up to the next backslash: ``(its position or b, new w)``.

    Unsigned indices and 8 bytes at a time, as in :func:`_plain_run`.
    """
    u, stop, v = np.uint64(i), np.uint64(b), np.uint64(w)
    while u + _U8 <= stop:  # 8 bytes at a time while none is a backslash
        word = _word(buf, u)
        backslash = word ^ _BACKSLASHES
        if (backslash - _ONES) & ~backslash & _HIGH_BITS:
            break
        for k in range(8):
            out[v + np.uint64(k)] = np.uint8((word >> np.uint64(8 * k)) & np.uint64(0xFF))
        u += _U8
        v += _U8
    while u < stop:
        c = buf[u]
        if c == _BACKSLASH:
            break
        out[v] = c
        u += _U1
        v += _U1
    return np.int64(u), np.int64(v)


@njit(cache=True, nogil=True)
def _copy(buf, a, b, out, w):
    """Copy ``buf[a:b]`` to ``out[w:]``; returns the new ``w``.  A loop over views, from 0: LLVM vectorizes it."""
    n = b - a
    source, target = buf[a:b], out[w : w + n]
    for k in range(n):
        target[k] = source[k]
    return w + n


@njit(cache=True, nogil=True)
def _unescape_into(buf, a, b, out, w):
    """The text of a string :func:`scan_string` validated, ``buf[a:b]`` without quotes, as UTF-8 at ``out[w:]``.

    Returns the new ``w``.  Never longer than the escaped text: an escape of ``k``
    bytes decodes to fewer than ``k``.
    """
    i = a
    while i < b:
        i, w = _copy_until_escape(buf, i, b, out, w)
        if i >= b:
            break
        e = buf[i + 1]
        if e != 0x75:
            out[w] = _SIMPLE_ESCAPES[e]
            w += 1
            i += 2
            continue
        unit = _hex4(buf, i + 2, b)
        i += 6
        if 0xD800 <= unit <= 0xDBFF:  # validated: a low surrogate escape follows
            unit = 0x10000 + ((unit - 0xD800) << 10) + (_hex4(buf, i + 2, b) - 0xDC00)
            i += 6
        w = _put_utf8(out, w, unit)
    return w


@njit(cache=True, nogil=True)
def gather_strings(buf, starts, ends, states, n):
    """Decode ``n`` strings per column into one buffer: ``(data, offsets, bounds)``.

    Column ``k``'s string ``r`` is the text ``buf[starts[k, r]:ends[k, r]]``, with
    ``states[k, r]`` 0 (null), 1 (no escapes: copied) or 2 (escapes: decoded).
    Column ``k``'s bytes are ``data[bounds[k]:bounds[k + 1]]`` and ``offsets[k]``
    its Arrow string offsets into them (int32: a block is far below 2 GiB a column).
    """
    columns = starts.shape[0]
    total = 0
    for k in range(columns):
        for r in range(n):
            if states[k, r]:
                total += ends[k, r] - starts[k, r]
    data = np.empty(total, np.uint8)
    offsets = np.zeros((columns, n + 1), np.int32)
    bounds = np.zeros(columns + 1, np.int64)
    w = 0
    for k in range(columns):
        base = w
        for r in range(n):
            state = states[k, r]
            a, b = starts[k, r], ends[k, r]
            if state == 1:
                w = _copy(buf, a, b, data, w)
            elif state == 2:
                w = _unescape_into(buf, a, b, data, w)
            offsets[k, r + 1] = w - base
        bounds[k + 1] = w
    return data, offsets, bounds


# --------------------------------------------------------------------------- single tokens (tests, debugging)


def decode_string(token: bytes) -> str | None:
    """The text of one JSON string token (quotes included), or None where :func:`scan_string` refuses it.

    Example:
        >>> decode_string(b'"a\\\\ud83d\\\\ude00"'), decode_string(b'"\\\\ud800"')
        ('a😀', None)
    """
    buf = np.frombuffer(token, np.uint8)
    if not token or token[0] != _QUOTE:
        return None
    end, escaped = scan_string(buf, 0, len(buf))
    if end != len(buf):
        return None
    starts, ends = np.array([[1]], np.int64), np.array([[end - 1]], np.int64)
    data, offsets, _ = gather_strings(buf, starts, ends, np.array([[2 if escaped else 1]], np.uint8), 1)
    return data[: offsets[0, 1]].tobytes().decode("utf-8")


def parse_number(token: bytes) -> int | float | None:
    """The value of one JSON number token as orjson gives it, or None when :func:`scan_number` refuses or cannot
    convert it exactly.

    Example:
        >>> parse_number(b"1.5e3"), parse_number(b"-0"), parse_number(b"01")
        (1500.0, 0, None)
    """
    buf = np.frombuffer(token, np.uint8)
    if not token:
        return None
    end, is_int, int_value, float_value, exact = scan_number(buf, 0, len(buf))
    if end != len(buf):
        return None
    if is_int:
        return int(int_value)
    return float(float_value) if exact else None


# =========================================================================== LiteLLM records

# --------------------------------------------------------------------------- what is read

# The objects and arrays of a record the mapping reads from (everything else is only validated).
(IN_TOP, IN_METADATA, IN_PARAMS, IN_MESSAGES, IN_MESSAGE, IN_RESPONSE, IN_CHOICES, IN_CHOICE, IN_CHOICE_MESSAGE,
 IN_USAGE, IN_DETAILS) = range(11)  # fmt: skip
_IS_ARRAY = np.array([c in (IN_MESSAGES, IN_CHOICES) for c in range(11)])

#: One slot per value the mapping reads: (slot, where it is, key, what its value is read as when it is a
#: container of the right kind: -1 for "a value", else the object or array read inside it).
_FIELDS = (
    (F_ID := 0, IN_TOP, "id", -1),
    (F_START := 1, IN_TOP, "startTime", -1),
    (F_END := 2, IN_TOP, "endTime", -1),
    (F_FIRST_TOKEN := 3, IN_TOP, "completionStartTime", -1),
    (F_MODEL := 4, IN_TOP, "model", -1),
    (F_STATUS := 5, IN_TOP, "status", -1),
    (F_PROMPT_TOKENS := 6, IN_TOP, "prompt_tokens", -1),
    (F_COMPLETION_TOKENS := 7, IN_TOP, "completion_tokens", -1),
    (F_END_USER := 8, IN_TOP, "end_user", -1),
    (F_IP := 9, IN_TOP, "requester_ip_address", -1),
    (F_MESSAGES := 10, IN_TOP, "messages", IN_MESSAGES),
    (F_RESPONSE := 11, IN_TOP, "response", IN_RESPONSE),
    (F_METADATA := 12, IN_TOP, "metadata", IN_METADATA),
    (F_PARAMS := 13, IN_TOP, "model_parameters", IN_PARAMS),
    (F_ACCOUNT := 14, IN_METADATA, "user_api_key_user_id", -1),
    (F_API_KEY := 15, IN_METADATA, "user_api_key_hash", -1),
    (F_TEAM := 16, IN_METADATA, "user_api_key_team_id", -1),
    (F_ORG := 17, IN_METADATA, "user_api_key_org_id", -1),
    (F_META_END_USER := 18, IN_METADATA, "user_api_key_end_user_id", -1),
    (F_META_IP := 19, IN_METADATA, "requester_ip_address", -1),
    (F_USER_AGENT := 20, IN_METADATA, "user_agent", -1),
    (F_REQUESTER_METADATA := 21, IN_METADATA, "requester_metadata", -1),  # only: is it there?
    (F_HEADERS := 22, IN_METADATA, "headers", -1),  # only: is it there?
    (F_MAX_TOKENS := 23, IN_PARAMS, "max_tokens", -1),
    (F_MAX_COMPLETION_TOKENS := 24, IN_PARAMS, "max_completion_tokens", -1),
    (F_TEMPERATURE := 25, IN_PARAMS, "temperature", -1),
    (F_TOP_P := 26, IN_PARAMS, "top_p", -1),
    (F_N := 27, IN_PARAMS, "n", -1),
    (F_LOGPROBS := 28, IN_PARAMS, "logprobs", -1),
    (F_TOP_LOGPROBS := 29, IN_PARAMS, "top_logprobs", -1),
    (F_SEED := 30, IN_PARAMS, "seed", -1),
    (F_REASONING_EFFORT := 31, IN_PARAMS, "reasoning_effort", -1),
    (F_STREAM := 32, IN_PARAMS, "stream", -1),
    (F_PARAM_USER := 33, IN_PARAMS, "user", -1),
    (F_TOOLS := 34, IN_PARAMS, "tools", -1),  # an array's value is its length
    (F_ROLE := 35, IN_MESSAGE, "role", -1),  # role and content: of the message being read
    (F_CONTENT := 36, IN_MESSAGE, "content", -1),
    (F_CHOICES := 37, IN_RESPONSE, "choices", IN_CHOICES),
    (F_USAGE := 38, IN_RESPONSE, "usage", IN_USAGE),
    (F_CHOICE_MESSAGE := 39, IN_CHOICE, "message", IN_CHOICE_MESSAGE),
    (F_COMPLETION := 40, IN_CHOICE_MESSAGE, "content", -1),
    (F_REASONING := 41, IN_CHOICE_MESSAGE, "reasoning_content", -1),
    (F_TOOL_CALLS := 42, IN_CHOICE_MESSAGE, "tool_calls", -1),
    (F_DETAILS := 43, IN_USAGE, "completion_tokens_details", IN_DETAILS),
    (F_REASONING_TOKENS := 44, IN_DETAILS, "reasoning_tokens", -1),
)
N_SLOTS = len(_FIELDS)


def _key_tables() -> tuple[np.ndarray, ...]:
    """The key names as arrays numba can search: bytes, each slot's key span, each context's slot range."""
    assert [f[0] for f in _FIELDS] == list(range(N_SLOTS)), "slots are numbered in order"
    assert [f[1] for f in _FIELDS] == sorted(f[1] for f in _FIELDS), "a context's slots are contiguous"
    names = [key.encode() for _, _, key, _ in _FIELDS]
    key_start = np.cumsum([0] + [len(n) for n in names]).astype(np.int64)
    first = np.array([min([s for s, c, _, _ in _FIELDS if c == ctx], default=0) for ctx in range(11)], np.int64)
    stop = np.array([max([s + 1 for s, c, _, _ in _FIELDS if c == ctx], default=0) for ctx in range(11)], np.int64)
    child = np.array([f[3] for f in _FIELDS], np.int64)
    return np.frombuffer(b"".join(names), np.uint8).copy(), key_start, first, stop, child


_KEY_BYTES, _KEY_START, _CTX_FIRST_SLOT, _CTX_STOP_SLOT, _CHILD = _key_tables()

# A slot's token: kind (ABSENT..ARRAY), where it is, and its value (tok rows; floats apart).
T_KIND, T_START, T_END, T_INT, T_FLAGS = range(5)
ESCAPED, EXACT = 1, 2  # T_FLAGS bits: a string with escapes; a number whose float is exact

# The messages of a record, folded as they are read (as exchange_table walks them).
(M_COUNT, M_USER, M_ASSISTANT, M_HAS_SYSTEM, M_FIRST_START, M_FIRST_END, M_FIRST_ESC, M_LAST_START, M_LAST_END,
 M_LAST_ESC, M_SYSTEM_START, M_SYSTEM_END, M_SYSTEM_ESC) = range(13)  # fmt: skip
N_MESSAGE_FACTS = 13

_ROLES = b"userassistantsystemdeveloper"
_ROLE_BYTES = np.frombuffer(_ROLES, np.uint8).copy()
# (start, stop) of each role name in _ROLE_BYTES
_USER, _ASSISTANT, _SYSTEM, _DEVELOPER = (0, 4), (4, 13), (13, 19), (19, 28)

# --------------------------------------------------------------------------- output columns

#: String, float, int and bool columns the kernel fills, in the order of its output arrays.
STRING_COLUMNS = ("event_id", "team_id", "org_id", "model", "status", "reasoning_effort", "api_key", "end_user",
                  "ip", "user_agent", "account_id", "prompt_text", "first_user_text", "system_text",
                  "completion_text")  # fmt: skip
FLOAT_COLUMNS = ("ts", "end_ts", "first_token_ts", "temperature", "top_p")
INT_COLUMNS = ("source_line", "prompt_tokens", "completion_tokens", "reasoning_tokens", "max_tokens", "n",
               "top_logprobs", "seed", "tools_count", "response_tool_calls", "n_messages", "n_user_turns",
               "n_assistant_turns")  # fmt: skip
BOOL_COLUMNS = ("logprobs", "stream")
(S_EVENT_ID, S_TEAM, S_ORG, S_MODEL, S_STATUS, S_EFFORT, S_API_KEY, S_END_USER, S_IP, S_USER_AGENT, S_ACCOUNT,
 S_PROMPT, S_FIRST_USER, S_SYSTEM, S_COMPLETION) = range(len(STRING_COLUMNS))  # fmt: skip
D_TS, D_END_TS, D_FIRST_TOKEN_TS, D_TEMPERATURE, D_TOP_P = range(len(FLOAT_COLUMNS))
(I_LINE, I_PROMPT_TOKENS, I_COMPLETION_TOKENS, I_REASONING_TOKENS, I_MAX_TOKENS, I_N, I_TOP_LOGPROBS, I_SEED,
 I_TOOLS, I_TOOL_CALLS, I_MESSAGES, I_USER_TURNS, I_ASSISTANT_TURNS) = range(len(INT_COLUMNS))  # fmt: skip
B_LOGPROBS, B_STREAM = range(len(BOOL_COLUMNS))
# string cell states (gather_strings)
_NULL_CELL, _PLAIN_CELL, _ESCAPED_CELL = 0, 1, 2

#: Epoch values at or beyond this are not seconds: the reader refuses them (lines.MAX_EPOCH_SECONDS).
_MAX_EPOCH = 1e11
_MAX_EPOCH_INT = 100_000_000_000
#: Containers the walk reads can nest this deep (top, response, choices, choice, message).
_MAX_FRAMES = 8
FRAME_CTX, FRAME_SLOT, FRAME_COUNT = range(3)

# --------------------------------------------------------------------------- the walk over one line


@njit(cache=True, nogil=True)
def _key_slot(buf, a, b, ctx):
    """The slot of the key ``buf[a:b]`` in context ``ctx``, or -1 for a key the mapping ignores."""
    n = b - a
    for slot in range(_CTX_FIRST_SLOT[ctx], _CTX_STOP_SLOT[ctx]):
        k = _KEY_START[slot]
        if _KEY_START[slot + 1] - k != n or _KEY_BYTES[k] != buf[a]:
            continue
        same = True
        for j in range(1, n):
            if _KEY_BYTES[k + j] != buf[a + j]:
                same = False
                break
        if same:
            return slot
    return -1


@njit(cache=True, nogil=True)
def _read_value(buf, i, end, tok, fval, slot):
    """Record the value at ``buf[i]`` in ``slot`` (containers: kind, and an array's length); past it or -1."""
    c = buf[i]
    tok[slot, T_START] = i
    if c == 0x22:
        j, escaped = scan_string(buf, i, end)
        tok[slot, T_KIND] = STRING
        tok[slot, T_START] = i + 1
        tok[slot, T_END] = j - 1
        tok[slot, T_FLAGS] = ESCAPED if escaped else 0
        return j
    if c == 0x2D or 0x30 <= c <= 0x39:
        j, is_int, int_value, float_value, exact = scan_number(buf, i, end)
        tok[slot, T_KIND] = INT if is_int else FLOAT
        tok[slot, T_INT] = int_value
        tok[slot, T_FLAGS] = EXACT if exact else 0
        fval[slot] = float_value
        return j
    if c == 0x7B:
        tok[slot, T_KIND] = OBJECT
        return skip_value(buf, i, end)
    if c == 0x5B:
        j, count = skip_array(buf, i, end)
        tok[slot, T_KIND] = ARRAY
        tok[slot, T_INT] = count
        return j
    j, kind = scan_literal(buf, i, end)
    tok[slot, T_KIND] = kind
    return j


@njit(cache=True, nogil=True)
def _equals(buf, a, b, name):
    """Whether ``buf[a:b]`` is the role name ``_ROLE_BYTES[name[0]:name[1]]``."""
    if b - a != name[1] - name[0]:
        return False
    for j in range(b - a):
        if buf[a + j] != _ROLE_BYTES[name[0] + j]:
            return False
    return True


@njit(cache=True, nogil=True)
def _fold_message(buf, tok, msgs):
    """Count the message just read and keep its content where ``exchange_table`` would; False to leave the line.

    Its role must be a plain string, its content a string or null/absent (which reads as "").
    """
    if tok[F_ROLE, T_KIND] != STRING or tok[F_ROLE, T_FLAGS] & ESCAPED:
        return False
    kind = tok[F_CONTENT, T_KIND]
    if kind == STRING:
        a, b, esc = tok[F_CONTENT, T_START], tok[F_CONTENT, T_END], tok[F_CONTENT, T_FLAGS] & ESCAPED
    elif kind == ABSENT or kind == NULL:
        a, b, esc = 0, 0, 0
    else:
        return False  # content parts, or a type the reader refuses
    role_a, role_b = tok[F_ROLE, T_START], tok[F_ROLE, T_END]
    msgs[M_COUNT] += 1
    if _equals(buf, role_a, role_b, _USER):
        msgs[M_USER] += 1
        if msgs[M_USER] == 1:
            msgs[M_FIRST_START], msgs[M_FIRST_END], msgs[M_FIRST_ESC] = a, b, esc
        msgs[M_LAST_START], msgs[M_LAST_END], msgs[M_LAST_ESC] = a, b, esc
    elif _equals(buf, role_a, role_b, _ASSISTANT):
        msgs[M_ASSISTANT] += 1
    elif (not msgs[M_HAS_SYSTEM] and b > a
          and (_equals(buf, role_a, role_b, _SYSTEM) or _equals(buf, role_a, role_b, _DEVELOPER))):  # fmt: skip
        msgs[M_HAS_SYSTEM] = 1
        msgs[M_SYSTEM_START], msgs[M_SYSTEM_END], msgs[M_SYSTEM_ESC] = a, b, esc
    tok[F_ROLE, T_KIND] = ABSENT  # the next message has its own
    tok[F_CONTENT, T_KIND] = ABSENT
    return True


@njit(cache=True, nogil=True)
def _walk_record(buf, i, end, tok, fval, msgs, frames):
    """Validate the JSON object line at ``buf[i:]``, recording the slots and folding messages.

    Returns the position past the line's line feed (or ``end``), or -1 when the
    line is to be left: not JSON orjson reads, not an object, a duplicate or
    escaped key in an object the mapping reads, or a message or first choice
    that is not an object.  The containers the mapping reads are followed on a
    stack of frames (context, slot, elements so far); all else is skipped by
    :func:`skip_value`.
    """
    i = skip_ws(buf, i, end)
    if i >= end or buf[i] != 0x7B:
        return -1
    frames[0, FRAME_CTX], frames[0, FRAME_SLOT], frames[0, FRAME_COUNT] = IN_TOP, -1, 0
    depth = 1
    i += 1
    fresh = True  # the container on top was just opened: a close or its first member comes next
    while True:
        top = depth - 1
        ctx = frames[top, FRAME_CTX]
        in_array = _IS_ARRAY[ctx]
        i = skip_ws(buf, i, end)
        if i >= end:
            return -1
        c = buf[i]
        if c == (0x5D if in_array else 0x7D):
            i += 1
            if ctx == IN_MESSAGE and not _fold_message(buf, tok, msgs):
                return -1
            if in_array:
                tok[frames[top, FRAME_SLOT], T_INT] = frames[top, FRAME_COUNT]
            depth -= 1
            if depth == 0:
                break
            fresh = False
            continue
        if not fresh:
            if c != 0x2C:
                return -1
            i = skip_ws(buf, i + 1, end)
            if i >= end:
                return -1
        fresh = False
        if in_array:
            index = frames[top, FRAME_COUNT]
            frames[top, FRAME_COUNT] = index + 1
            if ctx == IN_CHOICES and index > 0:  # only the first choice is read
                i = skip_value(buf, i, end)
            elif buf[i] != 0x7B:
                return -1  # a message or first choice that is not an object
            else:
                frames[depth, FRAME_CTX] = IN_MESSAGE if ctx == IN_MESSAGES else IN_CHOICE
                frames[depth, FRAME_SLOT], frames[depth, FRAME_COUNT] = -1, 0
                depth += 1
                i += 1
                fresh = True
        else:
            if buf[i] != 0x22:
                return -1
            j, escaped = scan_string(buf, i, end)
            if j < 0 or escaped:  # an escaped key could spell a key the mapping reads
                return -1
            slot = _key_slot(buf, i + 1, j - 1, ctx)
            i = skip_ws(buf, j, end)
            if i >= end or buf[i] != 0x3A:
                return -1
            i = skip_ws(buf, i + 1, end)
            if i >= end:
                return -1
            if slot < 0:
                i = skip_value(buf, i, end)
            elif tok[slot, T_KIND] != ABSENT:
                return -1  # a duplicate key: orjson keeps the last one, simpler to leave it
            else:
                child = _CHILD[slot]
                if child >= 0 and buf[i] == (0x5B if _IS_ARRAY[child] else 0x7B):
                    tok[slot, T_KIND] = ARRAY if _IS_ARRAY[child] else OBJECT
                    frames[depth, FRAME_CTX], frames[depth, FRAME_SLOT], frames[depth, FRAME_COUNT] = child, slot, 0
                    depth += 1
                    i += 1
                    fresh = True
                else:
                    i = _read_value(buf, i, end, tok, fval, slot)
        if i < 0:
            return -1
    i = skip_ws(buf, i, end)
    if i == end:
        return i
    return i + 1 if buf[i] == 0x0A else -1


# --------------------------------------------------------------------------- slots to one row


@njit(cache=True, nogil=True)
def _put_string(cells, r, col, a, b, escaped):
    cells[0, col, r], cells[1, col, r] = a, b
    cells[2, col, r] = _ESCAPED_CELL if escaped else _PLAIN_CELL


@njit(cache=True, nogil=True)
def _string(tok, slot, cells, r, col, empty_is_null):
    """A string field (``empty_is_null``: "" reads as null, as ``x or None``); False when not a string or null."""
    kind = tok[slot, T_KIND]
    if kind == STRING and not (empty_is_null and tok[slot, T_END] == tok[slot, T_START]):
        _put_string(cells, r, col, tok[slot, T_START], tok[slot, T_END], tok[slot, T_FLAGS] & ESCAPED)
    elif kind == STRING or kind == ABSENT or kind == NULL:
        cells[2, col, r] = _NULL_CELL
    else:
        return False
    return True


@njit(cache=True, nogil=True)
def _first_nonempty(tok, first, second, third, cells, r, col):
    """``first or second or third or None`` over string slots (``third`` -1: none); False if one is not a string."""
    cells[2, col, r] = _NULL_CELL
    found = False
    for slot in (first, second, third):
        if slot < 0:
            continue
        kind = tok[slot, T_KIND]
        if kind == STRING:
            if not found and tok[slot, T_END] > tok[slot, T_START]:
                _put_string(cells, r, col, tok[slot, T_START], tok[slot, T_END], tok[slot, T_FLAGS] & ESCAPED)
                found = True
        elif kind != ABSENT and kind != NULL:
            return False
    return True


@njit(cache=True, nogil=True)
def _integer(tok, slot, ints, valid, r, col):
    """An int field: a JSON integer (at most 18 digits) or null; False otherwise (2.0, "2", true: left)."""
    kind = tok[slot, T_KIND]
    if kind == INT:
        ints[col, r], valid[col, r] = tok[slot, T_INT], 1
    elif kind == ABSENT or kind == NULL:
        valid[col, r] = 0
    else:
        return False
    return True


@njit(cache=True, nogil=True)
def _length(tok, slot, ints, valid, r, col):
    """A list's length (tools, tool_calls) or null; False for anything but a list or null."""
    kind = tok[slot, T_KIND]
    if kind == ARRAY:
        ints[col, r], valid[col, r] = tok[slot, T_INT], 1
    elif kind == ABSENT or kind == NULL:
        valid[col, r] = 0
    else:
        return False
    return True


@njit(cache=True, nogil=True)
def _number(tok, fval, slot, floats, valid, r, col, is_epoch):
    """A float field: any JSON number converted exactly, or null (``is_epoch``: also within ±1e11 seconds)."""
    kind = tok[slot, T_KIND]
    if kind == ABSENT or kind == NULL:
        valid[col, r] = 0
        return True
    if (kind != INT and kind != FLOAT) or not tok[slot, T_FLAGS] & EXACT:
        return False
    if is_epoch:
        if kind == INT:
            if not -_MAX_EPOCH_INT < tok[slot, T_INT] < _MAX_EPOCH_INT:
                return False
        elif not -_MAX_EPOCH < fval[slot] < _MAX_EPOCH:
            return False
    floats[col, r], valid[col, r] = fval[slot], 1
    return True


@njit(cache=True, nogil=True)
def _boolean(tok, slot, bools, valid, r, col):
    kind = tok[slot, T_KIND]
    if kind == TRUE or kind == FALSE:
        bools[col, r], valid[col, r] = kind == TRUE, 1
    elif kind == ABSENT or kind == NULL:
        valid[col, r] = 0
    else:
        return False
    return True


@njit(cache=True, nogil=True)
def _object_or_null(tok, slot):
    kind = tok[slot, T_KIND]
    return kind == OBJECT or kind == ABSENT or kind == NULL


@njit(cache=True, nogil=True)
def _map_conversation(tok, msgs, cells, ints, int_valid, r):
    """Messages to prompt/first user/system text and turn counts, as ``exchange_table`` reduces them."""
    kind = tok[F_MESSAGES, T_KIND]
    if kind != ARRAY and kind != ABSENT and kind != NULL:
        return False  # a bare string (one user message in the reader) or a type it refuses
    ints[I_MESSAGES, r], ints[I_USER_TURNS, r] = msgs[M_COUNT], msgs[M_USER]
    ints[I_ASSISTANT_TURNS, r] = msgs[M_ASSISTANT]
    int_valid[I_MESSAGES, r] = int_valid[I_USER_TURNS, r] = int_valid[I_ASSISTANT_TURNS, r] = 1
    if msgs[M_USER]:
        _put_string(cells, r, S_PROMPT, msgs[M_LAST_START], msgs[M_LAST_END], msgs[M_LAST_ESC])
        _put_string(cells, r, S_FIRST_USER, msgs[M_FIRST_START], msgs[M_FIRST_END], msgs[M_FIRST_ESC])
    else:
        _put_string(cells, r, S_PROMPT, 0, 0, 0)
        cells[2, S_FIRST_USER, r] = _NULL_CELL
    if msgs[M_HAS_SYSTEM]:
        _put_string(cells, r, S_SYSTEM, msgs[M_SYSTEM_START], msgs[M_SYSTEM_END], msgs[M_SYSTEM_ESC])
    else:
        _put_string(cells, r, S_SYSTEM, 0, 0, 0)
    return True


@njit(cache=True, nogil=True)
def _map_response(tok, cells, ints, int_valid, r):
    """Completion text, tool calls and reasoning tokens from the response (first choice), as ``_fill_response``."""
    cells[2, S_COMPLETION, r] = _NULL_CELL
    int_valid[I_TOOL_CALLS, r] = int_valid[I_REASONING_TOKENS, r] = 0
    kind = tok[F_RESPONSE, T_KIND]
    if kind == ABSENT or kind == NULL:
        return True
    if kind != OBJECT:
        return False  # a plain string response, or a type the reader refuses
    choices = tok[F_CHOICES, T_KIND]
    if choices == ARRAY and tok[F_CHOICES, T_INT] > 0:  # the walk made sure the first choice is an object
        if not _object_or_null(tok, F_CHOICE_MESSAGE):
            return False
        if not _string(tok, F_COMPLETION, cells, r, S_COMPLETION, False):  # content parts: left
            return False
        reasoning = tok[F_REASONING, T_KIND]
        if reasoning != STRING and reasoning != ABSENT and reasoning != NULL:
            return False
        if not _length(tok, F_TOOL_CALLS, ints, int_valid, r, I_TOOL_CALLS):
            return False
    elif choices != ARRAY and choices != ABSENT and choices != NULL:
        return False  # other falsy values are skipped by the reader; not worth following
    if not (_object_or_null(tok, F_USAGE) and _object_or_null(tok, F_DETAILS)):
        return False
    return _integer(tok, F_REASONING_TOKENS, ints, int_valid, r, I_REASONING_TOKENS)


@njit(cache=True, nogil=True)
def _map_record(tok, fval, msgs, r, cells, floats, float_valid, ints, int_valid, bools, bool_valid):
    """The slots of one walked line as row ``r`` of the columns, as ``litellm_event`` + ``exchange_table`` map
    them; False when the line is to be left (its row is then overwritten by the next line)."""
    # an id: the reader derives one from the line's hash when it is missing or empty
    if tok[F_ID, T_KIND] != STRING or tok[F_ID, T_END] == tok[F_ID, T_START]:
        return False
    _put_string(cells, r, S_EVENT_ID, tok[F_ID, T_START], tok[F_ID, T_END], tok[F_ID, T_FLAGS] & ESCAPED)
    if not (_object_or_null(tok, F_METADATA) and _object_or_null(tok, F_PARAMS)):
        return False
    if tok[F_START, T_KIND] == ABSENT or tok[F_START, T_KIND] == NULL:
        return False
    ok = (
        _number(tok, fval, F_START, floats, float_valid, r, D_TS, True)
        and _number(tok, fval, F_END, floats, float_valid, r, D_END_TS, True)
        and _number(tok, fval, F_FIRST_TOKEN, floats, float_valid, r, D_FIRST_TOKEN_TS, True)
        and _number(tok, fval, F_TEMPERATURE, floats, float_valid, r, D_TEMPERATURE, False)
        and _number(tok, fval, F_TOP_P, floats, float_valid, r, D_TOP_P, False)
        and _string(tok, F_ACCOUNT, cells, r, S_ACCOUNT, True)
        and _string(tok, F_API_KEY, cells, r, S_API_KEY, True)
        and _string(tok, F_TEAM, cells, r, S_TEAM, True)
        and _string(tok, F_ORG, cells, r, S_ORG, True)
        and _first_nonempty(tok, F_END_USER, F_META_END_USER, F_PARAM_USER, cells, r, S_END_USER)
        and _first_nonempty(tok, F_IP, F_META_IP, -1, cells, r, S_IP)
        and _string(tok, F_MODEL, cells, r, S_MODEL, False)
        and _string(tok, F_STATUS, cells, r, S_STATUS, False)
        and _string(tok, F_REASONING_EFFORT, cells, r, S_EFFORT, False)
        and _integer(tok, F_PROMPT_TOKENS, ints, int_valid, r, I_PROMPT_TOKENS)
        and _integer(tok, F_COMPLETION_TOKENS, ints, int_valid, r, I_COMPLETION_TOKENS)
        and _integer(tok, F_N, ints, int_valid, r, I_N)
        and _integer(tok, F_TOP_LOGPROBS, ints, int_valid, r, I_TOP_LOGPROBS)
        and _integer(tok, F_SEED, ints, int_valid, r, I_SEED)
        and _length(tok, F_TOOLS, ints, int_valid, r, I_TOOLS)
        and _boolean(tok, F_LOGPROBS, bools, bool_valid, r, B_LOGPROBS)
        and _boolean(tok, F_STREAM, bools, bool_valid, r, B_STREAM)
        and _map_conversation(tok, msgs, cells, ints, int_valid, r)
        and _map_response(tok, cells, ints, int_valid, r)
    )
    if not ok:
        return False
    # max_tokens, else max_completion_tokens: only the one taken must be an integer
    max_tokens = tok[F_MAX_TOKENS, T_KIND]
    chosen = F_MAX_COMPLETION_TOKENS if max_tokens == ABSENT or max_tokens == NULL else F_MAX_TOKENS
    if not _integer(tok, chosen, ints, int_valid, r, I_MAX_TOKENS):
        return False
    # metadata.user_agent; without it the reader looks through header blocks: left to it
    agent = tok[F_USER_AGENT, T_KIND]
    if (agent == ABSENT or agent == NULL) and (
            tok[F_REQUESTER_METADATA, T_KIND] != ABSENT or tok[F_HEADERS, T_KIND] != ABSENT):  # fmt: skip
        return False
    return _string(tok, F_USER_AGENT, cells, r, S_USER_AGENT, True)


# --------------------------------------------------------------------------- the block


@njit(cache=True, nogil=True)
def _is_blank(buf, i, end):
    """Whether the line at ``buf[i:]`` is only whitespace (as ``bytes.isspace``: also vertical tab, form feed)."""
    while i < end:
        c = buf[i]
        if c == 0x0A:
            return True
        if c != 0x20 and c != 0x09 and c != 0x0D and c != 0x0B and c != 0x0C:
            return False
        i += 1
    return True


@njit(cache=True, nogil=True)
def _count_line_feeds(buf):
    """``bytes.count(b"\\n")``, vectorized (CPython counts one byte at a time: ~5x slower)."""
    count = 0
    for k in range(len(buf)):
        count += buf[k] == 0x0A
    return count


@njit(cache=True, nogil=True)
def _line_end(buf, i, end):
    """Past the line feed ending the line at ``buf[i:]`` (or ``end``)."""
    while i < end and buf[i] != 0x0A:
        i += 1
    return min(i + 1, end)


@njit(cache=True, nogil=True)
def _scan_block(buf, first_line_no, max_lines):
    """Walk and map every line of a block: the columns of the lines taken, ``(line_no, start, stop)`` of those left.

    ``cells[0 | 1 | 2, column, row]`` are the string cells' start, end and state
    (:func:`gather_strings`).
    """
    cells = np.zeros((3, len(STRING_COLUMNS), max_lines), np.int64)
    floats = np.zeros((len(FLOAT_COLUMNS), max_lines), np.float64)
    float_valid = np.zeros((len(FLOAT_COLUMNS), max_lines), np.uint8)
    ints = np.zeros((len(INT_COLUMNS), max_lines), np.int64)
    int_valid = np.zeros((len(INT_COLUMNS), max_lines), np.uint8)
    bools = np.zeros((len(BOOL_COLUMNS), max_lines), np.uint8)
    bool_valid = np.zeros((len(BOOL_COLUMNS), max_lines), np.uint8)
    left = np.empty((max_lines, 3), np.int64)
    tok = np.zeros((N_SLOTS, 5), np.int64)
    fval = np.zeros(N_SLOTS, np.float64)
    msgs = np.zeros(N_MESSAGE_FACTS, np.int64)
    frames = np.zeros((_MAX_FRAMES, 3), np.int64)
    end = len(buf)
    rows = n_left = 0
    line_no = first_line_no
    i = 0
    while i < end:
        if _is_blank(buf, i, end):
            stop = _line_end(buf, i, end)
        else:
            tok[:, T_KIND] = ABSENT
            msgs[:] = 0
            stop = _walk_record(buf, i, end, tok, fval, msgs, frames)
            if stop >= 0 and _map_record(tok, fval, msgs, rows, cells, floats, float_valid, ints, int_valid, bools,
                                         bool_valid):  # fmt: skip
                ints[I_LINE, rows], int_valid[I_LINE, rows] = line_no, 1
                rows += 1
            else:
                stop = _line_end(buf, i, end)  # the walk may have stopped anywhere in the line
                left[n_left, 0], left[n_left, 1], left[n_left, 2] = line_no, i, stop
                n_left += 1
        i = stop
        line_no += 1
    return rows, cells, floats, float_valid, ints, int_valid, bools, bool_valid, left[:n_left]


# --------------------------------------------------------------------------- Arrow assembly


def _bitmap(valid: np.ndarray) -> tuple[pa.Buffer | None, int]:
    """An Arrow validity bitmap for a 0/1 array, and its null count (no bitmap without nulls)."""
    nulls = len(valid) - int(np.count_nonzero(valid))
    if not nulls:
        return None, 0
    return pa.py_buffer(np.packbits(valid, bitorder="little")), nulls


def _constant_strings(value: str, n: int) -> pa.Array:
    """``n`` copies of ``value`` as a plain string array."""
    data = value.encode("utf-8")
    offsets = np.arange(n + 1, dtype=np.int32) * len(data)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data * n))


def _assemble(buf: np.ndarray, source_file: str, scanned: tuple) -> pa.Table:
    """The kernel's arrays as an ``EXCHANGE_SCHEMA`` table: Arrow arrays over numpy buffers, strings decoded once."""
    n, cells, floats, float_valid, ints, int_valid, bools, bool_valid, _ = scanned
    columns: dict[str, pa.Array] = {}
    states = np.ascontiguousarray(cells[2, :, :n])
    data, offsets, bounds = gather_strings(buf, cells[0, :, :n], cells[1, :, :n], states, n)
    for k, name in enumerate(STRING_COLUMNS):
        validity, nulls = _bitmap(states[k] != _NULL_CELL)
        columns[name] = pa.StringArray.from_buffers(
            n, pa.py_buffer(offsets[k]), pa.py_buffer(data[bounds[k] : bounds[k + 1]]), validity, nulls
        )
    for group, values, valid, arrow_type in (
        (FLOAT_COLUMNS, floats, float_valid, pa.float64()),
        (INT_COLUMNS, ints, int_valid, pa.int64()),
    ):
        for k, name in enumerate(group):
            validity, nulls = _bitmap(valid[k, :n])
            columns[name] = pa.Array.from_buffers(arrow_type, n, [validity, pa.py_buffer(values[k, :n])], nulls)
    for k, name in enumerate(BOOL_COLUMNS):
        validity, nulls = _bitmap(bool_valid[k, :n])
        bits = pa.py_buffer(np.packbits(bools[k, :n], bitorder="little"))
        columns[name] = pa.Array.from_buffers(pa.bool_(), n, [validity, bits], nulls)
    columns["source_format"] = _constant_strings("litellm", n)
    columns["source_file"] = _constant_strings(source_file, n)
    return pa.Table.from_arrays([columns[name] for name in EXCHANGE_SCHEMA.names], schema=EXCHANGE_SCHEMA)


#: Blocks are split below this so every string column's offsets fit Arrow's int32.
_MAX_BLOCK = (1 << 31) - 1


def litellm_columns(block: bytes, first_line_no: int, source_file: str) -> tuple[pa.Table, list[tuple[int, bytes]]]:
    """The LiteLLM lines of ``block`` as ``EXCHANGE_SCHEMA`` rows, and the lines left for the Python reader.

    ``block`` is whole lines as :func:`~distillguard.ingest.lines.iter_line_blocks`
    yields them, its first line numbered ``first_line_no``; lines are split and
    numbered as :func:`~distillguard.ingest.lines.block_lines` does (blank lines
    count, and are neither taken nor left).  Returns the rows of the lines taken,
    in input order, each equal to what ``exchange_table(LiteLLMReader().parse_lines(
    Path(source_file), [(line_no, raw)]))`` gives for it; and the ``(line_no, raw)``
    of every other line, in input order, for ``LiteLLMReader().parse_lines``
    (a caller that needs one table in input order merges the two by ``source_line``).

    Example:
        >>> table, left = litellm_columns(block, first_line_no, str(path))  # doctest: +SKIP
        >>> rest = exchange_table([e for e in LiteLLMReader().parse_lines(path, left)  # doctest: +SKIP
        ...                        if not isinstance(e, Quarantined)])
    """
    source_file = str(Path(source_file))  # what the reader reports: Path normalizes the name
    if len(block) > _MAX_BLOCK:
        return _split(block, first_line_no, source_file)
    buf = np.frombuffer(block, np.uint8)
    scanned = _scan_block(buf, first_line_no, _count_line_feeds(buf) + 1)
    left = [(int(line_no), block[start:stop]) for line_no, start, stop in scanned[-1].tolist()]
    return _assemble(buf, source_file, scanned), left


def _split(block: bytes, first_line_no: int, source_file: str) -> tuple[pa.Table, list[tuple[int, bytes]]]:
    """A block too large for one pass, in two halves cut at a line feed."""
    cut = block.rfind(b"\n", 0, len(block) // 2) + 1 or block.find(b"\n") + 1
    if cut in (0, len(block)):  # one huge line: the reader has it
        return EXCHANGE_SCHEMA.empty_table(), [] if block.isspace() else [(first_line_no, block)]
    head, tail = block[:cut], block[cut:]
    head_table, head_left = litellm_columns(head, first_line_no, source_file)
    tail_table, tail_left = litellm_columns(tail, first_line_no + head.count(b"\n"), source_file)
    return pa.concat_tables([head_table, tail_table]), head_left + tail_left
