"""OpenAI-format exchanges: one JSON line holding a chat.completions request, its response and the caller.

distillguard defines this line format (docs/formats.md) for providers whose
gateway logs the raw API bodies::

    {"timestamp": 1700000000.25 | "2023-11-14T22:13:20.25Z",
     "account_id": "...", "api_key": "...", "team_id": "...", "org_id": "...",
     "ip": "...", "user_agent": "...",
     "request":  {chat.completions request body},
     "response": {chat.completion response body},
     "status_code": 200, "latency_ms": 2500.0, "ttft_ms": 500.0}

Example:
    >>> for item in OpenAIReader().read(Path("exchanges.jsonl")):  # doctest: +SKIP
    ...     print(item["end_user"], item["max_tokens"])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distillguard.errors import Quarantined
from distillguard.ingest.base import Reader
from distillguard.ingest.lines import (
    FieldError,
    FieldTypes,
    content_text,
    epoch_field,
    iter_json_objects,
    line_id,
    list_len_field,
    new_event,
    object_field,
    quarantine,
    str_field,
    to_float,
    to_int,
    to_messages,
)
from distillguard.schema import RawEvent
from distillguard.types import ReaderStream

#: Expected type of each value taken from a chat.completions request body.
_REQUEST_TYPES = FieldTypes(
    (
        ("model", str, "request.model"),
        ("temperature", float, "request.temperature"),
        ("top_p", float, "request.top_p"),
        ("n", int, "request.n"),
        ("logprobs", bool, "request.logprobs"),
        ("top_logprobs", int, "request.top_logprobs"),
        ("seed", int, "request.seed"),
        ("reasoning_effort", str, "request.reasoning_effort"),
        ("stream", bool, "request.stream"),
        ("max_tokens", int, "request.max_tokens"),
        ("end_user", str, "request.user"),
    )
)


class OpenAIReader(Reader):
    """Reads OpenAI-format exchange JSONL (request + response + caller per line)."""

    name = "openai"

    @classmethod
    def sniff(cls, path: Path, first: object) -> bool:
        """An exchange line has a ``request`` object and a ``response`` or ``timestamp``."""
        return (
            isinstance(first, dict)
            and isinstance(first.get("request"), dict)
            and ("response" in first or "timestamp" in first)
        )

    def read(self, path: Path) -> ReaderStream:
        """Yield a RawEvent per exchange line, a Quarantined per unusable line."""
        path = Path(path)
        for item in iter_json_objects(path):
            if isinstance(item, Quarantined):
                yield item
                continue
            line_no, raw, record = item
            try:
                yield openai_event(record, raw, str(path), line_no)
            except FieldError as e:
                yield quarantine(path, line_no, e.field, e.reason, raw)


def fill_request(ev: RawEvent, request: dict[str, Any]) -> None:
    """Set the request fields of ``ev`` from a chat.completions request body (shared with openai_batch)."""
    get = request.get
    max_tokens = get("max_tokens")
    ev.update(
        {
            "model": get("model"),
            "temperature": get("temperature"),
            "top_p": get("top_p"),
            "n": get("n"),
            "logprobs": get("logprobs"),
            "top_logprobs": get("top_logprobs"),
            "seed": get("seed"),
            "reasoning_effort": get("reasoning_effort"),
            "stream": get("stream"),
            "max_tokens": max_tokens if max_tokens is not None else get("max_completion_tokens"),
            "end_user": get("user") or get("safety_identifier") or None,
        }
    )
    _REQUEST_TYPES.coerce(ev)  # type: ignore[arg-type]
    ev["tools_count"] = list_len_field(request, "tools", "request.tools")
    ev["messages"] = to_messages(get("messages"), "request.messages")


def fill_response(ev: RawEvent, response: dict[str, Any], where: str = "response") -> None:
    """Set completion text, reasoning, tool calls and usage from a chat.completion body (first choice)."""
    choices = response.get("choices")
    if choices:
        if not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise FieldError(f"{where}.choices", "expected a list of choice objects")
        message = object_field(choices[0], "message", f"{where}.choices[0].message")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            content = content_text(content, f"{where}.choices[0].message.content")
        ev["completion_text"] = content
        ev["reasoning_text"] = str_field(message, "reasoning_content", f"{where}.choices[0].message.reasoning_content")
        ev["response_tool_calls"] = list_len_field(message, "tool_calls", f"{where}.choices[0].message.tool_calls")
    usage = object_field(response, "usage", f"{where}.usage")
    ev["prompt_tokens"] = to_int(usage.get("prompt_tokens"), f"{where}.usage.prompt_tokens")
    ev["completion_tokens"] = to_int(usage.get("completion_tokens"), f"{where}.usage.completion_tokens")
    details = object_field(usage, "completion_tokens_details", f"{where}.usage.completion_tokens_details")
    ev["reasoning_tokens"] = to_int(
        details.get("reasoning_tokens"), f"{where}.usage.completion_tokens_details.reasoning_tokens"
    )


def status_from_code(code: int | None) -> str | None:
    """HTTP status code → "success" (< 400) / "failure"."""
    if code is None:
        return None
    return "success" if code < 400 else "failure"


def openai_event(record: dict[str, Any], raw: bytes, source_file: str, line_no: int) -> RawEvent:
    """Map one exchange line to a RawEvent; raises FieldError naming a bad field."""
    ev = new_event("openai", source_file, line_no)
    request = object_field(record, "request")
    response = object_field(record, "response")
    ts = epoch_field(record, "timestamp")
    if ts is None:
        raise FieldError("timestamp", "missing")
    ev["event_id"] = str_field(response, "id", "response.id") or line_id(raw)
    ev["ts"] = ts
    latency_ms = to_float(record.get("latency_ms"), "latency_ms")
    ttft_ms = to_float(record.get("ttft_ms"), "ttft_ms")
    ev["end_ts"] = None if latency_ms is None else ts + latency_ms / 1000.0
    ev["first_token_ts"] = None if ttft_ms is None else ts + ttft_ms / 1000.0
    for key in ("account_id", "api_key", "team_id", "org_id", "ip", "user_agent"):
        ev[key] = str_field(record, key) or None  # type: ignore[literal-required]
    ev["status"] = status_from_code(to_int(record.get("status_code"), "status_code"))
    fill_request(ev, request)
    fill_response(ev, response)
    ev["model"] = ev["model"] or str_field(response, "model", "response.model")
    return ev


# ---------------------------------------------------------------- other endpoints, seen as chat.completions
# The gateway proxies /v1/completions, /v1/responses and /v1/embeddings as well; their bodies are
# mapped to the chat.completions shape so fill_request / fill_response stay the one parser.


def as_chat_request(endpoint: str, request: dict[str, Any]) -> dict[str, Any]:
    """A request body of ``endpoint`` as the chat.completions request fields it corresponds to.

    Example:
        >>> as_chat_request("/v1/responses", {"model": "m", "instructions": "be brief", "input": "hi",
        ...                                    "max_output_tokens": 64})["messages"]
        [{'role': 'system', 'content': 'be brief'}, {'role': 'user', 'content': 'hi'}]
    """
    if endpoint.endswith("/chat/completions"):
        return request
    get = request.get
    if endpoint.endswith("/responses"):
        messages: list[Any] = []
        if isinstance(get("instructions"), str):
            messages.append({"role": "system", "content": get("instructions")})
        items = get("input")
        if isinstance(items, str):
            messages.append({"role": "user", "content": items})
        elif isinstance(items, list):  # message items have a role; tool outputs and the like do not
            messages.extend(i for i in items if isinstance(i, dict) and isinstance(i.get("role"), str))
        reasoning = get("reasoning")
        return {
            "model": get("model"), "temperature": get("temperature"), "top_p": get("top_p"),
            "top_logprobs": get("top_logprobs"), "logprobs": True if get("top_logprobs") else None,
            "max_tokens": get("max_output_tokens"), "stream": get("stream"), "tools": get("tools"),
            "reasoning_effort": reasoning.get("effort") if isinstance(reasoning, dict) else None,
            "user": get("user"), "safety_identifier": get("safety_identifier"), "messages": messages,
        }  # fmt: skip
    prompt = get("prompt") if endpoint.endswith("/completions") else get("input")
    if isinstance(prompt, list):  # several prompts (or token arrays): the text ones, one user message each
        prompt = [{"role": "user", "content": p} for p in prompt if isinstance(p, str)]
    elif not isinstance(prompt, str):
        prompt = None
    logprobs = get("logprobs")  # /v1/completions: an integer count, not a flag
    return {
        "model": get("model"), "temperature": get("temperature"), "top_p": get("top_p"), "n": get("n"),
        "seed": get("seed"), "stream": get("stream"), "max_tokens": get("max_tokens"), "user": get("user"),
        "logprobs": bool(logprobs) if isinstance(logprobs, int) else None,
        "top_logprobs": logprobs if isinstance(logprobs, int) and not isinstance(logprobs, bool) else None,
        "messages": prompt,
    }  # fmt: skip


def as_chat_response(endpoint: str, response: dict[str, Any]) -> dict[str, Any]:
    """A response body of ``endpoint`` as the chat.completion fields it corresponds to (first choice, usage).

    Example:
        >>> as_chat_response("/v1/completions", {"choices": [{"text": "4"}], "usage": {"prompt_tokens": 3}})
        {'choices': [{'message': {'content': '4'}}], 'usage': {'prompt_tokens': 3}}
    """
    if endpoint.endswith("/chat/completions"):
        return response
    usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
    if endpoint.endswith("/responses"):
        texts, reasoning, tool_calls = [], [], []
        for item in response.get("output") or []:
            if not isinstance(item, dict):
                continue
            kind = item.get("type")
            if kind == "message":
                texts.append(content_text(item.get("content"), "response.output.content"))
            elif kind == "reasoning":
                parts = (item.get("content") or []) + (item.get("summary") or [])
                reasoning.extend(p.get("text", "") for p in parts if isinstance(p, dict))
            elif kind in ("function_call", "custom_tool_call"):
                tool_calls.append(item)
        details = usage.get("output_tokens_details")
        message = {"content": "\n".join(texts) if texts else None, "reasoning_content": "\n".join(reasoning) or None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return {
            "choices": [{"message": message}],
            "usage": {
                "prompt_tokens": usage.get("input_tokens"), "completion_tokens": usage.get("output_tokens"),
                "completion_tokens_details": details if isinstance(details, dict) else {},
            },
        }  # fmt: skip
    if endpoint.endswith("/completions"):
        choices = response.get("choices")
        first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        return {"choices": [{"message": {"content": first.get("text")}}], "usage": usage}
    return {"usage": usage}  # embeddings: no text back, only usage
