"""Client API keys → accounts, compared by keyed hash only.

The keys file (YAML or JSON) lists one entry per key; an entry gives either the
clear ``key`` or its ``key_hash`` (``Hasher.hash(key)``, the signed 64-bit
integer, so the file need not hold clear keys)::

    keys:
      - key: sk-live-abc123
        account_id: acct-1
        team_id: team-a          # optional
        org_id: org-1            # optional
      - key_hash: -4616189618054758400
        account_id: acct-2

At load every key is hashed with the deployment secret and the clear value is
dropped; a presented key is hashed the same way and looked up.  Clear keys are
never logged or stored: what the gateway records is the hash.

Example:
    >>> from distillguard.privacy import Hasher
    >>> keys = KeyTable.from_entries([{"key": "sk-a", "account_id": "acct-1"}], Hasher(b"k"))
    >>> keys.lookup("sk-a").account_id, keys.lookup("sk-b")
    ('acct-1', None)
    >>> bearer_token(b"Bearer sk-a")
    'sk-a'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distillguard.errors import ConfigError
from distillguard.gateway.config import read_yaml_or_json
from distillguard.privacy import Hasher


@dataclass(frozen=True)
class KeyEntry:
    """The account a key belongs to (the key itself only as its hash)."""

    key_hash: int
    account_id: str
    team_id: str | None = None
    org_id: str | None = None


class KeyTable:
    """Hash → :class:`KeyEntry`; lookups hash the presented key (cached by the Hasher)."""

    def __init__(self, entries: dict[int, KeyEntry], hasher: Hasher):
        self._entries = entries
        self.hasher = hasher

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def from_entries(cls, entries: list[dict[str, Any]], hasher: Hasher, source: str = "keys") -> KeyTable:
        """Build from parsed entries; a bad entry raises ConfigError naming its index (never the key)."""
        table: dict[int, KeyEntry] = {}
        for i, item in enumerate(entries):
            where = f"{source}: keys[{i}]"
            if not isinstance(item, dict):
                raise ConfigError(f"{where}: expected a mapping with key (or key_hash) and account_id")
            account = item.get("account_id")
            if not isinstance(account, str) or not account:
                raise ConfigError(f"{where}: account_id missing or not a string")
            if isinstance(item.get("key"), str) and item["key"]:
                key_hash = hasher.hash(item["key"])
            elif isinstance(item.get("key_hash"), int):
                key_hash = item["key_hash"]
            else:
                raise ConfigError(f"{where}: needs a non-empty string key or an integer key_hash")
            if key_hash in table:
                raise ConfigError(f"{where}: the same key is listed twice")
            table[key_hash] = KeyEntry(key_hash, account, item.get("team_id"), item.get("org_id"))
        return cls(table, hasher)

    @classmethod
    def from_file(cls, path: str | Path, hasher: Hasher) -> KeyTable:
        """Read a YAML/JSON keys file: ``{keys: [...]}`` or a bare list of entries."""
        p = Path(path)
        # the parser's message may quote a line of the file, i.e. a key: say only where
        data = read_yaml_or_json(p, "keys file", quote_errors=False)
        if isinstance(data, dict):
            data = data.get("keys")
        if not isinstance(data, list):
            raise ConfigError(f"{p}: expected a list of keys (or a mapping with a 'keys' list)")
        return cls.from_entries(data, hasher, str(p))

    def lookup(self, key: str | None) -> KeyEntry | None:
        """The entry of a presented key, or None for a missing or unknown key."""
        if not key:
            return None
        return self._entries.get(self.hasher.hash(key))


def bearer_token(authorization: bytes | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value (None if absent or another scheme)."""
    if not authorization or len(authorization) < 8 or authorization[:7].lower() != b"bearer ":
        return None
    return authorization[7:].strip().decode("latin-1") or None
