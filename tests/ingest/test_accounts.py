"""The accounts table."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillguard.errors import InputError, Quarantined
from distillguard.ingest import read_accounts

from .factories import write_jsonl


def test_csv_with_iso_dates_and_extra_columns(tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text("account_id,created_at,email,plan\nacct-1,2024-01-01T00:00:00Z,a@x.org,pro\n,2024-01-02,b@x.org,\n")
    good, bad = read_accounts(path)
    assert good == {"account_id": "acct-1", "created_at": 1_704_067_200.0, "payment_fingerprint": None,
                    "email": "a@x.org", "country": None, "verification_tier": None, "organization": None}
    assert isinstance(bad, Quarantined) and (bad.line, bad.field, bad.reason) == (3, "account_id", "missing")


def test_jsonl_and_parquet(tmp_path):
    rows = [{"account_id": "a1", "created_at": 1_700_000_000, "country": "FR"}]
    (from_jsonl,) = read_accounts(write_jsonl(tmp_path / "accounts.jsonl.gz", rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "accounts.parquet")
    (from_parquet,) = read_accounts(tmp_path / "accounts.parquet")
    assert from_jsonl == from_parquet and from_jsonl["country"] == "FR"


def test_created_at_in_ms_is_quarantined(tmp_path):
    (bad,) = read_accounts(write_jsonl(tmp_path / "a.jsonl", [{"account_id": "a", "created_at": 1_700_000_000_000}]))
    assert (bad.line, bad.field) == (1, "created_at") and "looks like milliseconds" in bad.reason


def test_table_without_account_id_column(tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text("id,email\n1,a@x.org\n")
    with pytest.raises(InputError) as e:
        list(read_accounts(path))
    assert (e.value.path, e.value.field) == (str(path), "account_id")
