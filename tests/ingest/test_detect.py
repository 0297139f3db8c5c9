"""Format detection and the reader registry."""

from __future__ import annotations

import orjson
import pytest

from distillguard.errors import InputError
from distillguard.ingest import READERS, detect_format, make_reader, read_file
from distillguard.ingest.otel import OtelReader
from distillguard.ingest.writers import to_batch_lines, to_otlp_document, to_otlp_span, write_events

from .factories import make_event, write_jsonl


@pytest.mark.parametrize(("fmt", "expected"), [("litellm", "litellm"), ("openai", "openai"), ("otlp", "otel")])
@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_written_formats_are_detected(tmp_path, fmt, expected, suffix):
    path = tmp_path / f"x{suffix}"
    write_events([make_event()], path, fmt=fmt)
    assert detect_format(path) == expected


def test_batch_and_pretty_otlp_are_detected(tmp_path):
    input_line, _ = to_batch_lines(make_event(), "c1")
    assert detect_format(write_jsonl(tmp_path / "b_input.jsonl", [input_line])) == "openai_batch"
    pretty = tmp_path / "traces.json"
    pretty.write_bytes(orjson.dumps(to_otlp_document([to_otlp_span(make_event())]), option=orjson.OPT_INDENT_2))
    assert detect_format(pretty) == "otel"


def test_unknown_format_names_the_file_and_lists_known_formats(tmp_path):
    path = write_jsonl(tmp_path / "mystery.jsonl", [{"foo": 1}])
    with pytest.raises(InputError) as e:
        detect_format(path)
    assert e.value.path == str(path)
    assert all(name in e.value.reason for name in READERS)


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("empty.jsonl", b"", "file is empty"),
    ("export.csv", b"a,b\n1,2\n", "CSV and Parquet logs need a column mapping (mapping=... / --mapping FILE)"),
])
def test_whole_file_problems(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as e:
        detect_format(path)
    assert (e.value.path, e.value.reason) == (str(path), reason)


def test_read_file_with_unknown_explicit_format(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"a": 1}])
    with pytest.raises(InputError, match="unknown format 'splunk'; known formats: otel, openai_batch"):
        read_file(path, fmt="splunk")


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_file(tmp_path / "nope.jsonl")


def test_make_reader_keeps_counters_reachable(tmp_path):
    path = tmp_path / "t.jsonl"
    write_events([make_event()], path, fmt="otlp")
    reader = make_reader(path)
    assert isinstance(reader, OtelReader) and len(list(reader.read(path))) == 1 and reader.skipped_spans == 0
    with pytest.raises(TypeError, match="takes no options"):
        make_reader(path, account_id="a")
