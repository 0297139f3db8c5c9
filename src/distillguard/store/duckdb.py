"""DuckDB backend of :class:`~distillguard.store.base.EventStore` (a file, or ``:memory:``).

Example:
    >>> store = DuckDBStore(":memory:")
    >>> store.path
    ':memory:'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from distillguard.errors import InputError
from distillguard.schema import ACCOUNT_SCHEMA, EVENT_SCHEMA, EVENT_SCHEMA_VERSION, SAMPLE_SCHEMA, TEXT_SCHEMA
from distillguard.store.base import EventStore

_DUCK_TYPES = {
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.int64(): "BIGINT",
    pa.bool_(): "BOOLEAN",
    pa.list_(pa.int64()): "BIGINT[]",
}

#: table -> (schema, key kept unique by insert_new, or None)
TABLES: dict[str, tuple[pa.Schema, str | None]] = {
    "events": (EVENT_SCHEMA, "event_id"),
    "texts": (TEXT_SCHEMA, "event_id"),
    "samples": (SAMPLE_SCHEMA, "event_id"),
    "accounts": (ACCOUNT_SCHEMA, "account_id"),
}


def _ddl(name: str, schema: pa.Schema) -> str:
    # No PRIMARY KEY: keys are kept unique by append()'s anti-join.  An index costs ~2.5x the
    # insert time of a 1M-event ingest (docs/performance.md); stores made with one still work.
    cols = [f'"{f.name}" {_DUCK_TYPES[f.type]}' for f in schema]
    return f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(cols)})"


def first_per_key(batch: pa.Table, key: str) -> pa.Table:
    """``batch`` without later rows that repeat an earlier row's ``key`` (order kept).

    Example:
        >>> t = pa.table({"id": ["a", "b", "a"], "v": [1, 2, 3]})
        >>> first_per_key(t, "id").column("v").to_pylist()
        [1, 2]
    """
    if pa.compute.count_distinct(batch.column(key), mode="all").as_py() == batch.num_rows:
        return batch
    indexed = pa.table({"k": batch.column(key), "i": pa.array(range(batch.num_rows), pa.int64())})
    first = indexed.group_by("k", use_threads=False).aggregate([("i", "min")]).column("i_min")
    return batch.take(pa.compute.take(first, pa.compute.sort_indices(first)))  # first rows, in input order


def insert_new(con: duckdb.DuckDBPyConnection, table: str, batch: pa.Table, key: str | None) -> int:
    """Insert the rows of ``batch`` (already in ``table``'s schema) whose ``key`` is not stored yet.

    Returns the rows added.  The first of several rows with one key in ``batch`` wins.  An
    ``event_id`` is taken to carry one ``ts``: a stored row is matched only within the batch's range.

    Example:
        >>> con = duckdb.connect()
        >>> _ = con.execute("CREATE TABLE t (id VARCHAR, v BIGINT)").fetchall()
        >>> insert_new(con, "t", pa.table({"id": ["a", "a"], "v": [1, 2]}), "id")
        1
        >>> insert_new(con, "t", pa.table({"id": ["a", "b"], "v": [3, 4]}), "id")
        1
    """
    if key:
        batch = first_per_key(batch, key)
    new, params = "", []
    if key:
        # Only stored rows in the batch's time range are probed (a repeated event has the same ``ts``),
        # so DuckDB's zone maps skip the rest: a long-running gateway store does not slow every insert.
        near = ""
        if key == "event_id" and "ts" in batch.column_names:
            lo, hi = pa.compute.min_max(batch.column("ts")).values()
            if lo.is_valid and batch.column("ts").null_count == 0:
                near, params = " AND t.ts BETWEEN ? AND ?", [lo.as_py(), hi.as_py()]
        new = f' i WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t."{key}" = i."{key}"{near})'
    con.register("_incoming", batch)
    try:
        return int(con.execute(f"INSERT INTO {table} SELECT * FROM _incoming{new}", params).fetchall()[0][0])
    finally:
        con.unregister("_incoming")


class DuckDBStore(EventStore):
    """Events in one DuckDB database file; re-appending a stored event_id is a no-op."""

    def __init__(self, path: str | Path = ":memory:", *, threads: int | None = None, memory_limit: str = "1GB"):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(self.path)
        except duckdb.Error as exc:
            raise InputError(self.path, f"cannot open the DuckDB store: {exc}") from exc
        # DuckDB spills to disk past this; 1 GB keeps a 1M-event scan with linking near 2.6 GB RSS
        self._exec(f"SET memory_limit='{memory_limit}'")
        if threads:
            self._exec(f"SET threads={int(threads)}")
        for name, (schema, key) in TABLES.items():
            self._exec(_ddl(name, schema))
        self._exec("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        rows = self._exec("SELECT value FROM meta WHERE key='event_schema_version'")
        stored = rows[0] if rows else None
        if stored is None:
            self._exec("INSERT INTO meta VALUES ('event_schema_version', ?)", [str(EVENT_SCHEMA_VERSION)])
        elif int(stored[0]) != EVENT_SCHEMA_VERSION:
            raise InputError(
                self.path,
                f"store has event schema v{stored[0]}, this distillguard writes v{EVENT_SCHEMA_VERSION}; "
                "re-ingest into a new store",
            )

    def _exec(self, sql: str, params: list | None = None) -> list[tuple]:
        # DuckDB 2 wants every result drained before the next statement.
        return self.con.execute(sql, params or []).fetchall()

    def append(self, table: str, batch: pa.Table) -> int:
        schema, key = TABLES[table]
        if batch.num_rows == 0:
            return 0
        batch = batch.select(schema.names).cast(schema)
        return insert_new(self.con, table, batch, key)

    def query(self, sql: str, params: list | None = None) -> pa.Table:
        return self.con.sql(sql, params=params).to_arrow_table() if params else self.con.sql(sql).to_arrow_table()

    @contextmanager
    def temp_table(self, name: str, select_sql: str, params: list | None = None) -> Iterator[str]:
        """The rows of ``select_sql`` as the temp table ``name`` while the block runs; dropped after.

        For a query that reads a costly view many times (the feature query reads its source in some
        twenty parts): the view is computed once.

        Example:
            >>> store = DuckDBStore(":memory:")
            >>> with store.temp_table("_t", "SELECT 1 AS x") as t:
            ...     store.query(f"SELECT x FROM {t}").column("x").to_pylist()
            [1]
        """
        self._exec(f"CREATE OR REPLACE TEMP TABLE {name} AS {select_sql}", params)
        try:
            yield name
        finally:
            self._exec(f"DROP TABLE IF EXISTS {name}")

    def export_parquet(self, directory: str | Path) -> list[Path]:
        """Write every table to ``directory/<table>.parquet`` (for Spark or other tools)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in TABLES:
            path = out / f"{name}.parquet"
            self._exec(f"COPY {name} TO '{path}' (FORMAT parquet)")
            paths.append(path)
        return paths

    def close(self) -> None:
        self.con.close()
