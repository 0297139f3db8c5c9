from __future__ import annotations

import pytest

from distillguard.errors import InputError
from distillguard.store.duckdb import DuckDBStore
from tests.factories import event_row, events_table


def test_append_skips_stored_and_repeated_event_ids(tmp_path):
    store = DuckDBStore(tmp_path / "s.duckdb")
    batch = events_table([event_row(0), event_row(1), event_row(1)])
    assert store.append("events", batch) == 2
    assert store.append("events", batch) == 0
    store.close()
    reopened = DuckDBStore(tmp_path / "s.duckdb")
    assert reopened.query("SELECT count(*) AS n FROM events").column("n")[0].as_py() == 2


def test_list_columns_survive_and_parquet_export(tmp_path):
    store = DuckDBStore(":memory:")
    store.append("events", events_table([event_row(3)]))
    assert store.query("SELECT minhash_bands FROM events").column(0)[0].as_py() == [30000, 30001, 30002, 30003]
    paths = store.export_parquet(tmp_path / "pq")
    assert {p.name for p in paths} >= {"events.parquet", "accounts.parquet"}


def test_schema_version_mismatch_is_a_clear_error(tmp_path):
    store = DuckDBStore(tmp_path / "s.duckdb")
    store.con.execute("UPDATE meta SET value='999' WHERE key='event_schema_version'").fetchall()
    store.close()
    with pytest.raises(InputError, match="schema v999"):
        DuckDBStore(tmp_path / "s.duckdb")


def test_first_row_of_a_repeated_event_id_wins():
    store = DuckDBStore(":memory:")
    first, again = event_row(1), event_row(1)
    again["model"] = "a-later-model"
    assert store.append("events", events_table([event_row(0), first, again])) == 2
    assert store.query("SELECT model FROM events WHERE event_id = ?", [first["event_id"]]).column(0).to_pylist() == [first["model"]]


def test_stores_made_with_a_primary_key_still_take_appends(tmp_path):
    import duckdb

    from distillguard.schema import EVENT_SCHEMA
    from distillguard.store.duckdb import _DUCK_TYPES

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))  # the layout of stores written before the index was dropped
    cols = ", ".join(f'"{f.name}" {_DUCK_TYPES[f.type]}' + (" PRIMARY KEY" if f.name == "event_id" else "") for f in EVENT_SCHEMA)
    con.execute(f"CREATE TABLE events ({cols})").fetchall()
    con.close()
    store = DuckDBStore(path)
    assert store.append("events", events_table([event_row(0), event_row(1)])) == 2
    assert store.append("events", events_table([event_row(1), event_row(2)])) == 1


@pytest.mark.parametrize("ids", [["a", "a", "b"], ["b", "a", "a", "c", "b"], ["a", "b", "c"], ["c", "c", "c"]])
def test_repeated_event_ids_anywhere_in_a_batch_are_stored_once(ids):
    store = DuckDBStore(":memory:")
    rows = []
    for k, i in enumerate(ids):
        row = event_row(0)
        row.update(event_id=i, model=f"m{k}")
        rows.append(row)
    assert store.append("events", events_table(rows)) == len(set(ids))
    stored = {r["event_id"]: r["model"] for r in store.query("SELECT event_id, model FROM events").to_pylist()}
    assert stored == {i: f"m{ids.index(i)}" for i in ids}  # the first row of each id, whatever the order


def test_temp_table_holds_the_rows_while_the_block_runs_and_is_dropped_after_even_on_error():
    store = DuckDBStore(":memory:")
    with store.temp_table("_t", "SELECT range AS x FROM range(?)", [3]) as name:
        assert store.query(f"SELECT sum(x) AS s FROM {name}").column("s")[0].as_py() == 3
    with pytest.raises(RuntimeError):
        with store.temp_table("_t", "SELECT 1 AS x"):
            raise RuntimeError("the block failed")
    assert not store.query("SELECT table_name FROM duckdb_tables() WHERE table_name = '_t'").num_rows
