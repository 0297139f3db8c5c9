"""Writers: RawEvents (and accounts) to the formats the readers accept, exactly inverse to them.

The simulator writes its traffic through these, so the benchmark exercises the
same readers a provider's logs go through.  Each ``to_<format>`` is a pure
function of one event; ``write_events`` streams any iterable to a file (gzip
when the path ends in ``.gz``) in bounded memory.

Example:
    >>> ev = {"event_id": "e1", "ts": 1.7e9, "account_id": "acct-1", "model": "m",
    ...       "messages": [{"role": "user", "content": "hi"}], "completion_text": "hello"}
    >>> to_litellm(ev)["metadata"]["user_api_key_user_id"]
    'acct-1'
    >>> write_events([ev], "/tmp/out.jsonl.gz", fmt="litellm")  # doctest: +SKIP
    1
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import IO, Any

import orjson
import xxhash
from isal import igzip

from distillguard.ingest import otel as otel_format
from distillguard.schema import RawAccount, RawEvent
from distillguard.types import PathArg

#: gzip level for written logs (ISA-L levels 0-3).  ISA-L's level 1 compresses about 5x faster than
#: zlib's level 1 and slightly smaller (measured on simulated LiteLLM logs), and any gzip reader reads it.
GZIP_LEVEL = 1
#: Spans per OTLP document (one resourceSpans), as an OTLP exporter batches them.
OTLP_BATCH_SPANS = 512
EVENT_FORMATS = ("litellm", "openai", "otlp")
ACCOUNT_FIELDS = tuple(RawAccount.__annotations__)


def _without_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _tools(count: int | None) -> list[dict[str, Any]] | None:
    """Placeholder tool definitions: readers only count them."""
    if count is None:
        return None
    return [{"type": "function", "function": {"name": f"tool_{i}", "parameters": {"type": "object"}}}
            for i in range(count)]


def _tool_calls(count: int | None) -> list[dict[str, Any]] | None:
    """Placeholder tool calls in a response: readers only count them."""
    if count is None:
        return None
    return [{"id": f"call_{i}", "type": "function", "function": {"name": f"tool_{i}", "arguments": "{}"}}
            for i in range(count)]


def _chat_completion(ev: RawEvent) -> dict[str, Any]:
    """The OpenAI chat.completion body both LiteLLM (``response``) and the openai format carry."""
    message = _without_none(
        {
            "role": "assistant",
            "content": ev.get("completion_text"),
            "reasoning_content": ev.get("reasoning_text"),
            "tool_calls": _tool_calls(ev.get("response_tool_calls")),
        }
    )
    message.setdefault("content", None)
    prompt, completion = ev.get("prompt_tokens"), ev.get("completion_tokens")
    usage = _without_none(
        {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": (prompt or 0) + (completion or 0) if prompt is not None or completion is not None else None,
        }
    )
    if ev.get("reasoning_tokens") is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": ev["reasoning_tokens"]}
    return {
        "id": ev.get("event_id"),
        "object": "chat.completion",
        "created": int(ev["ts"]),
        "model": ev.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}],
        "usage": usage,
    }


def _request_params(ev: RawEvent) -> dict[str, Any]:
    """The sampling parameters of a chat.completions request (None ones left out)."""
    return _without_none(
        {
            "temperature": ev.get("temperature"),
            "top_p": ev.get("top_p"),
            "n": ev.get("n"),
            "logprobs": ev.get("logprobs"),
            "top_logprobs": ev.get("top_logprobs"),
            "max_tokens": ev.get("max_tokens"),
            "seed": ev.get("seed"),
            "reasoning_effort": ev.get("reasoning_effort"),
            "stream": ev.get("stream"),
            "tools": _tools(ev.get("tools_count")),
        }
    )


def to_litellm(ev: RawEvent) -> dict[str, Any]:
    """One event as a LiteLLM ``StandardLoggingPayload`` dict (what :mod:`.litellm` reads).

    Example:
        >>> to_litellm({"event_id": "e1", "ts": 1.7e9, "ip": "10.0.0.1"})["requester_ip_address"]
        '10.0.0.1'
    """
    metadata = _without_none(
        {
            "user_api_key_hash": ev.get("api_key"),
            "user_api_key_user_id": ev.get("account_id"),
            "user_api_key_team_id": ev.get("team_id"),
            "user_api_key_org_id": ev.get("org_id"),
            "requester_ip_address": ev.get("ip"),
            "user_agent": ev.get("user_agent"),
        }
    )
    prompt, completion = ev.get("prompt_tokens"), ev.get("completion_tokens")
    return _without_none(
        {
            "id": ev.get("event_id"),
            "trace_id": ev.get("event_id"),
            "call_type": "acompletion",
            "status": ev.get("status"),
            "startTime": ev["ts"],
            "endTime": ev.get("end_ts"),
            "completionStartTime": ev.get("first_token_ts"),
            "model": ev.get("model"),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": (prompt or 0) + (completion or 0),
            "messages": list(ev.get("messages") or []),
            "response": _chat_completion(ev),
            "model_parameters": _request_params(ev),
            "end_user": ev.get("end_user"),
            "requester_ip_address": ev.get("ip"),
            "metadata": metadata,
        }
    )


def to_openai(ev: RawEvent) -> dict[str, Any]:
    """One event as an OpenAI-format exchange line (what :mod:`.openai` reads).

    Example:
        >>> to_openai({"event_id": "e1", "ts": 1.7e9, "end_user": "u9"})["request"]["user"]
        'u9'
    """
    ts, end_ts, first_token_ts = ev["ts"], ev.get("end_ts"), ev.get("first_token_ts")
    status = ev.get("status")
    request = {"model": ev.get("model"), "messages": list(ev.get("messages") or []), **_request_params(ev)}
    if ev.get("end_user") is not None:
        request["user"] = ev["end_user"]
    return _without_none(
        {
            "timestamp": ts,
            "account_id": ev.get("account_id"),
            "api_key": ev.get("api_key"),
            "team_id": ev.get("team_id"),
            "org_id": ev.get("org_id"),
            "ip": ev.get("ip"),
            "user_agent": ev.get("user_agent"),
            "request": _without_none(request),
            "response": _chat_completion(ev),
            "status_code": None if status is None else (200 if status == "success" else 500),
            "latency_ms": None if end_ts is None else (end_ts - ts) * 1000.0,
            "ttft_ms": None if first_token_ts is None else (first_token_ts - ts) * 1000.0,
        }
    )


def _attribute(key: str, value: Any) -> dict[str, Any]:
    """One OTLP/JSON KeyValue (int64 as a decimal string, as the OTLP JSON mapping requires)."""
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def _nanos(seconds: float) -> str:
    # Via whole microseconds: seconds * 1e9 in float would put noise in the last digits.
    return str(round(seconds * 1e6) * 1000)


def _otel_messages(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": m["role"], "parts": [{"type": "text", "content": m.get("content") or ""}]} for m in messages]


def _otel_output(ev: RawEvent) -> list[dict[str, Any]] | None:
    parts: list[dict[str, Any]] = []
    if ev.get("reasoning_text") is not None:
        parts.append({"type": "reasoning", "content": ev["reasoning_text"]})
    if ev.get("completion_text") is not None:
        parts.append({"type": "text", "content": ev["completion_text"]})
    for i in range(ev.get("response_tool_calls") or 0):
        parts.append({"type": "tool_call", "id": f"call_{i}", "name": f"tool_{i}", "arguments": {}})
    if not parts:
        return None
    return [{"role": "assistant", "parts": parts, "finish_reason": "stop"}]


def to_otlp_span(ev: RawEvent) -> dict[str, Any]:
    """One event as an OTLP/JSON GenAI client span (what :mod:`.otel` reads).

    Identity goes on the span (not the resource) because one batch mixes callers.

    Example:
        >>> span = to_otlp_span({"event_id": "e1", "ts": 1.7e9, "model": "m"})
        >>> span["name"], span["startTimeUnixNano"]
        ('chat m', '1700000000000000000')
    """
    attrs = otel_format.ATTRS
    end_ts = ev.get("end_ts")
    values: dict[str, Any] = {
        attrs["operation"]: "chat",
        attrs["model"]: ev.get("model"),
        attrs["response_id"]: ev.get("event_id"),
        attrs["max_tokens"]: ev.get("max_tokens"),
        attrs["temperature"]: ev.get("temperature"),
        attrs["top_p"]: ev.get("top_p"),
        attrs["seed"]: ev.get("seed"),
        attrs["n"]: ev.get("n"),
        attrs["prompt_tokens"]: ev.get("prompt_tokens"),
        attrs["completion_tokens"]: ev.get("completion_tokens"),
        attrs["end_user"]: ev.get("end_user"),
        attrs["ip"]: ev.get("ip"),
        attrs["user_agent"]: ev.get("user_agent"),
        attrs["account_id"]: ev.get("account_id"),
        attrs["api_key"]: ev.get("api_key"),
        attrs["team_id"]: ev.get("team_id"),
        attrs["org_id"]: ev.get("org_id"),
        attrs["logprobs"]: ev.get("logprobs"),
        attrs["top_logprobs"]: ev.get("top_logprobs"),
        attrs["reasoning_effort"]: ev.get("reasoning_effort"),
        attrs["stream"]: ev.get("stream"),
        attrs["reasoning_tokens"]: ev.get("reasoning_tokens"),
        attrs["first_token_ts"]: ev.get("first_token_ts"),
    }
    if ev.get("messages"):
        values[attrs["input_messages"]] = orjson.dumps(_otel_messages(ev["messages"])).decode()
    output = _otel_output(ev)
    if output is not None:
        values[attrs["output_messages"]] = orjson.dumps(output).decode()
    if ev.get("tools_count") is not None:
        tools = [{"type": "function", "name": f"tool_{i}"} for i in range(ev["tools_count"])]
        values[attrs["tool_definitions"]] = orjson.dumps(tools).decode()
    if ev.get("status") == "failure":
        values[attrs["error_type"]] = "error"
    event_key = str(ev.get("event_id") or ev["ts"]).encode()
    span: dict[str, Any] = {
        "traceId": xxhash.xxh3_128_hexdigest(event_key),
        "spanId": xxhash.xxh3_64_hexdigest(event_key),
        "name": f"chat {ev.get('model') or ''}".rstrip(),
        "kind": 3,  # SPAN_KIND_CLIENT, as the GenAI conventions specify for inference calls
        "startTimeUnixNano": _nanos(ev["ts"]),
        "endTimeUnixNano": _nanos(end_ts if end_ts is not None else ev["ts"]),
        "attributes": [_attribute(k, v) for k, v in values.items() if v is not None],
    }
    if ev.get("status") == "failure":
        span["status"] = {"code": 2, "message": "error"}  # STATUS_CODE_ERROR
    return span


def to_otlp_document(spans: Iterable[dict[str, Any]], service_name: str = "distillguard") -> dict[str, Any]:
    """Wrap spans in one OTLP ``ExportTraceServiceRequest`` (one resourceSpans, one scopeSpans)."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [_attribute("service.name", service_name)]},
                "scopeSpans": [{"scope": {"name": "distillguard"}, "spans": list(spans)}],
                "schemaUrl": otel_format.SCHEMA_URL,
            }
        ]
    }


def _open_for_writing(path: Path) -> IO[bytes]:
    if path.name.endswith(".gz"):
        return igzip.GzipFile(path, "wb", compresslevel=GZIP_LEVEL, mtime=0)  # mtime=0: reproducible bytes
    return open(path, "wb", buffering=1 << 20)


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def write_events(events: Iterable[RawEvent], path: PathArg, fmt: str = "litellm") -> int:
    """Stream ``events`` to ``path`` as JSONL of ``fmt`` (litellm | openai | otlp); returns the count.

    ``.gz`` paths are gzip-compressed.  ``otlp`` writes one OTLP/JSON document
    per line, each holding up to OTLP_BATCH_SPANS spans.

    Example:
        >>> write_events(simulated_events, "traffic.jsonl.gz", fmt="litellm")  # doctest: +SKIP
        120000
    """
    if fmt not in EVENT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; known: {', '.join(EVENT_FORMATS)}")
    path = Path(path)
    dumps = orjson.dumps
    count = 0
    with _open_for_writing(path) as out:
        if fmt == "otlp":
            for batch in _batches(events, OTLP_BATCH_SPANS):
                out.write(dumps(to_otlp_document(to_otlp_span(ev) for ev in batch)) + b"\n")
                count += len(batch)
        else:
            convert = to_litellm if fmt == "litellm" else to_openai
            # Joining a chunk of lines cuts per-write overhead (notably into gzip) without unbounded memory.
            for batch in _batches(events, 1024):
                out.write(b"".join(dumps(convert(ev)) + b"\n" for ev in batch))
                count += len(batch)
    return count


def to_batch_lines(ev: RawEvent, custom_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One event as an (input line, output line) pair of an OpenAI Batch job (what :mod:`.openai_batch` reads)."""
    request = {"model": ev.get("model"), "messages": list(ev.get("messages") or []), **_request_params(ev)}
    if ev.get("end_user") is not None:
        request["user"] = ev["end_user"]
    input_line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": _without_none(request)}
    failed = ev.get("status") == "failure"
    output_line = {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {
            "status_code": 500 if failed else 200,
            "request_id": f"req_{custom_id}",
            "body": _chat_completion(ev),
        },
        "error": None,
    }
    return input_line, output_line


def write_batch_pair(events: Iterable[RawEvent], input_path: PathArg, output_path: PathArg) -> int:
    """Write events as an OpenAI Batch input/output file pair (custom_id = event position); returns the count.

    Example:
        >>> write_batch_pair(events, "batch_input.jsonl", "batch_output.jsonl")  # doctest: +SKIP
        500
    """
    count = 0
    with _open_for_writing(Path(input_path)) as inputs, _open_for_writing(Path(output_path)) as outputs:
        for count, ev in enumerate(events, 1):
            input_line, output_line = to_batch_lines(ev, f"request-{count}")
            inputs.write(orjson.dumps(input_line) + b"\n")
            outputs.write(orjson.dumps(output_line) + b"\n")
    return count


def write_accounts(accounts: Iterable[RawAccount], path: PathArg) -> int:
    """Write an accounts table as CSV (``.csv[.gz]``) or JSONL (anything else); returns the count.

    Example:
        >>> write_accounts([{"account_id": "a1", "country": "US"}], "accounts.csv")  # doctest: +SKIP
        1
    """
    path = Path(path)
    is_csv = path.name.removesuffix(".gz").endswith(".csv")
    count = 0
    with _open_for_writing(path) as out:
        if is_csv:
            text = io.TextIOWrapper(out, encoding="utf-8", newline="")
            writer = csv.DictWriter(text, fieldnames=ACCOUNT_FIELDS, extrasaction="ignore")
            writer.writeheader()
            for count, account in enumerate(accounts, 1):
                writer.writerow({k: "" if v is None else v for k, v in account.items()})
            text.flush()
            text.detach()
        else:
            for count, account in enumerate(accounts, 1):
                out.write(orjson.dumps(_without_none(dict(account))) + b"\n")
    return count
