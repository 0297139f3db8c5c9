"""OpenAI-format exchange lines."""

from __future__ import annotations

import pytest

from distillguard.errors import Quarantined
from distillguard.ingest.openai import OpenAIReader

from .factories import write_jsonl


def exchange(**overrides):
    line = {
        "timestamp": "2023-11-14T22:13:20Z",
        "account_id": "acct-1",
        "api_key": "sk-live-1",
        "ip": "2001:db8::1",
        "request": {
            "model": "gpt-teacher",
            "messages": [{"role": "developer", "content": "Be terse."}, {"role": "user", "content": "hi"}],
            "max_completion_tokens": 512,
            "n": 4,
            "logprobs": True,
            "top_logprobs": 20,
            "safety_identifier": "sid-42",
            "tools": [{"type": "function", "function": {"name": "f"}}],
        },
        "response": {
            "id": "chatcmpl-9",
            "choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "completion_tokens_details": {"reasoning_tokens": 3}},
        },
        "status_code": 429,
        "latency_ms": 1500,
    }
    line.update(overrides)
    return line


@pytest.mark.parametrize("name", ["x.jsonl", "x.jsonl.gz"])
def test_exchange_maps_request_response_and_caller(tmp_path, name):
    (ev,) = OpenAIReader().read(write_jsonl(tmp_path / name, [exchange()]))
    assert ev["event_id"] == "chatcmpl-9" and ev["ts"] == 1_700_000_000.0 and ev["end_ts"] == 1_700_000_001.5
    assert ev["end_user"] == "sid-42" and ev["ip"] == "2001:db8::1" and ev["status"] == "failure"
    assert (ev["max_tokens"], ev["n"], ev["logprobs"], ev["top_logprobs"]) == (512, 4, True, 20)
    assert (ev["tools_count"], ev["response_tool_calls"], ev["reasoning_tokens"]) == (1, 1, 3)
    assert ev["completion_text"] is None and ev["messages"][0]["role"] == "developer"


def test_event_id_falls_back_to_a_stable_line_hash(tmp_path):
    line = exchange(response={"choices": []})
    path = write_jsonl(tmp_path / "x.jsonl", [line, {**line, "timestamp": 1_700_000_001}])
    ids = [ev["event_id"] for ev in OpenAIReader().read(path)]
    assert ids == [ev["event_id"] for ev in OpenAIReader().read(path)] and len(set(ids)) == 2


@pytest.mark.parametrize(
    ("override", "field", "reason"),
    [
        ({"timestamp": 1_700_000_000_000}, "timestamp",
         "expected epoch seconds, got 1700000000000.0 (looks like milliseconds)"),
        ({"request": []}, "request", "expected an object, got []"),
        ({"request": {"temperature": "hot"}}, "request.temperature", "expected a number, got 'hot'"),
        ({"status_code": "ok"}, "status_code", "expected an integer, got 'ok'"),
    ],
)
def test_bad_field_is_quarantined(tmp_path, override, field, reason):
    path = write_jsonl(tmp_path / "x.jsonl", [exchange(**override)])
    (bad,) = OpenAIReader().read(path)
    assert isinstance(bad, Quarantined)
    assert (bad.file, bad.line, bad.field, bad.reason) == (str(path), 1, field, reason)
