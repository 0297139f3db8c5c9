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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

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
#: RawEvent fields normalize_batch derives columns from.
_IDENTITY = (
    "api_key", "end_user", "ip", "user_agent", "account_id", "ts", "end_ts", "first_token_ts", "messages", "completion_text",
)  # fmt: skip
_FIELDS = _PASSTHROUGH + tuple(f for f in _IDENTITY if f not in _PASSTHROUGH)
_FIELDS_GET = itemgetter(*_FIELDS)
_EVENT_COLUMNS = frozenset(EVENT_SCHEMA.names)


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
    # Runs once per event: fields are gathered into columns with C-level getters, the one Python loop
    # left walks the messages, and every distinct identifier is hashed once (HMAC costs ~3 us a value).
    n = len(raw)
    fields = _columns(raw, _FIELDS, _FIELDS_GET)
    api_keys, end_users, ips, agents, account_ids, starts, ends, firsts, messages_col, completions = (
        fields[name] for name in _IDENTITY
    )

    prompts: list[str] = []
    systems: list[str] = []
    shapes: list[tuple] = []  # (n_messages, n_user_turns, n_assistant_turns) per event
    first_users: list[str | None] = []
    add_prompt, add_system, add_shape, add_first = prompts.append, systems.append, shapes.append, first_users.append
    for messages in messages_col:
        user_texts, system_text, n_assistant = [], "", 0
        for m in messages or ():
            role = m.get("role")
            if role == "user":
                content = m.get("content")
                user_texts.append(content if type(content) is str else message_text(content))
            elif role == "assistant":
                n_assistant += 1
            elif not system_text and role in ("system", "developer"):
                content = m.get("content")
                system_text = content if type(content) is str else message_text(content)
        add_shape((len(messages) if messages else 0, len(user_texts), n_assistant))
        add_prompt(user_texts[-1] if user_texts else "")
        add_first(user_texts[0] if user_texts else None)
        add_system(system_text)

    hash_, hash_text = hasher.hash, hasher.hash_text
    api_key_hash = _hash_each(hash_, api_keys)
    end_user_hash = _hash_each(hash_, end_users)
    cols: dict[str, Any] = {}
    cols.update((name, fields[name]) for name in _PASSTHROUGH)
    n_messages, n_user, n_assistant = zip(*shapes) if n else ((), (), ())
    cols.update(
        api_key_hash=api_key_hash,
        end_user_hash=end_user_hash,
        ip_hash=_hash_each(hash_, ips),
        ip_prefix_hash=_hash_each(hasher.ip_prefix_hash, ips),
        user_agent_hash=_hash_each(hash_, agents),
        account_id=[
            str(a) if a else account_key(None, k, u) for a, k, u in zip(account_ids, api_key_hash, end_user_hash)
        ],
        latency_s=[e - t if e is not None and t is not None else None for t, e in zip(starts, ends)],
        ttft_s=[f - t if f is not None and t is not None else None for t, f in zip(starts, firsts)],
        n_messages=n_messages,
        n_user_turns=n_user,
        n_assistant_turns=n_assistant,
        has_system=list(map(bool, systems)),
        # keyed on the text itself: no prefixed copy of every prompt is built just to find the distinct ones
        system_hash=_hash_each(lambda x: hash_text("sys:" + x[:2000]) if x else None, systems),
        conversation_hash=_hash_each(lambda x: hash_text("conv:" + x[:500]) if x is not None else None, first_users),
    )
    measured = measure_texts(prompts, completions)
    for name, values in measured.items():
        if name in _EVENT_COLUMNS:
            cols[name] = values
    events = pa.table({name: cols.get(name, [None] * n) for name in EVENT_SCHEMA.names}, schema=EVENT_SCHEMA)
    texts = None
    if keep_text:
        texts = pa.table(
            {"event_id": cols["event_id"], "prompt_text": prompts, "system_text": systems, "completion_text": completions},
            schema=TEXT_SCHEMA,
        )
    excerpts = list(zip(cols["account_id"], cols["event_id"], cols["ts"], prompts))
    return NormalizedBatch(events, texts, excerpts)


def _columns(raw: Sequence[RawEvent], names: tuple[str, ...], get: Callable[[RawEvent], tuple]) -> dict[str, tuple]:
    """``{name: tuple(event[name] for event in raw)}``, gathered with one C-level getter per event.

    Tuples, not lists: Arrow and the text measures take either, and a list copy would touch every value again.
    """
    try:
        rows = list(map(get, raw))
    except KeyError:  # a reader (or caller) that leaves fields out
        rows = [tuple(map(ev.get, names)) for ev in raw]
    if not rows:
        return {name: () for name in names}
    return dict(zip(names, zip(*rows)))


def _hash_each(fn: Callable[[Any], Any], values: Sequence) -> list:
    """``[fn(v) for v in values]``, calling ``fn`` once per distinct value (identifiers repeat within a batch)."""
    memo = {v: fn(v) for v in set(values)}
    return list(map(memo.__getitem__, values))


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
        self.offer_redacted(excerpt_candidates(excerpts, self.per_account))

    def offer_redacted(self, candidates: Sequence[tuple[str, str, float, str]]) -> None:
        """Like :meth:`offer`, for rows already filtered and redacted by :func:`excerpt_candidates`."""
        kept = self._kept
        for account, event_id, ts, excerpt in candidates:
            if kept.get(account, 0) < self.per_account:
                kept[account] = kept.get(account, 0) + 1
                self._rows.append({"account_id": account, "event_id": event_id, "ts": ts, "prompt_excerpt": excerpt})

    def rows(self) -> list[dict]:
        return self._rows

    def drain(self) -> list[dict]:
        rows, self._rows = self._rows, []
        return rows

    def give_back(self, rows: Sequence[dict]) -> None:
        """Undo the keeping of drained ``rows`` that were never stored (a rolled-back write): their
        accounts may keep as many excerpts again."""
        for row in rows:
            self._kept[row["account_id"]] -= 1


def excerpt_candidates(
    excerpts: Sequence[tuple[str, str, float, str]], per_account: int, *, shipped: dict[str, int] | None = None
) -> list[tuple[str, str, float, str]]:
    """The excerpts of one batch an :class:`ExcerptKeeper` could keep, redacted.

    The first ``per_account`` non-blank prompts of each account in the batch:
    a superset of what the keeper takes from it, whatever it kept before, so
    worker processes can filter and redact and ship only these.
    ``keeper.offer_redacted(excerpt_candidates(x, n))`` keeps what ``keeper.offer(x)`` would.

    ``shipped`` (updated in place) counts candidates already returned per account
    by earlier calls over batches that come *earlier in input order*; an account
    with ``per_account`` of them needs none from this batch, since the keeper holds
    that many before it.  Redaction is most of this function's cost.

    Example:
        >>> shipped = {}
        >>> excerpt_candidates([("a", "e1", 1.0, "mail bob@example.com")], 1, shipped=shipped)
        [('a', 'e1', 1.0, 'mail <email>')]
        >>> excerpt_candidates([("a", "e2", 2.0, "again")], 1, shipped=shipped)
        []
    """
    seen: dict[str, int] = {} if shipped is None else shipped
    out = []
    for account, event_id, ts, prompt in excerpts:
        if seen.get(account, 0) < per_account and prompt.strip():
            seen[account] = seen.get(account, 0) + 1
            out.append((account, event_id, ts, redact(prompt)))
    return out
