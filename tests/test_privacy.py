from __future__ import annotations

import pytest

from distillguard.errors import ConfigError
from distillguard.privacy import Hasher, ip_prefix, redact


def test_hash_is_keyed_stable_and_distinct():
    a, b = Hasher(b"one"), Hasher(b"two")
    assert a.hash("sk-123") == Hasher(b"one").hash("sk-123")
    assert a.hash("sk-123") != b.hash("sk-123")
    assert a.hash("sk-123") != a.hash("sk-124")
    assert a.hash(None) is None and a.hash("") is None


def test_ip_prefix_groups_subnets_v4_and_v6():
    h = Hasher(b"k")
    assert ip_prefix("192.168.4.77") == "192.168.4.0/24"
    assert ip_prefix("2001:db8:1:2::5") == "2001:db8:1::/48"
    assert ip_prefix("not-an-ip") is None
    assert h.ip_prefix_hash("10.1.2.3") == h.ip_prefix_hash("10.1.2.200") != h.ip_prefix_hash("10.1.3.3")


def test_secret_from_env_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILLGUARD_SECRET", "from-env")
    assert not Hasher.from_config().is_demo
    assert Hasher.from_config().hash("x") == Hasher(b"from-env").hash("x")
    (tmp_path / "s").write_text("from-file\n")
    assert Hasher.from_config(tmp_path / "s").hash("x") == Hasher(b"from-file").hash("x")
    with pytest.raises(ConfigError, match="not found"):
        Hasher.from_config(tmp_path / "missing")
    monkeypatch.delenv("DISTILLGUARD_SECRET")
    assert Hasher.from_config().is_demo


def test_redact_masks_contacts_secrets_and_truncates():
    text = "key sk-abcdefghijklmnopqrstu mail a.b@c.org ip 10.2.3.4 see https://x.y/z " + "word " * 200
    out = redact(text, max_chars=120)
    assert "sk-abc" not in out and "a.b@c.org" not in out and "10.2.3.4" not in out and "https" not in out
    assert len(out) <= 120 and out.endswith("…")


def test_hasher_pickles_with_its_secret_for_worker_processes():
    import pickle

    h = Hasher(b"k", is_demo=True)
    clone = pickle.loads(pickle.dumps(h))
    assert clone.hash("x") == h.hash("x") and clone.ip_prefix_hash("1.2.3.4") == h.ip_prefix_hash("1.2.3.4")
    assert clone.is_demo


def _redact_every_pattern(text: str, max_chars: int = 240) -> str:
    """redact without its cheap pre-tests: every pattern runs on every text."""
    from distillguard.privacy import _NUMBER_REDACTIONS, _TEXT_REDACTIONS

    if not text:
        return ""
    excerpt = " ".join(text[: max_chars * 2].split())
    for pattern, mask, *_ in _TEXT_REDACTIONS + _NUMBER_REDACTIONS:
        excerpt = pattern.sub(mask, excerpt)
    return excerpt if len(excerpt) <= max_chars else excerpt[: max_chars - 1] + "…"


_REDACT_PIECES = [
    "sk-", "sk_", "pk-", "rk_", "ghp_", "xoxb-", "xoxp_", "abcdefghijklmnop", "AB12_-cd34EF56", "@", "a.b@c.org",
    "http://", "https://x.y/z", "10.0.0.1", "999.1.2.3", "+1 415 555 0100", "(415) 555-0100", "123456789",
    "١٢٣٤٥٦٧٨٩٠", " ", "\n", ".", "-", "_", "k", "p", "b", "Ünï", "<email>", "7", "(",
]  # fmt: skip


def test_redact_pre_tests_never_change_the_result():
    import random

    rng = random.Random(5)
    texts = ["", "plain words only", "call 4155550100 or mail x@y.io", "id sk_live_abcdefghijklmnop!", "٣ ٤"]
    texts += ["".join(rng.choice(_REDACT_PIECES) for _ in range(rng.randint(1, 30))) for _ in range(3000)]
    for text in texts:
        for max_chars in (240, 12):
            assert redact(text, max_chars) == _redact_every_pattern(text, max_chars), text


def _ip_prefix_by_ipaddress(ip: str | None) -> str | None:
    import ipaddress

    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip.strip().split("%")[0])
    except ValueError:
        return None
    return str(ipaddress.ip_network(f"{addr}/{24 if addr.version == 4 else 48}", strict=False))


@pytest.mark.parametrize(
    "ip",
    ["1.2.3.4", " 10.20.30.40\n", "255.255.255.255", "0.0.0.0", "256.1.1.1", "01.2.3.4", "1.2.3.04", "1.2.3.00",
     "1.2.3", "1.2.3.4.5", "1..3.4", "١.2.3.4", "1.2.3.4%eth0", "1.2.3.4 x", "+1.2.3.4", "::1", "fe80::1%eth0",
     "2001:db8:1:2::9", "::ffff:1.2.3.4", "abc", "", None],
)  # fmt: skip
def test_ip_prefix_fast_ipv4_reads_addresses_as_ipaddress_does(ip):
    assert ip_prefix(ip) == _ip_prefix_by_ipaddress(ip)


def test_hash_is_hmac_sha256_of_the_utf8_text():
    import hashlib
    import hmac

    for secret in (b"k", b"s" * 64, b"long" * 40):  # short, one block, hashed first (over 64 bytes)
        for value in ("x", "é" * 700, "\ud800 lone surrogate", 42):
            digest = hmac.new(secret, str(value).encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
            assert Hasher(secret).hash(value) == int.from_bytes(digest[:8], "little", signed=True)
    assert Hasher(b"k").hash("") is None and Hasher(b"k").hash(None) is None


def test_text_hashes_are_keyed_by_secret_and_domain():
    import pickle

    import pyarrow as pa

    texts = pa.array(["a long prompt " * 40, "a long prompt " * 40, "", None, "é\U0001f600 other"])
    h = Hasher(b"k" * 32)
    got = h.hash_texts(texts, "conv").to_pylist()
    assert got[0] == got[1] and len({got[0], got[2], got[4]}) == 3 and got[3] is None
    assert got == pickle.loads(pickle.dumps(h)).hash_texts(texts, "conv").to_pylist()  # as an ingest worker hashes
    assert got == [h.hash_text(t, "conv") for t in texts.to_pylist()]
    other_domain, other_secret = h.hash_texts(texts, "sys").to_pylist(), Hasher(b"j" * 32).hash_texts(texts, "conv").to_pylist()
    assert all(a != b and a != c for a, b, c in zip(got[:3], other_domain, other_secret))
    before = h.hash.cache_info().currsize
    h.hash_texts(pa.array(["another long text " * 50]), "sys")
    assert h.hash.cache_info().currsize == before  # long texts do not fill the identifier cache
