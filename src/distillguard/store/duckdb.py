"""DuckDB backend of :class:`~distillguard.store.base.EventStore` (a file, or ``:memory:``).

Example:
    >>> store = DuckDBStore(":memory:")
    >>> store.path
    ':memory:'
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

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

#: table -> (schema, primary key or None)
TABLES: dict[str, tuple[pa.Schema, str | None]] = {
    "events": (EVENT_SCHEMA, "event_id"),
    "texts": (TEXT_SCHEMA, "event_id"),
    "samples": (SAMPLE_SCHEMA, "event_id"),
    "accounts": (ACCOUNT_SCHEMA, "account_id"),
}


def _ddl(name: str, schema: pa.Schema, key: str | None) -> str:
    cols = [f'"{f.name}" {_DUCK_TYPES[f.type]}' + (" PRIMARY KEY" if f.name == key else "") for f in schema]
    return f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(cols)})"


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
            self._exec(_ddl(name, schema, key))
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
        self.con.register("_incoming", batch)
        try:
            before = self._count(table)
            conflict = " ON CONFLICT DO NOTHING" if key else ""
            self._exec(f"INSERT INTO {table} SELECT * FROM _incoming{conflict}")
            return self._count(table) - before
        finally:
            self.con.unregister("_incoming")

    def _count(self, table: str) -> int:
        return self._exec(f"SELECT count(*) FROM {table}")[0][0]

    def query(self, sql: str, params: list | None = None) -> pa.Table:
        return self.con.sql(sql, params=params).to_arrow_table() if params else self.con.sql(sql).to_arrow_table()

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
