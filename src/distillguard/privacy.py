"""Privacy at ingest: keyed hashing of identifiers and redaction of kept text.

Identifiers become HMAC-SHA256 under a deployment secret, truncated to a
signed 64-bit integer: equal inputs stay equal (so accounts that share an IP
can still be linked) but the clear value cannot be recovered without the
secret.  An IP's network prefix is hashed on its own so subnets can be
compared without the address.  Long texts (prompt prefixes) get SipHash-2-4
under a key derived from the same secret (:meth:`Hasher.hash_texts`).

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

import pyarrow as pa

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
        # The keyed state after the secret: copying it per value skips HMAC's key setup (half its cost).
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)
        self.is_demo = is_demo
        self.hash = lru_cache(maxsize=1 << 18)(self._hash)
        self.ip_prefix_hash = lru_cache(maxsize=1 << 16)(self._ip_prefix_hash)
        self._text_keys: dict[str, bytes] = {}

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

    @property
    def fingerprint(self) -> str:
        """A short public name of the secret: equal for equal secrets, telling nothing about it (an HMAC of a
        fixed label).  Scans write it to ``summary.json`` so a gateway can tell it hashes as the scan did.

        Example:
            >>> Hasher(b"a").fingerprint == Hasher(b"a").fingerprint != Hasher(b"b").fingerprint
            True
        """
        return hmac.new(self._secret, b"distillguard secret fingerprint v1", hashlib.sha256).hexdigest()[:16]

    def hash_texts(self, values: pa.Array | pa.ChunkedArray, domain: str) -> pa.Int64Array:
        """A keyed hash of each text of a string column (null stays null), for long texts such as prompt
        prefixes: SipHash-2-4 under a key derived from the secret and ``domain`` (texts of different
        domains never hash alike), computed over the column's buffer (:mod:`distillguard.siphash`).
        Texts are mostly distinct, so this is not cached.

        Example:
            >>> import pyarrow as pa
            >>> h = Hasher(b"secret")
            >>> a, b, c = h.hash_texts(pa.array(["hello", "hello", None]), "conv").to_pylist()
            >>> a == b != h.hash_texts(pa.array(["hello"]), "sys")[0].as_py() and c is None
            True
        """
        from distillguard.siphash import siphash24_column

        key = self._text_keys.get(domain)
        if key is None:
            key = self._text_keys[domain] = hmac.digest(self._secret, b"distillguard text hash v1:" + domain.encode(), "sha256")[:16]
        return siphash24_column(values, key)

    def hash_text(self, value: str | None, domain: str) -> int | None:
        """:meth:`hash_texts` of one text."""
        if value is None:
            return None
        return self.hash_texts(pa.array([value], pa.string()), domain)[0].as_py()

    def _hash(self, value: object) -> int | None:
        if value is None or value == "":
            return None
        mac = self._keyed.copy()
        mac.update(str(value).encode("utf-8", "surrogatepass"))
        digest = mac.digest()
        return int.from_bytes(digest[:8], "little", signed=True)

    def _ip_prefix_hash(self, ip: str | None) -> int | None:
        prefix = ip_prefix(ip)
        return self._hash("net:" + prefix) if prefix else None


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # 0-255 without leading zeros, as ipaddress reads them
_IPV4 = re.compile(rf"({_OCTET}\.{_OCTET}\.{_OCTET})\.{_OCTET}")


def ip_prefix(ip: str | None) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of ``ip``; None if it is not an address."""
    if not ip:
        return None
    address = ip.strip().split("%")[0]
    dotted = _IPV4.fullmatch(address)
    if dotted:  # what ipaddress gives for a plain IPv4 address, ~10x faster
        return f"{dotted[1]}.0/24"
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return None
    bits = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


#: (pattern, mask, substrings one of which every match holds).  Most prompts hold none: a plain
#: ``in`` then spares a regex scan that would try every position in vain.
_TEXT_REDACTIONS = [
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "<email>", ("@",)),
    # every prefix ends in k, p or b, followed by - or _
    (re.compile(r"\b(?:sk|pk|rk|ghp|xox[bp])[-_][A-Za-z0-9_-]{12,}\b"), "<secret>",
     ("k-", "k_", "p-", "p_", "b-", "b_")),
    (re.compile(r"https?://\S+"), "<url>", ("http",)),
]  # fmt: skip
#: (pattern, mask) of the masks that need a digit, run only on text that has one.
_NUMBER_REDACTIONS = [
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), "<ip>"),
    (re.compile(r"(?<![\w])\+?\d[\d ()-]{7,}\d\b"), "<phone>"),
    (re.compile(r"\b\d{9,}\b"), "<number>"),
]
_DIGIT = re.compile(r"\d")


def redact(text: str | None, max_chars: int = 240) -> str:
    """A short excerpt of ``text`` with contact details, secrets and long numbers masked."""
    if not text:
        return ""
    excerpt = " ".join(text[: max_chars * 2].split())
    for pattern, mask, needles in _TEXT_REDACTIONS:
        if any(needle in excerpt for needle in needles):
            excerpt = pattern.sub(mask, excerpt)
    if _DIGIT.search(excerpt):
        for pattern, mask in _NUMBER_REDACTIONS:
            excerpt = pattern.sub(mask, excerpt)
    return excerpt if len(excerpt) <= max_chars else excerpt[: max_chars - 1] + "…"
