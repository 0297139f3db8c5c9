import random

import numpy as np
import pyarrow as pa
import pytest

from distillguard.siphash import siphash24_column

KEY = bytes(range(16))
#: veorq/SipHash vectors.h, vectors_sip64: key 00..0f, message i = bytes 00..(i-1), digest as a little-endian int
REFERENCE = {0: 0x726FDB47DD0E0E31, 1: 0x74F839C593DC67FD, 2: 0x0D6C8009D9A94F5A, 3: 0x85676696D7FB7E2D,
             7: 0xAB0200F58B01D137, 8: 0x93F5F5799A932462, 9: 0x9E0082DF0BA9E4B0, 15: 0xA129CA6149BE45E5}  # fmt: skip
MASK = (1 << 64) - 1


def _reference(key: bytes, message: bytes) -> int:
    """SipHash-2-4 as the paper writes it, in plain Python."""
    k0, k1 = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:], "little")
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]

    def rotl(x, b):
        return ((x << b) | (x >> (64 - b))) & MASK

    def sipround():
        v[0] = (v[0] + v[1]) & MASK; v[1] = rotl(v[1], 13) ^ v[0]; v[0] = rotl(v[0], 32)  # noqa: E702
        v[2] = (v[2] + v[3]) & MASK; v[3] = rotl(v[3], 16) ^ v[2]  # noqa: E702
        v[0] = (v[0] + v[3]) & MASK; v[3] = rotl(v[3], 21) ^ v[0]  # noqa: E702
        v[2] = (v[2] + v[1]) & MASK; v[1] = rotl(v[1], 17) ^ v[2]; v[2] = rotl(v[2], 32)  # noqa: E702

    padded = message + bytes((-len(message) - 1) % 8) + bytes([len(message) & 0xFF])
    for i in range(0, len(padded), 8):
        m = int.from_bytes(padded[i : i + 8], "little")
        v[3] ^= m
        sipround()
        sipround()
        v[0] ^= m
    v[2] ^= 0xFF
    for _ in range(4):
        sipround()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def _unsigned(column: pa.Array) -> list[int | None]:
    return [None if x is None else x & MASK for x in column.to_pylist()]


def test_the_published_vectors():
    messages = [bytes(range(n)).decode("latin-1").encode("utf-8") for n in REFERENCE]
    assert all(len(m) == n for m, n in zip(messages, REFERENCE) if n < 0x80)  # bytes < 0x80 are their own UTF-8
    got = _unsigned(siphash24_column(pa.array([bytes(range(n)).decode("ascii") for n in REFERENCE]), KEY))
    assert got == list(REFERENCE.values())
    assert [_reference(KEY, bytes(range(n))) for n in REFERENCE] == list(REFERENCE.values())


@pytest.mark.parametrize("large", [False, True])
def test_every_length_and_script_matches_the_reference_on_slices_with_nulls(large):
    rng = random.Random(7)
    alphabet = "ab é€\U0001f600\n\"\\"
    texts = [None if rng.random() < 0.1 else "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
             for _ in range(300)]  # fmt: skip
    key = bytes(rng.randrange(256) for _ in range(16))
    column = pa.array(texts, pa.large_string() if large else pa.string()).slice(11, 250)
    expected = [None if t is None else _reference(key, t.encode("utf-8")) for t in texts[11:261]]
    assert _unsigned(siphash24_column(column, key)) == expected
    chunked = pa.chunked_array([column.slice(0, 100), column.slice(100)])
    assert _unsigned(siphash24_column(chunked, key)) == expected


def test_the_key_matters_and_must_be_sixteen_bytes():
    column = pa.array(["same text"])
    assert siphash24_column(column, KEY)[0] != siphash24_column(column, bytes(16))[0]
    with pytest.raises(ValueError, match="16 bytes"):
        siphash24_column(column, b"short")
    with pytest.raises(TypeError, match="string column"):
        siphash24_column(pa.array(np.arange(3)), KEY)
    assert siphash24_column(pa.array([], pa.string()), KEY).to_pylist() == []
