"""Small record factories for the ingest tests: one complete RawEvent, and raw lines per format."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson

from distillguard.schema import RawAccount, RawEvent

#: Fields a reader adds itself (provenance), left out when comparing a roundtrip.
PROVENANCE = ("source_format", "source_file", "source_line")


def make_event(i: int = 0, **overrides: Any) -> RawEvent:
    """A RawEvent with every field set, varied by ``i`` so events differ."""
    ts = 1_700_000_000.25 + 37.5 * i
    ev: RawEvent = {
        "event_id": f"chatcmpl-{i:04d}",
        "ts": ts,
        "end_ts": ts + 2.5,
        "first_token_ts": ts + 0.5,
        "account_id": f"acct-{i % 3}",
        "api_key": f"sk-hash-{i % 3}",
        "end_user": f"user-{i}",
        "team_id": "team-a",
        "org_id": "org-1",
        "ip": f"203.0.113.{i % 250}",
        "user_agent": "python-httpx/0.27",
        "model": "gpt-teacher",
        "status": "success",
        "prompt_tokens": 12 + i,
        "completion_tokens": 340 + i,
        "reasoning_tokens": 100,
        "max_tokens": 4096,
        "temperature": 0.7,
        "top_p": 0.95,
        "n": 1,
        "logprobs": True,
        "top_logprobs": 5,
        "seed": 42,
        "reasoning_effort": "high",
        "stream": False,
        "tools_count": 2,
        "response_tool_calls": 1,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": f"Explain step by step why {i} + 1 = {i + 1}. Ünïcödé ✓"},
        ],
        "completion_text": f"Because {i} + 1 = {i + 1}.",
        "reasoning_text": "Let me think about it.",
    }
    ev.update(overrides)  # type: ignore[typeddict-item]
    return ev


def make_account(i: int = 0, **overrides: Any) -> RawAccount:
    """A RawAccount with every field set."""
    account: RawAccount = {
        "account_id": f"acct-{i}",
        "created_at": 1_690_000_000.0 + 86400 * i,
        "payment_fingerprint": f"card-{i % 2}",
        "email": f"person{i}@example.org",
        "country": "DE",
        "verification_tier": "basic",
        "organization": "Example GmbH",
    }
    account.update(overrides)  # type: ignore[typeddict-item]
    return account


def litellm_record(**overrides: Any) -> dict[str, Any]:
    """A minimal real-shaped LiteLLM StandardLoggingPayload."""
    record: dict[str, Any] = {
        "id": "chatcmpl-abc",
        "trace_id": "t-1",
        "call_type": "acompletion",
        "status": "success",
        "startTime": 1_700_000_000.5,
        "endTime": 1_700_000_002.0,
        "completionStartTime": 1_700_000_000.9,
        "model": "gpt-teacher",
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "total_tokens": 30,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
        "response": {"choices": [{"message": {"role": "assistant", "content": "hi there"}}]},
        "model_parameters": {"max_completion_tokens": 256, "temperature": 0.2},
        "end_user": "",
        "requester_ip_address": "198.51.100.7",
        "metadata": {
            "user_api_key_hash": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
            "user_api_key_user_id": "acct-7",
            "user_api_key_team_id": "team-x",
            "user_api_key_org_id": None,
            "user_api_key_end_user_id": "end-9",
            "requester_metadata": {"headers": {"user-agent": "curl/8.5"}},
        },
    }
    record.update(overrides)
    return record


def write_jsonl(path: Path, records: list[Any]) -> Path:
    """Write records (dicts, or raw str/bytes lines) one per line; gzip when the name ends in .gz."""
    lines = b"".join(
        (r if isinstance(r, bytes) else r.encode() if isinstance(r, str) else orjson.dumps(r)) + b"\n" for r in records
    )
    path.write_bytes(gzip.compress(lines, mtime=0) if path.name.endswith(".gz") else lines)
    return path


def truncate_gzip(path: Path, keep_fraction: float = 0.6) -> Path:
    """Cut a gzip file short, as an interrupted copy or a crashed writer leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def comparable(ev: dict[str, Any]) -> dict[str, Any]:
    """An event without its provenance fields, for roundtrip comparisons."""
    return {k: v for k, v in ev.items() if k not in PROVENANCE}
