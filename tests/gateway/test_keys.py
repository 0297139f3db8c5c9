"""API keys → accounts by keyed hash; the clear key is never kept or echoed."""

from __future__ import annotations

import pytest

from distillguard.errors import ConfigError
from distillguard.gateway.keys import KeyTable, bearer_token
from distillguard.privacy import Hasher

H = Hasher(b"secret")


def test_keys_file_maps_clear_keys_and_hashes(tmp_path):
    path = tmp_path / "keys.yml"
    path.write_text(f"keys:\n  - key: sk-a\n    account_id: acct-a\n    team_id: t1\n"
                    f"  - key_hash: {H.hash('sk-b')}\n    account_id: acct-b\n")  # fmt: skip
    table = KeyTable.from_file(path, H)
    assert table.lookup("sk-a").account_id == "acct-a" and table.lookup("sk-a").team_id == "t1"
    assert table.lookup("sk-b").account_id == "acct-b"
    assert table.lookup("sk-c") is None and table.lookup(None) is None and table.lookup("") is None
    assert table.lookup("sk-a").key_hash == H.hash("sk-a")
    assert KeyTable.from_file(path, Hasher(b"other")).lookup("sk-b") is None  # hashes are secret-specific


def test_json_list_form(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text('[{"key": "sk-a", "account_id": "acct-a"}]')
    assert KeyTable.from_file(path, H).lookup("sk-a").account_id == "acct-a"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"key": "sk-live-123"}], "keys[0]: account_id missing"),
        ([{"account_id": "a"}], "needs a non-empty string key"),
        ([{"key": "sk-live-123", "account_id": "a"}, {"key": "sk-live-123", "account_id": "b"}], "keys[1]: the same key"),
        (["sk-live-123"], "keys[0]: expected a mapping"),
    ],
)
def test_bad_entries_name_the_entry_not_the_key(entries, message):
    with pytest.raises(ConfigError) as err:
        KeyTable.from_entries(entries, H)
    assert message in str(err.value) and "sk-live-123" not in str(err.value)


def test_unparsable_file_does_not_quote_it(tmp_path):
    path = tmp_path / "keys.yml"
    path.write_text("keys:\n  - key: sk-live-999\n    account_id: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        KeyTable.from_file(path, H)
    assert "sk-live-999" not in str(err.value)


def test_bearer_token():
    assert bearer_token(b"Bearer sk-a") == "sk-a" and bearer_token(b"bearer  sk-a ") == "sk-a"
    assert bearer_token(b"Basic abc") is None and bearer_token(None) is None and bearer_token(b"Bearer ") is None
