"""LiteLLM proxy ``StandardLoggingPayload`` records, one JSON object per line (plain or .gz).

This is what LiteLLM's logging callbacks (``standard_logging_object``) emit for
every success and failure.  Field mapping (full table in docs/formats.md):

    id → event_id, startTime/endTime/completionStartTime → ts/end_ts/first_token_ts,
    metadata.user_api_key_user_id → account_id, metadata.user_api_key_hash → api_key,
    end_user | metadata.user_api_key_end_user_id | model_parameters.user → end_user,
    requester_ip_address | metadata.requester_ip_address → ip, ...

Example:
    >>> from pathlib import Path
    >>> for item in LiteLLMReader().read(Path("litellm.jsonl.gz")):  # doctest: +SKIP
    ...     print(item["account_id"], item["model"])
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.errors import Quarantined
from distillguard.ingest.base import Reader
from distillguard.ingest.lines import (
    block_lines,
    FieldError,
    FieldTypes,
    content_text,
    describe,
    epoch_seconds,
    iter_json_objects,
    json_object,
    line_id,
    quarantine,
    str_field,
    to_int,
    to_messages,
)
from distillguard.normalize import EXCHANGE_SCHEMA, exchange_table
from distillguard.schema import RawEvent
from distillguard.types import ReaderStream

#: Header names LiteLLM may keep the caller's user agent under (case varies by client).
_USER_AGENT_HEADERS = ("user-agent", "User-Agent", "user_agent")

#: Expected type of each mapped value, with the source field named in errors.
_TYPES = FieldTypes((
    ("event_id", str, "id"),
    ("account_id", str, "metadata.user_api_key_user_id"),
    ("api_key", str, "metadata.user_api_key_hash"),
    ("end_user", str, "end_user"),
    ("team_id", str, "metadata.user_api_key_team_id"),
    ("org_id", str, "metadata.user_api_key_org_id"),
    ("ip", str, "requester_ip_address"),
    ("model", str, "model"),
    ("status", str, "status"),
    ("prompt_tokens", int, "prompt_tokens"),
    ("completion_tokens", int, "completion_tokens"),
    ("max_tokens", int, "model_parameters.max_tokens"),
    ("temperature", float, "model_parameters.temperature"),
    ("top_p", float, "model_parameters.top_p"),
    ("n", int, "model_parameters.n"),
    ("logprobs", bool, "model_parameters.logprobs"),
    ("top_logprobs", int, "model_parameters.top_logprobs"),
    ("seed", int, "model_parameters.seed"),
    ("reasoning_effort", str, "model_parameters.reasoning_effort"),
    ("stream", bool, "model_parameters.stream"),
))


class LiteLLMReader(Reader):
    """Reads LiteLLM ``StandardLoggingPayload`` JSONL."""

    name = "litellm"

    @classmethod
    def sniff(cls, path: Path, first: object) -> bool:
        """A LiteLLM record has ``startTime`` and one of its distinctive blocks."""
        return (
            isinstance(first, dict)
            and "startTime" in first
            and ("model_parameters" in first or "call_type" in first or "metadata" in first)
        )

    def read(self, path: Path) -> ReaderStream:
        """Yield a RawEvent per record, a Quarantined per unusable line."""
        path = Path(path)
        source_file = str(path)
        for item in iter_json_objects(path):
            if isinstance(item, Quarantined):
                yield item
                continue
            line_no, raw, record = item
            try:
                yield litellm_event(record, raw, source_file, line_no)
            except FieldError as e:
                yield quarantine(path, line_no, e.field, e.reason, raw)

    def parse_lines(self, path: Path, lines: list[tuple[int, bytes]]) -> list[RawEvent | Quarantined]:
        """What :meth:`read` yields for these ``(line_no, raw)`` lines of ``path`` (from ``iter_lines``), in order.

        Lets the pipeline split a file's lines across worker processes; results
        are identical to :meth:`read` line for line.
        """
        path = Path(path)
        source_file = str(path)
        out: list[RawEvent | Quarantined] = []
        append = out.append
        for line_no, raw in lines:
            record = json_object(path, line_no, raw)
            if type(record) is not dict:
                append(record)  # type: ignore[arg-type]
                continue
            try:
                append(litellm_event(record, raw, source_file, line_no))  # type: ignore[arg-type]
            except FieldError as e:
                append(quarantine(path, line_no, e.field, e.reason, raw))
        return out


    def parse_block(self, path: Path, first_line_no: int, block: bytes, *, compiled: bool = True,
                    ) -> tuple[pa.Table | None, list[Quarantined]]:  # fmt: skip
        """The lines of ``block`` (from ``iter_line_blocks``) as ``EXCHANGE_SCHEMA`` rows in input order, and
        the lines set aside.

        With ``compiled``, ordinary lines are mapped in compiled code
        (:func:`~distillguard.ingest.litellm_columns.litellm_columns`, ~5x faster; its first use on a
        machine compiles it, about a minute, then it is cached); every other line goes through
        :meth:`parse_lines`, the definition the compiled path is tested against, so each line gives the
        same row, or the same quarantine entry, whichever path takes it.
        """
        if compiled:
            from distillguard.ingest.litellm_columns import litellm_columns  # numba: loaded where it is used

            table, left = litellm_columns(block, first_line_no, str(path))
        else:
            table, left = EXCHANGE_SCHEMA.empty_table(), block_lines(first_line_no, block)
        if not left:
            return table, []
        events: list[RawEvent] = []
        quarantined: list[Quarantined] = []
        for item in self.parse_lines(path, left):
            (quarantined if type(item) is Quarantined else events).append(item)
        if events:
            rest = exchange_table(events)
            if table.num_rows:  # both paths had lines: back into input order
                rest = pa.concat_tables([table, rest])
                rest = rest.take(pc.sort_indices(rest["source_line"]))
            table = rest
        return table, quarantined


def _block(record: dict[str, Any], key: str, field: str) -> dict[str, Any]:
    value = record.get(key)
    if type(value) is dict:
        return value
    if value is None:
        return {}
    raise FieldError(field, f"expected an object, got {describe(value)}")


def _list_len(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if type(value) is list:
        return len(value)
    raise FieldError(field, f"expected a list, got {describe(value)}")


def litellm_event(record: dict[str, Any], raw: bytes, source_file: str, line_no: int) -> RawEvent:
    """Map one StandardLoggingPayload to a RawEvent; raises FieldError naming a bad field.

    Plain ``dict.get`` first, one type check per field after: this runs once per
    log line, so it is written for speed (see the throughput note in docs/formats.md).
    """
    get = record.get
    metadata = _block(record, "metadata", "metadata")
    params = _block(record, "model_parameters", "model_parameters")
    meta, param = metadata.get, params.get
    if get("startTime") is None:
        raise FieldError("startTime", "missing")
    max_tokens = param("max_tokens")
    ev: dict[str, Any] = {
        "event_id": get("id") or line_id(raw),
        "ts": epoch_seconds(get("startTime"), "startTime"),
        "end_ts": epoch_seconds(get("endTime"), "endTime"),
        "first_token_ts": epoch_seconds(get("completionStartTime"), "completionStartTime"),
        # LiteLLM writes "" for identities it does not know: treat as absent.
        "account_id": meta("user_api_key_user_id") or None,
        "api_key": meta("user_api_key_hash") or None,
        # the SDK (no proxy) leaves the request's OpenAI `user` only in model_parameters
        "end_user": get("end_user") or meta("user_api_key_end_user_id") or param("user") or None,
        "team_id": meta("user_api_key_team_id") or None,
        "org_id": meta("user_api_key_org_id") or None,
        "ip": get("requester_ip_address") or meta("requester_ip_address") or None,
        "user_agent": _user_agent(metadata),
        "model": get("model"),
        "status": get("status"),
        "prompt_tokens": get("prompt_tokens"),
        "completion_tokens": get("completion_tokens"),
        "reasoning_tokens": None,
        "max_tokens": max_tokens if max_tokens is not None else param("max_completion_tokens"),
        "temperature": param("temperature"),
        "top_p": param("top_p"),
        "n": param("n"),
        "logprobs": param("logprobs"),
        "top_logprobs": param("top_logprobs"),
        "seed": param("seed"),
        "reasoning_effort": param("reasoning_effort"),
        "stream": param("stream"),
        "tools_count": _list_len(param("tools"), "model_parameters.tools"),
        "response_tool_calls": None,
        "messages": to_messages(get("messages"), "messages"),
        "completion_text": None,
        "reasoning_text": None,
        "source_format": "litellm",
        "source_file": source_file,
        "source_line": line_no,
    }
    _TYPES.coerce(ev)
    _fill_response(ev, get("response"))
    return ev  # type: ignore[return-value]


def payload_event(payload: Mapping[str, Any], source_file: str = "litellm-callback") -> RawEvent:
    """Map a live ``StandardLoggingPayload`` (what a LiteLLM callback gets) to a RawEvent.

    The payload goes through JSON first, so a live record maps exactly like the
    same record read back from a log file (pydantic objects and other non-JSON
    values LiteLLM sometimes leaves in it become plain JSON).  Raises FieldError
    naming a bad field, like :func:`litellm_event`.

    Example:
        >>> ev = payload_event({"id": "c1", "startTime": 1.7e9, "model": "m",
        ...                     "metadata": {"user_api_key_user_id": "u1"}})
        >>> ev["event_id"], ev["account_id"], ev["source_format"]
        ('c1', 'u1', 'litellm')
    """
    raw = orjson.dumps(payload, default=_jsonable, option=orjson.OPT_NON_STR_KEYS)
    return litellm_event(orjson.loads(raw), raw, source_file, 0)


def _jsonable(value: Any) -> Any:
    """orjson fallback: pydantic models as their dump, anything else as its string."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump()
    return str(value)


def _user_agent(metadata: dict[str, Any]) -> str | None:
    """The caller's user agent: ``metadata.user_agent``, else a user-agent header LiteLLM kept."""
    agent = metadata.get("user_agent")
    if agent is not None:
        return str_field(metadata, "user_agent", "metadata.user_agent") or None
    for block in ("requester_metadata", "headers"):
        headers = _block(metadata, block, f"metadata.{block}")
        if block == "requester_metadata":
            headers = _block(headers, "headers", "metadata.requester_metadata.headers") or headers
        for name in _USER_AGENT_HEADERS:
            agent = str_field(headers, name, f"metadata.{block}.{name}")
            if agent:
                return agent
    return None


def _fill_response(ev: dict[str, Any], response: Any) -> None:
    """Take completion text, reasoning and tool calls from a ModelResponse dict (first choice)."""
    if response is None:
        return
    if type(response) is str:  # LiteLLM logs a plain string for some call types
        ev["completion_text"] = response
        return
    if type(response) is not dict:
        raise FieldError("response", f"expected an object, got {describe(response)}")
    choices = response.get("choices")
    if choices:
        if type(choices) is not list or type(choices[0]) is not dict:
            raise FieldError("response.choices", f"expected a list of choice objects, got {describe(choices)}")
        message = _block(choices[0], "message", "response.choices[0].message")
        content = message.get("content")
        if content is not None and type(content) is not str:
            content = content_text(content, "response.choices[0].message.content")
        ev["completion_text"] = content
        ev["reasoning_text"] = str_field(message, "reasoning_content", "response.choices[0].message.reasoning_content")
        ev["response_tool_calls"] = _list_len(message.get("tool_calls"), "response.choices[0].message.tool_calls")
    usage = _block(response, "usage", "response.usage")
    if usage:
        details = _block(usage, "completion_tokens_details", "response.usage.completion_tokens_details")
        ev["reasoning_tokens"] = to_int(
            details.get("reasoning_tokens"), "response.usage.completion_tokens_details.reasoning_tokens"
        )
