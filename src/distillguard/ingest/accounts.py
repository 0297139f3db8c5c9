"""The optional accounts table (CSV, JSONL or Parquet, plain or .gz): what the provider knows per account.

Columns: ``account_id`` (required) and any of ``created_at`` (epoch seconds or
ISO-8601), ``payment_fingerprint``, ``email``, ``country``,
``verification_tier``, ``organization``.  Other columns are ignored.

Example:
    >>> for item in read_accounts_table(Path("accounts.csv")):  # doctest: +SKIP
    ...     print(item["account_id"], item.get("country"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distillguard.errors import InputError, Quarantined
from distillguard.ingest.lines import (
    FieldError,
    describe,
    iter_rows,
    quarantine,
    table_columns,
    table_format,
    to_epoch,
)
from distillguard.schema import RawAccount
from distillguard.types import AccountStream, PathArg

TEXT_FIELDS = ("payment_fingerprint", "email", "country", "verification_tier", "organization")


def _text(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise FieldError(key, f"expected a string, got {describe(value)}")


def account_from_row(row: dict[str, Any]) -> RawAccount:
    """One row as a RawAccount; raises FieldError naming a bad column.

    Example:
        >>> account_from_row({"account_id": 7, "created_at": "2024-01-01T00:00:00Z"})["created_at"]
        1704067200.0
    """
    account_id = _text(row, "account_id")
    if account_id is None:
        raise FieldError("account_id", "missing")
    account: RawAccount = {"account_id": account_id, "created_at": to_epoch(row.get("created_at"), "created_at")}
    for key in TEXT_FIELDS:
        account[key] = _text(row, key)  # type: ignore[literal-required]
    return account


def read_accounts_table(path: PathArg) -> AccountStream:
    """Yield a RawAccount per row, a Quarantined per unusable row; InputError if there is no account_id column."""
    path = Path(path)
    fmt = table_format(path)
    if "account_id" not in table_columns(path, fmt):
        raise InputError(str(path), "accounts table has no 'account_id' column", field="account_id")
    for item in iter_rows(path, fmt):
        if isinstance(item, Quarantined):
            yield item
            continue
        line_no, raw, row = item
        try:
            yield account_from_row(row)
        except FieldError as e:
            yield quarantine(path, line_no, e.field, e.reason, raw)
