"""OTLP/JSON GenAI spans."""

from __future__ import annotations

import orjson
import pytest

from distillguard.errors import Quarantined
from distillguard.ingest.otel import SEMCONV_VERSION, OtelReader
from distillguard.ingest.writers import to_otlp_document, to_otlp_span

from .factories import make_event, truncate_gzip, write_jsonl


def kv(key, **value):
    return {"key": key, "value": value}


def genai_span(**overrides):
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "chat gpt-4o",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000001500000000",
        "attributes": [
            kv("gen_ai.operation.name", stringValue="chat"),
            kv("gen_ai.request.model", stringValue="gpt-4o"),
            kv("gen_ai.request.max_tokens", intValue="200"),
            kv("gen_ai.request.choice.count", intValue=3),
            kv("gen_ai.usage.input_tokens", intValue="11"),
            kv("user.id", stringValue="acct-otel"),
            kv("client.address", stringValue="198.51.100.4"),
            kv("gen_ai.system_instructions", stringValue='[{"type": "text", "content": "Be brief."}]'),
            kv("gen_ai.input.messages",
               stringValue='[{"role": "user", "parts": [{"type": "text", "content": "Weather?"}]}]'),
            kv("gen_ai.output.messages", stringValue=orjson.dumps([{"role": "assistant", "parts": [
                {"type": "tool_call", "id": "c1", "name": "weather", "arguments": {"city": "Paris"}},
                {"type": "text", "content": "Checking."}], "finish_reason": "tool_call"}]).decode()),
        ],
        "status": {"code": 2},
    }
    span.update(overrides)
    return span


def document(*spans, resource_attrs=()):
    return {"resourceSpans": [{"resource": {"attributes": list(resource_attrs)},
                               "scopeSpans": [{"scope": {"name": "x"}, "spans": list(spans)}]}]}


def test_pinned_semconv_version():
    assert SEMCONV_VERSION == "1.41.0"


def test_genai_span_maps_attributes_and_resource_identity(tmp_path):
    doc = document(genai_span(), resource_attrs=[kv("user_agent.original", stringValue="agent/1")])
    (ev,) = OtelReader().read(write_jsonl(tmp_path / "t.jsonl", [doc]))
    assert ev["event_id"] == "5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174"  # no gen_ai.response.id
    assert (ev["ts"], ev["end_ts"]) == (1_700_000_000.0, 1_700_000_001.5)
    assert (ev["model"], ev["max_tokens"], ev["n"], ev["prompt_tokens"]) == ("gpt-4o", 200, 3, 11)
    assert (ev["account_id"], ev["ip"], ev["user_agent"]) == ("acct-otel", "198.51.100.4", "agent/1")
    assert ev["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather?"}]
    assert (ev["completion_text"], ev["response_tool_calls"], ev["status"]) == ("Checking.", 1, "failure")


def test_pretty_printed_single_document(tmp_path):
    path = tmp_path / "t.json"
    path.write_bytes(orjson.dumps(document(genai_span(), genai_span(spanId="2")), option=orjson.OPT_INDENT_2))
    events = list(OtelReader().read(path))
    assert len(events) == 2 and all(ev["source_line"] == 1 for ev in events)


def test_non_genai_spans_are_skipped_and_counted(tmp_path):
    http = {"traceId": "a", "spanId": "b", "name": "GET /", "startTimeUnixNano": "1", "endTimeUnixNano": "2",
            "attributes": [kv("http.request.method", stringValue="GET")]}
    agent = genai_span(attributes=[kv("gen_ai.operation.name", stringValue="invoke_agent")])
    reader = OtelReader()
    events = list(reader.read(write_jsonl(tmp_path / "t.jsonl", [document(http, genai_span(), agent)])))
    assert len(events) == 1 and reader.skipped_spans == 2


def test_malformed_span_is_quarantined_with_its_path(tmp_path):
    bad_time = genai_span(startTimeUnixNano="soon")
    bad_attr = genai_span(attributes=[kv("gen_ai.request.model", stringValue="m"),
                                      kv("gen_ai.request.temperature", doubleValue="warm")])
    path = write_jsonl(tmp_path / "t.jsonl", [document(genai_span()), document(genai_span(), bad_time, bad_attr)])
    items = list(OtelReader().read(path))
    bad = [i for i in items if isinstance(i, Quarantined)]
    assert len(items) == 4
    assert [(q.line, q.field) for q in bad] == [
        (2, "resourceSpans[0].scopeSpans[0].spans[1].startTimeUnixNano"),
        (2, "resourceSpans[0].scopeSpans[0].spans[2].attributes[1] (gen_ai.request.temperature)"),
    ]
    assert bad[0].reason == "expected an integer, got 'soon'" and bad[0].file == str(path)


def test_truncated_gzip_keeps_whole_documents(tmp_path):
    docs = [to_otlp_document([to_otlp_span(make_event(i + 100 * d)) for i in range(100)]) for d in range(20)]
    path = truncate_gzip(write_jsonl(tmp_path / "t.jsonl.gz", docs), 0.5)
    items = list(OtelReader().read(path))
    assert isinstance(items[-1], Quarantined) and "truncated" in items[-1].reason
    assert len(items) - 1 == 100 * items[-1].line  # every complete document, nothing of the cut one


@pytest.mark.parametrize("value", [{"stringValue": "x"}, {"intValue": "7"}, {"boolValue": True}])
def test_identity_from_any_string_like_attribute(tmp_path, value):
    span = genai_span(attributes=[kv("gen_ai.request.model", stringValue="m"), kv("distillguard.account_id", **value)])
    (ev,) = OtelReader().read(write_jsonl(tmp_path / "t.jsonl", [document(span)]))
    if "boolValue" in value:
        assert isinstance(ev, Quarantined) and ev.field.endswith("(distillguard.account_id)")
    else:
        assert ev["account_id"] == str(next(iter(value.values())))
