"""The store abstraction: append Arrow batches, query with SQL.

Two methods, one backend per module (``store/duckdb.py`` today).  Tables are
the ones named in :mod:`distillguard.schema`: ``events``, ``texts``,
``samples``, ``accounts``.

Example:
    >>> from distillguard.store.duckdb import DuckDBStore
    >>> store = DuckDBStore(":memory:")
    >>> store.query("SELECT count(*) AS n FROM events").column("n")[0].as_py()
    0
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import pyarrow as pa


class EventStore(ABC):
    """Where normalized events live between ingest and scan."""

    @abstractmethod
    def append(self, table: str, batch: pa.Table) -> int:
        """Add ``batch`` to ``table``; rows whose key is already stored are skipped. Returns rows added."""

    @abstractmethod
    def query(self, sql: str, params: list | None = None) -> pa.Table:
        """Run a read-only SQL query and return the result as Arrow."""
