"""Shared line reading and typed field helpers."""

from __future__ import annotations

import pytest

from distillguard.errors import InputError, Quarantined
from distillguard.ingest.lines import (
    MAX_RAW_CHARS,
    FieldError,
    FieldTypes,
    block_lines,
    content_text,
    iter_json_objects,
    iter_line_blocks,
    iter_lines,
    iter_rows,
    to_epoch,
    to_messages,
)

from .factories import truncate_gzip, write_jsonl


def test_iter_json_objects_skips_blank_lines_and_quarantines_bad_ones(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"a": 1}, "", "   ", "{not json", "[1, 2]", {"b": 2}])
    items = list(iter_json_objects(path))
    assert [(i[0], i[2]) for i in items if not isinstance(i, Quarantined)] == [(1, {"a": 1}), (6, {"b": 2})]
    bad = [i for i in items if isinstance(i, Quarantined)]
    assert [(q.file, q.line, q.field) for q in bad] == [(str(path), 4, None), (str(path), 5, None)]
    assert bad[0].reason.startswith("not valid JSON") and bad[0].raw == "{not json"
    assert bad[1].reason == "expected a JSON object, got list"


def test_quarantined_raw_is_capped(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", ["x" * (MAX_RAW_CHARS + 100)])
    (q,) = iter_json_objects(path)
    assert len(q.raw) == MAX_RAW_CHARS


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file_is_an_input_error(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError) as e:
        list(iter_json_objects(path))
    assert e.value.path == str(path) and e.value.reason == "file is empty"


def test_truncated_gzip_keeps_lines_read_and_names_the_last_line(tmp_path):
    records = [{"i": i, "pad": "p" * 200 + str(i * 7919)} for i in range(2000)]
    path = truncate_gzip(write_jsonl(tmp_path / "x.jsonl.gz", records))
    items = list(iter_json_objects(path))
    good = [i for i in items if not isinstance(i, Quarantined)]
    (last,) = [i for i in items if isinstance(i, Quarantined)]
    assert items[-1] is last
    assert 0 < len(good) < 2000
    assert last.file == str(path) and last.line == good[-1][0]
    assert f"truncated or corrupt after line {last.line}" in last.reason


def test_gzip_is_detected_by_content_not_name(tmp_path):
    path = write_jsonl(tmp_path / "x.gz", [{"a": 1}])
    renamed = path.rename(tmp_path / "x.jsonl")
    assert [i[2] for i in iter_json_objects(renamed)] == [{"a": 1}]


@pytest.mark.parametrize(
    ("value", "unit_name"),
    [(1.7e12, "milliseconds"), (1.7e15, "microseconds"), (1.7e18, "nanoseconds")],
)
def test_epoch_in_a_smaller_unit_is_refused_naming_the_unit(value, unit_name):
    with pytest.raises(FieldError) as e:
        to_epoch(value, "startTime")
    assert e.value.field == "startTime"
    assert e.value.reason == f"expected epoch seconds, got {value!r} (looks like {unit_name})"


@pytest.mark.parametrize(
    ("value", "unit", "seconds"),
    [
        (1_700_000_000, "s", 1_700_000_000.0),
        ("1700000000.5", "s", 1_700_000_000.5),
        (1_700_000_000_500, "ms", 1_700_000_000.5),
        (1_700_000_000_000_000, "us", 1_700_000_000.0),
        (1_700_000_000_000_000_000, "ns", 1_700_000_000.0),
        ("2023-11-14T22:13:20Z", "iso8601", 1_700_000_000.0),
        ("2023-11-14T23:13:20+01:00", "s", 1_700_000_000.0),
        ("2023-11-14 22:13:20", "s", 1_700_000_000.0),
    ],
)
def test_to_epoch_units(value, unit, seconds):
    assert to_epoch(value, "ts", unit) == pytest.approx(seconds)


def test_to_epoch_names_the_field_for_garbage():
    with pytest.raises(FieldError, match="expected epoch seconds or an ISO-8601 time, got 'abc'"):
        to_epoch("abc", "ts")
    with pytest.raises(FieldError, match="expected a number, got True"):
        to_epoch(True, "ts")


def test_field_types_convert_harmless_values_and_refuse_wrong_ones():
    types = FieldTypes((("n", int, "model_parameters.n"), ("temperature", float, "t"), ("logprobs", bool, "lp")))
    ev = {"n": 2.0, "temperature": 1, "logprobs": "true"}
    types.coerce(ev)
    assert ev == {"n": 2, "temperature": 1.0, "logprobs": True}
    clean = {"n": 3, "temperature": 0.5, "logprobs": None}
    types.coerce(clean)
    types.coerce(clean)  # second time through the known-clean fast path
    assert clean == {"n": 3, "temperature": 0.5, "logprobs": None}
    with pytest.raises(FieldError) as e:
        types.coerce({"n": "many", "temperature": 0.5, "logprobs": None})
    assert (e.value.field, e.value.reason) == ("model_parameters.n", "expected an integer, got 'many'")


def test_content_parts_and_messages():
    assert content_text([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}], "c") == "a"
    assert to_messages("bare prompt", "messages") == [{"role": "user", "content": "bare prompt"}]
    with pytest.raises(FieldError) as e:
        to_messages([{"role": "user", "content": "x"}, {"content": "no role"}], "messages")
    assert e.value.field == "messages[1].role"


def test_csv_rows_have_line_numbers_and_none_for_empty_cells(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('a,b\n1,\n"multi\nline",2\n3,4,5\n')
    items = list(iter_rows(path, "csv"))
    assert [(i[0], i[2]) for i in items[:2]] == [(2, {"a": "1", "b": None}), (4, {"a": "multi\nline", "b": "2"})]
    assert (items[2].line, items[2].reason) == (5, "row has 3 fields, header has 2")


def _lines_from_blocks(path, block_bytes):
    out = []
    for item in iter_line_blocks(path, block_bytes):
        out.extend([item] if isinstance(item, Quarantined) else block_lines(*item))
    return out


@pytest.mark.parametrize("block_bytes", [1, 7, 64, 1 << 20])
def test_line_blocks_split_into_exactly_what_iter_lines_yields(tmp_path, block_bytes):
    plain = tmp_path / "x.jsonl"
    plain.write_bytes(b'{"a": 1}\n\n   \n{"b": "' + b"x" * 100 + b'"}\r\n{"c": 3}')  # no final newline
    records = [{"i": i, "pad": "p" * 200 + str(i * 7919)} for i in range(2000)]
    whole = write_jsonl(tmp_path / "whole.jsonl.gz", records)
    cut = truncate_gzip(write_jsonl(tmp_path / "x.jsonl.gz", records))
    import gzip  # members, the last without a final newline: blocks are cut from inflated pieces across members

    members = tmp_path / "members.jsonl.gz"
    members.write_bytes(gzip.compress(b'{"m": 1}\n' * 300) + gzip.compress(b"\n" * 5 + b'{"m": 2}\n{"m": 3}'))
    for path in (plain, whole, cut, members):
        assert _lines_from_blocks(path, block_bytes) == list(iter_lines(path)), path.name
    assert isinstance(_lines_from_blocks(cut, block_bytes)[-1], Quarantined)


def test_line_blocks_of_an_empty_file_are_an_input_error(tmp_path):
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b"\n  \n")
    with pytest.raises(InputError):
        list(iter_line_blocks(path))


@pytest.mark.parametrize("read_size", [1, 2, 3, 64, 1 << 18])
def test_multi_member_gzip_reads_whole_wherever_reads_split_it(tmp_path, monkeypatch, read_size):
    import gzip

    from distillguard.ingest import lines

    members = [b"".join(b'{"m": %d, "i": %d}\n' % (m, i) for i in range(50)) for m in range(3)]
    path = tmp_path / "multi.jsonl.gz"
    path.write_bytes(b"".join(gzip.compress(m) for m in members))
    monkeypatch.setattr(lines._GzipStream, "_COMPRESSED_READ", read_size)
    with lines.open_binary(path) as f:
        assert f.read() == b"".join(members) and lines.stream_error(f) is None
