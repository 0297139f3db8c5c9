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
