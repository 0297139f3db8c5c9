"""Privacy at ingest: keyed hashing of identifiers and redaction of kept text.

Identifiers become HMAC-SHA256 under a deployment secret, truncated to a
signed 64-bit integer: equal inputs stay equal (so accounts that share an IP
can still be linked) but the clear value cannot be recovered without the
secret.  An IP's network prefix is hashed on its own so subnets can be
compared without the address.

Example:
    >>> h = Hasher(b"secret")
    >>> h.hash("10.0.0.7") == h.hash("10.0.0.7") != h.hash("10.0.0.8")
    True
    >>> h.ip_prefix_hash("10.0.0.7") == h.ip_prefix_hash("10.0.0.8")
    True
    >>> redact("mail me at bob@example.com or call +1 415 555 0100")
    'mail me at <email> or call <phone>'
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from functools import lru_cache
from pathlib import Path

from distillguard.errors import ConfigError

#: Used only when no secret is configured; scans say so in their summary.
DEMO_SECRET = b"distillguard-demo-secret-not-for-production"
SECRET_ENV = "DISTILLGUARD_SECRET"


class Hasher:
    """Keyed hashing of identifiers (cached: identifiers repeat across events)."""

    def __init__(self, secret: bytes, *, is_demo: bool = False):
        if not secret:
            raise ConfigError("the hashing secret is empty")
        self._secret = secret
        self.is_demo = is_demo
        self.hash = lru_cache(maxsize=1 << 18)(self._hash)
        self.ip_prefix_hash = lru_cache(maxsize=1 << 16)(self._ip_prefix_hash)

    def __reduce__(self):
        # Pickled for ingest worker processes (through their start-up pipe only); the caches are rebuilt.
        return (Hasher, (self._secret,), {"is_demo": self.is_demo})

    def __setstate__(self, state: dict) -> None:
        self.is_demo = state["is_demo"]

    @classmethod
    def from_config(cls, secret_file: str | Path | None = None) -> Hasher:
        """The secret from ``secret_file``, else ``$DISTILLGUARD_SECRET``, else the demo secret."""
        if secret_file is not None:
            path = Path(secret_file)
            if not path.is_file():
                raise ConfigError(f"secret file not found: {path}")
            return cls(path.read_bytes().strip())
        env = os.environ.get(SECRET_ENV)
        if env:
            return cls(env.encode())
        return cls(DEMO_SECRET, is_demo=True)

    def _hash(self, value: object) -> int | None:
        if value is None or value == "":
            return None
        digest = hmac.new(self._secret, str(value).encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "little", signed=True)

    def _ip_prefix_hash(self, ip: str | None) -> int | None:
        prefix = ip_prefix(ip)
        return self._hash("net:" + prefix) if prefix else None


def ip_prefix(ip: str | None) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of ``ip``; None if it is not an address."""
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip.strip().split("%")[0])
    except ValueError:
        return None
    bits = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


_REDACTIONS = [
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "<email>"),
    (re.compile(r"\b(?:sk|pk|rk|ghp|xox[bp])[-_][A-Za-z0-9_-]{12,}\b"), "<secret>"),
    (re.compile(r"https?://\S+"), "<url>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), "<ip>"),
    (re.compile(r"(?<![\w])\+?\d[\d ()-]{7,}\d\b"), "<phone>"),
    (re.compile(r"\b\d{9,}\b"), "<number>"),
]


def redact(text: str | None, max_chars: int = 240) -> str:
    """A short excerpt of ``text`` with contact details, secrets and long numbers masked."""
    if not text:
        return ""
    excerpt = " ".join(text[: max_chars * 2].split())
    for pattern, mask in _REDACTIONS:
        excerpt = pattern.sub(mask, excerpt)
    return excerpt if len(excerpt) <= max_chars else excerpt[: max_chars - 1] + "…"
