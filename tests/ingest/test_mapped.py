"""Any JSONL/CSV/Parquet through a YAML column mapping."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillguard.errors import InputError, Quarantined
from distillguard.ingest import read_file
from distillguard.ingest.mapped import MappedReader, load_mapping

from .factories import write_jsonl

MAPPING = """\
format: csv
ts_unit: ms
columns:
  ts: created_at
  account_id: user
  prompt: input_text
  completion: output_text
  temperature: temp
"""


def write_mapping(tmp_path, text=MAPPING):
    path = tmp_path / "mapping.yml"
    path.write_text(text)
    return path


def test_csv_with_ms_timestamps(tmp_path):
    data = tmp_path / "export.csv"
    data.write_text("created_at,user,input_text,output_text,temp,unused\n"
                    "1700000000500,u1,What is 2+2?,4,0.5,x\n"
                    "1700000001000,u2,Hi,,,\n")
    events = list(read_file(data, mapping=write_mapping(tmp_path)))
    assert [(e["ts"], e["account_id"], e["temperature"], e["source_line"]) for e in events] == [
        (1_700_000_000.5, "u1", 0.5, 2), (1_700_000_001.0, "u2", None, 3)]
    assert events[0]["messages"] == [{"role": "user", "content": "What is 2+2?"}]
    assert events[0]["completion_text"] == "4" and events[1]["completion_text"] is None
    assert events[0]["source_format"] == "mapped"
    assert [e["event_id"] for e in events] == [e["event_id"] for e in read_file(data, mapping=write_mapping(tmp_path))]


@pytest.mark.parametrize("name", ["logs.jsonl", "logs.jsonl.gz"])
def test_jsonl_with_dotted_paths_and_iso_times(tmp_path, name):
    mapping = {"ts_unit": "iso8601", "columns": {"ts": "at", "model": "req.model", "messages": "req.messages",
                                                 "event_id": "id", "tools_count": "req.tools"}}
    rows = [{"id": "r1", "at": "2023-11-14T22:13:20Z",
             "req": {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{}, {}]}},
            {"id": "r2", "at": "2023-11-14T22:13:21Z", "req": {"model": "m"}}]
    events = list(read_file(write_jsonl(tmp_path / name, rows), mapping=mapping))
    assert [(e["event_id"], e["ts"], e["model"], e["tools_count"]) for e in events] == [
        ("r1", 1_700_000_000.0, "m", 2), ("r2", 1_700_000_001.0, "m", None)]
    assert events[0]["messages"] == [{"role": "user", "content": "x"}] and events[1]["messages"] == []


def test_parquet_read_in_batches(tmp_path):
    path = tmp_path / "logs.parquet"
    n = 20_000
    table = pa.table({"t": pa.array([1_700_000_000 + i for i in range(n)], pa.int64()),
                      "who": [f"a{i % 7}" for i in range(n)], "meta": [{"ip": "10.0.0.1"}] * n})
    pq.write_table(table, path, row_group_size=5000)
    mapping = {"columns": {"ts": "t", "account_id": "who", "ip": "meta.ip"}}
    events = list(read_file(path, mapping=mapping))
    assert len(events) == n and events[-1]["source_line"] == n
    assert (events[-1]["ts"], events[-1]["account_id"], events[-1]["ip"]) == (1_700_019_999.0, "a0", "10.0.0.1")


def test_unknown_target_names_mapping_file_and_field(tmp_path):
    mapping_path = write_mapping(tmp_path, "columns:\n  ts: created_at\n  acount_id: user\n")
    with pytest.raises(InputError) as e:
        load_mapping(mapping_path)
    assert (e.value.path, e.value.field) == (str(mapping_path), "acount_id")
    assert e.value.reason.startswith("unknown target field")


def test_source_column_missing_from_header_names_mapping_file_and_field(tmp_path):
    data = tmp_path / "export.csv"
    data.write_text("created_at,username\n1700000000000,u1\n")
    mapping_path = write_mapping(tmp_path)
    with pytest.raises(InputError) as e:
        list(read_file(data, mapping=mapping_path))
    assert (e.value.path, e.value.field) == (str(mapping_path), "account_id")
    assert "source column 'user' is not in" in e.value.reason


@pytest.mark.parametrize(
    ("text", "field"),
    [("columns:\n  account_id: user\n", "ts"), ("ts_unit: days\ncolumns:\n  ts: t\n", "ts_unit"),
     ("format: xml\ncolumns:\n  ts: t\n", "format")],
)
def test_invalid_mapping(tmp_path, text, field):
    with pytest.raises(InputError) as e:
        MappedReader(write_mapping(tmp_path, text))
    assert e.value.field == field


def test_timestamp_in_ms_without_declared_unit_is_quarantined(tmp_path):
    data = tmp_path / "export.csv"
    data.write_text("created_at,user\n1700000000,u1\n1700000000000,u2\nyesterday,u3\n")
    mapping = {"columns": {"ts": "created_at", "account_id": "user"}}
    ok, ms, garbage = read_file(data, mapping=mapping)
    assert ok["ts"] == 1_700_000_000.0
    assert isinstance(ms, Quarantined)
    assert (ms.file, ms.line, ms.field) == (str(data), 3, "created_at")
    assert ms.reason == "expected epoch seconds, got 1700000000000.0 (looks like milliseconds)"
    assert (garbage.line, garbage.field) == (4, "created_at")
