"""RawEvent batches → stored event rows: hash identifiers, measure text, drop text.

This is the single place where a reader's output becomes the normalized
schema; the batch scan and the gateway both call :func:`normalize_batch`.

Example:
    >>> from distillguard.privacy import Hasher
    >>> batch = normalize_batch([{"event_id": "e1", "ts": 1.7e9, "account_id": "acct-1",
    ...     "messages": [{"role": "user", "content": "What is 2+2?"}], "completion_text": "4"}],
    ...     Hasher(b"k"))
    >>> batch.events.column("account_id").to_pylist(), batch.events.column("n_user_turns").to_pylist()
    (['acct-1'], [1])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from distillguard.features.text import measure_texts
from distillguard.privacy import Hasher, redact
from distillguard.schema import EVENT_SCHEMA, TEXT_SCHEMA, RawEvent

# RawEvent fields copied to the stored row as they are.
_PASSTHROUGH = (
    "event_id", "ts", "team_id", "org_id", "source_format", "source_file", "source_line", "model", "status",
    "prompt_tokens", "completion_tokens", "reasoning_tokens", "max_tokens", "temperature", "top_p", "n",
    "logprobs", "top_logprobs", "seed", "reasoning_effort", "stream", "tools_count", "response_tool_calls",
)  # fmt: skip
_HASHED = (("api_key", "api_key_hash"), ("end_user", "end_user_hash"), ("ip", "ip_hash"), ("user_agent", "user_agent_hash"))


@dataclass
class NormalizedBatch:
    """One batch ready for the store: event rows, optional clear text, and redacted excerpts."""

    events: pa.Table
    texts: pa.Table | None
    excerpts: list[tuple[str, str, float, str]]  # (account_id, event_id, ts, redacted prompt)


def message_text(content: object) -> str:
    """The text of a message ``content`` (a string, or a list of parts with ``text``)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(message_text(p.get("text") if isinstance(p, dict) else p) for p in content)
    return str(content)


def account_key(account_id: str | None, api_key_hash: int | None, end_user_hash: int | None) -> str:
    """The account an event belongs to: the provider's id, else its API key, else its end user."""
    if account_id:
        return str(account_id)
    if api_key_hash is not None:
        return f"key:{api_key_hash & 0xFFFFFFFFFFFFFFFF:016x}"
    if end_user_hash is not None:
        return f"user:{end_user_hash & 0xFFFFFFFFFFFFFFFF:016x}"
    return "unknown"


def normalize_batch(raw: Sequence[RawEvent], hasher: Hasher, *, keep_text: bool = False) -> NormalizedBatch:
    """Turn reader output into rows of ``EVENT_SCHEMA`` (and ``TEXT_SCHEMA`` when ``keep_text``)."""
    cols: dict[str, list] = {name: [] for name in EVENT_SCHEMA.names}
    prompts: list[str] = []
    systems: list[str] = []
    completions: list[str | None] = []
    for ev in raw:
        get = ev.get
        for name in _PASSTHROUGH:
            cols[name].append(get(name))
        for src, dst in _HASHED:
            cols[dst].append(hasher.hash(get(src)))
        cols["ip_prefix_hash"].append(hasher.ip_prefix_hash(get("ip")))
        cols["account_id"].append(account_key(get("account_id"), cols["api_key_hash"][-1], cols["end_user_hash"][-1]))
        ts, end_ts, first = get("ts"), get("end_ts"), get("first_token_ts")
        cols["latency_s"].append(end_ts - ts if end_ts is not None and ts is not None else None)
        cols["ttft_s"].append(first - ts if first is not None and ts is not None else None)

        user_texts, system_text, n_assistant = [], "", 0
        messages = get("messages") or []
        for m in messages:
            role = m.get("role")
            if role == "user":
                user_texts.append(message_text(m.get("content")))
            elif role == "assistant":
                n_assistant += 1
            elif role in ("system", "developer") and not system_text:
                system_text = message_text(m.get("content"))
        prompt = user_texts[-1] if user_texts else ""
        cols["n_messages"].append(len(messages))
        cols["n_user_turns"].append(len(user_texts))
        cols["n_assistant_turns"].append(n_assistant)
        cols["has_system"].append(bool(system_text))
        cols["system_hash"].append(hasher.hash("sys:" + system_text[:2000]) if system_text else None)
        cols["conversation_hash"].append(hasher.hash("conv:" + user_texts[0][:500]) if user_texts else None)
        prompts.append(prompt)
        systems.append(system_text)
        completions.append(get("completion_text"))

    measured = measure_texts(prompts, completions)
    for name, values in measured.items():
        if name in cols:
            cols[name] = values
    events = pa.table(cols, schema=EVENT_SCHEMA)
    texts = None
    if keep_text:
        texts = pa.table(
            {"event_id": cols["event_id"], "prompt_text": prompts, "system_text": systems, "completion_text": completions},
            schema=TEXT_SCHEMA,
        )
    excerpts = [(a, e, t, p) for a, e, t, p in zip(cols["account_id"], cols["event_id"], cols["ts"], prompts)]
    return NormalizedBatch(events, texts, excerpts)


class ExcerptKeeper:
    """Keeps the first ``per_account`` redacted prompts of each account, for evidence.

    Example:
        >>> keeper = ExcerptKeeper(per_account=1)
        >>> keeper.offer([("a", "e1", 1.0, "hi bob@example.com"), ("a", "e2", 2.0, "again")])
        >>> keeper.rows()
        [{'account_id': 'a', 'event_id': 'e1', 'ts': 1.0, 'prompt_excerpt': 'hi <email>'}]
    """

    def __init__(self, per_account: int = 5):
        self.per_account = per_account
        self._kept: dict[str, int] = {}
        self._rows: list[dict] = []

    def offer(self, excerpts: Sequence[tuple[str, str, float, str]]) -> None:
        kept = self._kept
        for account, event_id, ts, prompt in excerpts:
            if kept.get(account, 0) < self.per_account and prompt.strip():
                kept[account] = kept.get(account, 0) + 1
                self._rows.append({"account_id": account, "event_id": event_id, "ts": ts, "prompt_excerpt": redact(prompt)})

    def rows(self) -> list[dict]:
        return self._rows

    def drain(self) -> list[dict]:
        rows, self._rows = self._rows, []
        return rows
