"""LiteLLM StandardLoggingPayload JSONL."""

from __future__ import annotations

import pytest

from distillguard.errors import Quarantined
from distillguard.ingest.litellm import LiteLLMReader

from .factories import litellm_record, write_jsonl


def read(path):
    return list(LiteLLMReader().read(path))


@pytest.mark.parametrize("name", ["litellm.jsonl", "litellm.jsonl.gz"])
def test_real_shaped_record_maps_every_field(tmp_path, name):
    (ev,) = read(write_jsonl(tmp_path / name, [litellm_record()]))
    assert ev["event_id"] == "chatcmpl-abc"
    assert (ev["ts"], ev["end_ts"], ev["first_token_ts"]) == (1_700_000_000.5, 1_700_000_002.0, 1_700_000_000.9)
    assert ev["account_id"] == "acct-7" and ev["team_id"] == "team-x" and ev["org_id"] is None
    assert ev["api_key"].startswith("88dc28d0")
    assert ev["end_user"] == "end-9"  # "" at top level falls back to the key's end user
    assert ev["ip"] == "198.51.100.7" and ev["user_agent"] == "curl/8.5"
    assert ev["messages"] == [{"role": "user", "content": "hello"}]  # content parts flattened
    assert ev["completion_text"] == "hi there" and ev["max_tokens"] == 256 and ev["temperature"] == 0.2
    assert (ev["source_format"], ev["source_file"], ev["source_line"]) == ("litellm", str(tmp_path / name), 1)


def test_identity_fallbacks_to_metadata(tmp_path):
    record = litellm_record(requester_ip_address=None, end_user="eu-1")
    record["metadata"]["requester_ip_address"] = "192.0.2.1"
    (ev,) = read(write_jsonl(tmp_path / "x.jsonl", [record]))
    assert ev["ip"] == "192.0.2.1" and ev["end_user"] == "eu-1"


def test_failure_record_without_response(tmp_path):
    record = litellm_record(status="failure", response=None, error_str="RateLimitError")
    (ev,) = read(write_jsonl(tmp_path / "x.jsonl", [record]))
    assert ev["status"] == "failure" and ev["completion_text"] is None


@pytest.mark.parametrize(
    ("override", "field", "reason"),
    [
        ({"startTime": "abc"}, "startTime", "expected epoch seconds or an ISO-8601 time, got 'abc'"),
        ({"startTime": 1_700_000_000_500}, "startTime",
         "expected epoch seconds, got 1700000000500.0 (looks like milliseconds)"),
        ({"startTime": None}, "startTime", "missing"),
        ({"prompt_tokens": "lots"}, "prompt_tokens", "expected an integer, got 'lots'"),
        # larger than a stored int64: quarantined, not a crash when the column is built
        ({"completion_tokens": 2**63}, "completion_tokens", "integer out of the 64-bit range, got 9223372036854775808"),
        ({"response": {"usage": {"completion_tokens_details": {"reasoning_tokens": 2**64 - 1}}}},
         "response.usage.completion_tokens_details.reasoning_tokens",
         "integer out of the 64-bit range, got 18446744073709551615"),
        ({"model_parameters": {"n": [2]}}, "model_parameters.n", "expected an integer, got [2]"),
        ({"model_parameters": {"tools": "x"}}, "model_parameters.tools", "expected a list, got 'x'"),
        ({"metadata": "oops"}, "metadata", "expected an object, got 'oops'"),
        ({"messages": [{"role": 5, "content": "x"}]}, "messages[0].role", "expected a string, got 5"),
        ({"response": {"choices": [{"message": {"content": 3}}]}}, "response.choices[0].message.content",
         "expected a string or a list of parts, got 3"),
    ],
)
def test_bad_field_is_quarantined_naming_file_line_and_field(tmp_path, override, field, reason):
    path = write_jsonl(tmp_path / "x.jsonl", [litellm_record(), litellm_record(**override)])
    good, bad = read(path)
    assert not isinstance(good, Quarantined)
    assert isinstance(bad, Quarantined)
    assert (bad.file, bad.line, bad.field, bad.reason) == (str(path), 2, field, reason)
    assert bad.raw.startswith('{"id":"chatcmpl-abc"')


def test_rereading_gives_the_same_event_ids_even_without_source_ids(tmp_path):
    records = [litellm_record(id=None, startTime=1_700_000_000.0 + i) for i in range(5)]
    path = write_jsonl(tmp_path / "x.jsonl", records)
    first, second = [e["event_id"] for e in read(path)], [e["event_id"] for e in read(path)]
    assert first == second and len(set(first)) == 5


def test_sniff():
    assert LiteLLMReader.sniff(None, litellm_record())
    assert not LiteLLMReader.sniff(None, {"request": {}, "timestamp": 1})
