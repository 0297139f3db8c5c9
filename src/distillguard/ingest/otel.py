"""OpenTelemetry GenAI spans exported as OTLP/JSON.

Follows the GenAI semantic conventions as of semantic-conventions **v1.41.0**
(the last release before the GenAI conventions moved to their own repository):
``gen_ai.request.*``, ``gen_ai.usage.*``, ``gen_ai.response.id`` and the content
attributes ``gen_ai.input.messages`` / ``gen_ai.output.messages`` /
``gen_ai.system_instructions`` (JSON strings or structured values).  Values the
conventions have no attribute for are read from documented ``distillguard.*``
span attributes (see docs/formats.md).

A file is either one OTLP/JSON ``ExportTraceServiceRequest`` document (which may
span many lines) or one document per line, as the OTel Collector's file exporter
writes.  Spans that are not GenAI inference spans (HTTP, database, agent or tool
spans) are skipped and counted in ``OtelReader.skipped_spans``; a malformed span is
quarantined with its path in the document (``resourceSpans[0].scopeSpans[0].spans[3]``).

Example:
    >>> reader = OtelReader()
    >>> events = list(reader.read(Path("traces.jsonl")))  # doctest: +SKIP
    >>> reader.skipped_spans  # doctest: +SKIP
    12
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from distillguard.errors import Quarantined
from distillguard.ingest.base import Reader
from distillguard.ingest.lines import (
    FieldError,
    content_text,
    describe,
    iter_lines,
    line_id,
    new_event,
    open_binary,
    quarantine,
    stream_error,
    to_bool,
    to_epoch,
    to_float,
    to_int,
    truncation,
)
from distillguard.schema import Message, RawEvent
from distillguard.types import ReaderStream

SEMCONV_VERSION = "1.41.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"

#: RawEvent field → span attribute it is read from (and written to by writers.to_otlp_span).
ATTRS: dict[str, str] = {
    "operation": "gen_ai.operation.name",
    "model": "gen_ai.request.model",
    "response_model": "gen_ai.response.model",
    "response_id": "gen_ai.response.id",
    "max_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "seed": "gen_ai.request.seed",
    "n": "gen_ai.request.choice.count",
    "prompt_tokens": "gen_ai.usage.input_tokens",
    "completion_tokens": "gen_ai.usage.output_tokens",
    "input_messages": "gen_ai.input.messages",
    "output_messages": "gen_ai.output.messages",
    "system_instructions": "gen_ai.system_instructions",
    "tool_definitions": "gen_ai.tool.definitions",
    "error_type": "error.type",
    "end_user": "enduser.id",
    "user_id": "user.id",
    "ip": "client.address",
    "user_agent": "user_agent.original",
    # No semantic-convention attribute exists for these; distillguard's own, documented.
    "account_id": "distillguard.account_id",
    "api_key": "distillguard.api_key",
    "team_id": "distillguard.team_id",
    "org_id": "distillguard.org_id",
    "logprobs": "distillguard.request.logprobs",
    "top_logprobs": "distillguard.request.top_logprobs",
    "reasoning_effort": "distillguard.request.reasoning_effort",
    "stream": "distillguard.request.stream",
    "reasoning_tokens": "distillguard.usage.reasoning_tokens",
    "first_token_ts": "distillguard.response.first_token_ts",
}

#: gen_ai.operation.name values that are one model inference (agent/tool/embedding spans are not).
INFERENCE_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
STATUS_CODE_ERROR = (2, "STATUS_CODE_ERROR")


class OtelReader(Reader):
    """Reads OTLP/JSON trace exports holding GenAI spans."""

    name = "otel"

    def __init__(self) -> None:
        #: Spans seen that were not GenAI inference spans (skipped, not quarantined).
        self.skipped_spans = 0

    @classmethod
    def sniff(cls, path: Path, first: object) -> bool:
        """An OTLP trace export has a top-level ``resourceSpans``."""
        return isinstance(first, dict) and "resourceSpans" in first

    def read(self, path: Path) -> ReaderStream:
        """Yield a RawEvent per GenAI span, a Quarantined per malformed span or document."""
        path = Path(path)
        for item in _iter_documents(path):
            if isinstance(item, Quarantined):
                yield item
                continue
            line_no, raw, document = item
            yield from self._read_document(path, line_no, raw, document)

    def _read_document(self, path: Path, line_no: int, raw: bytes, document: Any) -> ReaderStream:
        if not isinstance(document, dict) or not isinstance(document.get("resourceSpans"), list):
            yield quarantine(path, line_no, "resourceSpans", "expected an OTLP document with a resourceSpans list", raw)
            return
        for r, resource_spans in enumerate(document["resourceSpans"]):
            where = f"resourceSpans[{r}]"
            try:
                resource = _attributes(_dict(_dict(resource_spans, where).get("resource"), f"{where}.resource"),
                                       f"{where}.resource")
                scope_list = _list(resource_spans.get("scopeSpans"), f"{where}.scopeSpans")
            except FieldError as e:
                yield quarantine(path, line_no, e.field, e.reason, orjson.dumps(resource_spans))
                continue
            for s, scope_spans in enumerate(scope_list):
                scope_where = f"{where}.scopeSpans[{s}]"
                try:
                    spans = _list(_dict(scope_spans, scope_where).get("spans"), f"{scope_where}.spans")
                except FieldError as e:
                    yield quarantine(path, line_no, e.field, e.reason, orjson.dumps(scope_spans))
                    continue
                for k, span in enumerate(spans):
                    span_where = f"{scope_where}.spans[{k}]"
                    try:
                        event = span_event(span, resource, span_where, str(path), line_no)
                    except FieldError as e:
                        yield quarantine(path, line_no, e.field, e.reason, orjson.dumps(span))
                        continue
                    if event is None:
                        self.skipped_spans += 1
                    else:
                        yield event


def _iter_documents(path: Path) -> Iterator[tuple[int, bytes, Any] | Quarantined]:
    """One document per line if the first line is a whole JSON value, else the whole file as one document."""
    lines = iter_lines(path)
    first = next(lines)  # raises InputError on an empty file
    if isinstance(first, Quarantined):
        yield first
        return
    try:
        yield first[0], first[1], orjson.loads(first[1])
    except orjson.JSONDecodeError:
        yield from _whole_document(path)
        return
    for item in lines:
        if isinstance(item, Quarantined):
            yield item
            continue
        line_no, raw = item
        try:
            yield line_no, raw, orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            yield quarantine(path, line_no, None, f"not valid JSON: {e}", raw)


def _whole_document(path: Path) -> Iterator[tuple[int, bytes, Any] | Quarantined]:
    # A pretty-printed export is one JSON value: it has to be read whole.
    with open_binary(path) as f:
        raw = f.read()
        error = stream_error(f)
    if error is not None:
        yield truncation(path, 0, error, raw)
        return
    try:
        yield 1, raw, orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        yield quarantine(path, 1, None, f"not valid JSON (neither one document nor one per line): {e}", raw)


def _dict(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FieldError(where, f"expected an object, got {describe(value)}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise FieldError(where, f"expected a list, got {describe(value)}")
    return value


def any_value(value: Any, where: str) -> Any:
    """Decode an OTLP/JSON AnyValue (``{"stringValue": ...}``, ``{"intValue": "42"}``, arrays, kvlists).

    Example:
        >>> any_value({"arrayValue": {"values": [{"intValue": "1"}, {"stringValue": "a"}]}}, "x")
        [1, 'a']
    """
    if not isinstance(value, dict):
        raise FieldError(where, f"expected an AnyValue object, got {describe(value)}")
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return to_int(value["intValue"], where)
    if "doubleValue" in value:
        return to_float(value["doubleValue"], where)
    if "boolValue" in value:
        return to_bool(value["boolValue"], where)
    if "arrayValue" in value:
        items = _dict(value["arrayValue"], where).get("values") or []
        return [any_value(v, f"{where}[{i}]") for i, v in enumerate(_list(items, where))]
    if "kvlistValue" in value:
        pairs = _dict(value["kvlistValue"], where).get("values") or []
        return {p["key"]: any_value(p.get("value"), f"{where}.{p['key']}") for p in _list(pairs, where)}
    if "bytesValue" in value:
        return value["bytesValue"]
    return None  # an empty AnyValue is a valid "unset"


def _attributes(owner: dict[str, Any], where: str) -> dict[str, Any]:
    """The ``attributes`` list of a span or resource as a plain dict."""
    result: dict[str, Any] = {}
    for i, kv in enumerate(_list(owner.get("attributes"), f"{where}.attributes")):
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise FieldError(f"{where}.attributes[{i}]", f"expected {{key, value}}, got {describe(kv)}")
        result[kv["key"]] = any_value(kv.get("value"), f"{where}.attributes[{i}] ({kv['key']})")
    return result


def _is_inference_span(attrs: dict[str, Any]) -> bool:
    operation = attrs.get(ATTRS["operation"])
    if operation is not None:
        return operation in INFERENCE_OPERATIONS
    return ATTRS["model"] in attrs


def _json_attr(attrs: dict[str, Any], key: str, where: str) -> Any:
    """A content attribute, recorded either as a JSON string or in structured form."""
    value = attrs.get(key)
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as e:
            raise FieldError(f"{where} ({key})", f"expected JSON, got {describe(value)}: {e}") from None
    return value


def _parts_text(parts: Any, kinds: tuple[str, ...], where: str) -> str | None:
    """The text of the message parts of the given types, joined; None when there are none."""
    texts: list[str] = []
    for i, part in enumerate(_list(parts, where)):
        if not isinstance(part, dict):
            raise FieldError(f"{where}[{i}]", f"expected a message part, got {describe(part)}")
        kind = part.get("type")
        if kind in kinds:
            text = part.get("response") if kind == "tool_call_response" else part.get("content")
            if isinstance(text, str):
                texts.append(text)
    return "\n".join(texts) if texts else None


def _input_messages(attrs: dict[str, Any], where: str) -> list[Message]:
    messages: list[Message] = []
    system = _json_attr(attrs, ATTRS["system_instructions"], where)
    if system:
        messages.append({"role": "system", "content": _parts_text(system, ("text",), f"{where} (system)") or ""})
    for i, message in enumerate(_list(_json_attr(attrs, ATTRS["input_messages"], where), where)):
        field = f"{where} ({ATTRS['input_messages']}[{i}])"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise FieldError(field, f"expected a message with a role, got {describe(message)}")
        if "parts" in message:
            text = _parts_text(message["parts"], ("text", "tool_call_response"), field) or ""
        else:  # pre-1.37 instrumentations logged {role, content}
            text = content_text(message.get("content"), field)
        messages.append({"role": message["role"], "content": text})
    return messages


def _fill_output(ev: RawEvent, attrs: dict[str, Any], where: str) -> None:
    outputs = _list(_json_attr(attrs, ATTRS["output_messages"], where), where)
    if not outputs:
        return
    first = outputs[0]
    field = f"{where} ({ATTRS['output_messages']}[0])"
    if not isinstance(first, dict):
        raise FieldError(field, f"expected a message, got {describe(first)}")
    parts = _list(first.get("parts"), field)
    ev["completion_text"] = _parts_text(parts, ("text",), field)
    ev["reasoning_text"] = _parts_text(parts, ("reasoning",), field)
    ev["response_tool_calls"] = sum(1 for p in parts if p.get("type") == "tool_call")


def span_event(span: Any, resource: dict[str, Any], where: str, source_file: str, line_no: int) -> RawEvent | None:
    """Map one span to a RawEvent, or None if it is not a GenAI inference span; raises FieldError."""
    span = _dict(span, where)
    attrs = {**resource, **_attributes(span, where)}
    if not _is_inference_span(attrs):
        return None

    def get(name: str, convert: Any = None) -> Any:
        key = ATTRS[name]
        value = attrs.get(key)
        return value if convert is None or value is None else convert(value, f"{where} ({key})")

    start = to_int(span.get("startTimeUnixNano"), f"{where}.startTimeUnixNano")
    if start is None:
        raise FieldError(f"{where}.startTimeUnixNano", "missing")
    end = to_int(span.get("endTimeUnixNano"), f"{where}.endTimeUnixNano")

    ev = new_event("otel", source_file, line_no)
    trace_span = f"{span.get('traceId', '')}:{span.get('spanId', '')}"
    ev["event_id"] = get("response_id", _str) or (trace_span if trace_span != ":" else line_id(orjson.dumps(span)))
    ev["ts"] = _seconds(start)
    ev["end_ts"] = None if end is None else _seconds(end)
    ev["first_token_ts"] = get("first_token_ts", lambda v, f: to_epoch(v, f, allow_iso=False))
    ev["account_id"] = get("account_id", _str) or get("user_id", _str)
    ev["api_key"] = get("api_key", _str)
    ev["end_user"] = get("end_user", _str)
    ev["team_id"] = get("team_id", _str)
    ev["org_id"] = get("org_id", _str)
    ev["ip"] = get("ip", _str)
    ev["user_agent"] = get("user_agent", _str)
    ev["model"] = get("model", _str) or get("response_model", _str)
    status_code = _dict(span.get("status"), f"{where}.status").get("code")
    ev["status"] = "failure" if status_code in STATUS_CODE_ERROR or ATTRS["error_type"] in attrs else "success"
    ev["prompt_tokens"] = get("prompt_tokens", to_int)
    ev["completion_tokens"] = get("completion_tokens", to_int)
    ev["reasoning_tokens"] = get("reasoning_tokens", to_int)
    ev["max_tokens"] = get("max_tokens", to_int)
    ev["temperature"] = get("temperature", to_float)
    ev["top_p"] = get("top_p", to_float)
    ev["n"] = get("n", to_int)
    ev["logprobs"] = get("logprobs", to_bool)
    ev["top_logprobs"] = get("top_logprobs", to_int)
    ev["seed"] = get("seed", to_int)
    ev["reasoning_effort"] = get("reasoning_effort", _str)
    ev["stream"] = get("stream", to_bool)
    tools = _json_attr(attrs, ATTRS["tool_definitions"], where)
    ev["tools_count"] = None if tools is None else len(_list(tools, f"{where} ({ATTRS['tool_definitions']})"))
    ev["messages"] = _input_messages(attrs, where)
    _fill_output(ev, attrs, where)
    return ev


def _seconds(nanos: int) -> float:
    """Epoch nanoseconds to seconds, via whole microseconds so the float is the nearest one to the true time."""
    return ((nanos + 500) // 1000) / 1e6


def _str(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise FieldError(field, f"expected a string, got {describe(value)}")
