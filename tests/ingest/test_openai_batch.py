"""OpenAI Batch input/output pairs joined on custom_id."""

from __future__ import annotations

import pytest

from distillguard.errors import InputError, Quarantined
from distillguard.ingest.openai_batch import OpenAIBatchReader, batch_output_path, read_batch_pair
from distillguard.ingest.writers import to_batch_lines

from .factories import make_event, write_jsonl


def write_pair(tmp_path, events, name="batch_1", drop_output=(), extra_output=()):
    pairs = [to_batch_lines(ev, f"req-{i}") for i, ev in enumerate(events)]
    inputs = [p[0] for p in pairs]
    outputs = [p[1] for i, p in enumerate(pairs) if i not in drop_output] + list(extra_output)
    write_jsonl(tmp_path / f"{name}_output.jsonl", outputs)
    return write_jsonl(tmp_path / f"{name}_input.jsonl", inputs)


def test_pair_found_by_convention_from_either_file(tmp_path):
    input_path = write_pair(tmp_path, [make_event(i, ts=1_700_000_000.0) for i in range(3)])
    from_input = list(OpenAIBatchReader(account_id="acct-b").read(input_path))
    from_output = list(OpenAIBatchReader(account_id="acct-b").read(tmp_path / "batch_1_output.jsonl"))
    assert from_input == from_output
    assert [ev["account_id"] for ev in from_input] == ["acct-b"] * 3
    assert [ev["source_line"] for ev in from_input] == [1, 2, 3]
    assert from_input[0]["source_file"] == str(input_path) and from_input[0]["ts"] == 1_700_000_000.0


def test_unmatched_lines_are_quarantined_on_both_sides(tmp_path):
    orphan = {"id": "batch_req_x", "custom_id": "ghost", "response": {"status_code": 200, "body": {}}, "error": None}
    input_path = write_pair(tmp_path, [make_event(i) for i in range(3)], drop_output=(1,), extra_output=(orphan,))
    items = list(read_batch_pair(input_path, tmp_path / "batch_1_output.jsonl"))
    bad = [i for i in items if isinstance(i, Quarantined)]
    assert len(items) - len(bad) == 2
    assert [(q.file, q.line, q.field) for q in bad] == [
        (str(input_path), 2, "custom_id"),
        (str(tmp_path / "batch_1_output.jsonl"), 3, "custom_id"),
    ]
    assert bad[0].reason.startswith("no output line for custom_id 'req-1'")


def test_failed_request_without_created_is_quarantined_unless_default_ts(tmp_path):
    failed = {"id": "batch_req_0", "custom_id": "req-0", "response": None,
              "error": {"code": "server_error", "message": "boom"}}
    input_path = write_jsonl(tmp_path / "b_input.jsonl", [to_batch_lines(make_event(), "req-0")[0]])
    write_jsonl(tmp_path / "b_output.jsonl", [failed])
    (bad,) = OpenAIBatchReader().read(input_path)
    assert isinstance(bad, Quarantined) and bad.field == "output.response.body.created" and bad.line == 1
    (ev,) = OpenAIBatchReader(default_ts=1_700_000_000.0).read(input_path)
    assert ev["status"] == "failure" and ev["ts"] == 1_700_000_000.0 and ev["event_id"] == "batch_req_0"


def test_missing_output_file_is_an_input_error(tmp_path):
    input_path = write_jsonl(tmp_path / "lonely_input.jsonl", [to_batch_lines(make_event(), "req-0")[0]])
    with pytest.raises(InputError) as e:
        list(OpenAIBatchReader().read(input_path))
    assert e.value.path == str(tmp_path / "lonely_output.jsonl")


def test_output_path_convention():
    from pathlib import Path

    assert batch_output_path(Path("d/input_batch_input.jsonl.gz")) == Path("d/input_batch_output.jsonl.gz")
    with pytest.raises(InputError, match="no 'input' to replace"):
        batch_output_path(Path("requests.jsonl"))
