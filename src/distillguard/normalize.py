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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
#: Characters of the first user message that name a conversation, and of the system prompt that name it:
#: chats and long system prompts that differ only further on group together.
CONVERSATION_PREFIX_CHARS = 500
SYSTEM_PREFIX_CHARS = 2000


#: What a batch of events is reduced to before its identifiers are hashed and its text measured: one
#: row per event, identifiers still in clear, the conversation reduced to the texts and counts the
#: stored columns are derived from.  :func:`exchange_table` builds it from reader output
#: (``RawEvent`` dicts); :mod:`distillguard.ingest.litellm_columns` builds it straight from log lines
#: in compiled code.  Either way :func:`normalize_exchanges` turns it into stored rows, so the two
#: paths cannot drift apart.  Never stored.
EXCHANGE_SCHEMA = pa.schema(
    [EVENT_SCHEMA.field(name) for name in _PASSTHROUGH]
    + [
        pa.field("api_key", pa.string()),
        pa.field("end_user", pa.string()),
        pa.field("ip", pa.string()),
        pa.field("user_agent", pa.string()),
        pa.field("account_id", pa.string()),  # the provider's id; null when absent or empty
        pa.field("end_ts", pa.float64()),
        pa.field("first_token_ts", pa.float64()),
        EVENT_SCHEMA.field("n_messages"),
        EVENT_SCHEMA.field("n_user_turns"),
        EVENT_SCHEMA.field("n_assistant_turns"),
        pa.field("prompt_text", pa.string(), nullable=False),  # the last user message ("" without one)
        pa.field("first_user_text", pa.string()),  # the first user message (null without one)
        pa.field("system_text", pa.string(), nullable=False),  # the first non-empty system/developer message, or ""
        pa.field("completion_text", pa.string()),
    ]
)


@dataclass
class NormalizedBatch:
    """One batch ready for the store: event rows, optional clear text, and the prompts for excerpts."""

    events: pa.Table
    texts: pa.Table | None
    #: the last user message of each event (``EXCHANGE_SCHEMA.prompt_text``), for redacted excerpts
    prompts: pa.ChunkedArray | pa.Array

    @property
    def excerpts(self) -> list[tuple[str, str, float, str]]:
        """``(account_id, event_id, ts, prompt)`` per event, for :class:`ExcerptKeeper` (prompts not yet redacted)."""
        events = self.events
        return list(zip(*(events[name].to_pylist() for name in ("account_id", "event_id", "ts")),
                        self.prompts.to_pylist()))  # fmt: skip


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
    return normalize_exchanges(exchange_table(raw), hasher, keep_text=keep_text)


def exchange_table(raw: Sequence[RawEvent]) -> pa.Table:
    """Reader output as one ``EXCHANGE_SCHEMA`` row per event (nothing hashed or measured yet).

    Example:
        >>> t = exchange_table([{"event_id": "e1", "ts": 1.0, "messages": [
        ...     {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}])
        >>> t.column("prompt_text").to_pylist(), t.column("system_text").to_pylist(), t.column("n_messages").to_pylist()
        (['Hi'], ['Be brief.'], [2])
    """
    # Runs once per event: fields are gathered into columns with C-level getters, the one Python loop
    # left walks the messages.
    n = len(raw)
    fields = _columns(raw, _FIELDS, _FIELDS_GET)
    prompts: list[str] = []
    systems: list[str] = []
    shapes: list[tuple] = []  # (n_messages, n_user_turns, n_assistant_turns) per event
    first_users: list[str | None] = []
    add_prompt, add_system, add_shape, add_first = prompts.append, systems.append, shapes.append, first_users.append
    for messages in fields["messages"]:
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
    n_messages, n_user, n_assistant = zip(*shapes) if n else ((), (), ())
    cols: dict[str, Any] = {name: fields[name] for name in _PASSTHROUGH}
    cols.update(
        api_key=_strings(fields["api_key"]),
        end_user=_strings(fields["end_user"]),
        ip=_strings(fields["ip"]),
        user_agent=_strings(fields["user_agent"]),
        account_id=_strings([a if a else None for a in fields["account_id"]]),
        end_ts=fields["end_ts"],
        first_token_ts=fields["first_token_ts"],
        n_messages=n_messages,
        n_user_turns=n_user,
        n_assistant_turns=n_assistant,
        prompt_text=_strings(prompts),
        first_user_text=_strings(first_users),
        system_text=_strings(systems),
        completion_text=_strings(fields["completion_text"]),
    )
    return pa.table(cols, schema=EXCHANGE_SCHEMA)


def normalize_exchanges(table: pa.Table, hasher: Hasher, *, keep_text: bool = False) -> NormalizedBatch:
    """``EXCHANGE_SCHEMA`` rows → stored rows: hash identifiers, measure text, drop text.

    Column at a time: every distinct identifier is hashed once (HMAC costs ~3 us a value).

    Example:
        >>> from distillguard.privacy import Hasher
        >>> t = exchange_table([{"event_id": "e1", "ts": 1.0, "api_key": "sk-1", "messages": []}])
        >>> normalize_exchanges(t, Hasher(b"k")).events.column("account_id").to_pylist()[0].startswith("key:")
        True
    """
    n = table.num_rows
    hash_ = hasher.hash
    api_key_hash = _hash_column(hash_, table["api_key"])
    end_user_hash = _hash_column(hash_, table["end_user"])
    systems = table["system_text"]
    has_system = pc.not_equal(systems, "")
    first_users = table["first_user_text"]
    ip_hash, ip_prefix_hash = _hash_column(hash_, table["ip"], hasher.ip_prefix_hash)
    cols: dict[str, Any] = {name: table[name] for name in _PASSTHROUGH}
    cols.update(
        api_key_hash=api_key_hash,
        end_user_hash=end_user_hash,
        ip_hash=ip_hash,
        ip_prefix_hash=ip_prefix_hash,
        user_agent_hash=_hash_column(hash_, table["user_agent"]),
        account_id=_account_ids(table["account_id"], api_key_hash, end_user_hash),
        latency_s=pc.subtract(table["end_ts"], table["ts"]),
        ttft_s=pc.subtract(table["first_token_ts"], table["ts"]),
        n_messages=table["n_messages"],
        n_user_turns=table["n_user_turns"],
        n_assistant_turns=table["n_assistant_turns"],
        has_system=has_system,
        # hashed on a prefix (in characters): long system prompts and chats that differ further on group together;
        # an empty system prompt is none (null), an empty first user message still starts a conversation
        system_hash=hasher.hash_texts(
            pc.if_else(has_system, pc.utf8_slice_codeunits(systems, 0, SYSTEM_PREFIX_CHARS), pa.scalar(None, pa.string())), "sys"
        ),
        conversation_hash=hasher.hash_texts(pc.utf8_slice_codeunits(first_users, 0, CONVERSATION_PREFIX_CHARS), "conv"),
    )
    prompts = table["prompt_text"]
    measured = measure_texts(prompts, table["completion_text"])
    for name, values in measured.items():
        if name in _EVENT_COLUMNS:
            cols[name] = values
    events = pa.table({name: cols[name] if name in cols else pa.nulls(n, field.type)
                       for name, field in zip(EVENT_SCHEMA.names, EVENT_SCHEMA)}, schema=EVENT_SCHEMA)  # fmt: skip
    texts = None
    if keep_text:
        texts = pa.table(
            {"event_id": table["event_id"], "prompt_text": prompts, "system_text": systems,
             "completion_text": table["completion_text"]},
            schema=TEXT_SCHEMA,
        )  # fmt: skip
    return NormalizedBatch(events, texts, prompts)


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


def _strings(values: Sequence) -> pa.Array:
    """``values`` as an Arrow string array; non-string identifiers (numbers) become their text, as hashing saw them."""
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid, UnicodeEncodeError):
        # lone surrogates (no JSON reader lets one through) cannot be UTF-8: replaced, like an undecodable byte
        return pa.array([None if v is None else str(v).encode("utf-8", "surrogatepass").decode("utf-8", "replace")
                         for v in values], pa.string())  # fmt: skip


def _hash_column(fn: Callable[[Any], Any], values: pa.ChunkedArray | pa.Array, *more: Callable[[Any], Any]) -> Any:
    """``fn`` of each value as int64 (null where the value is null), calling ``fn`` once per distinct value;
    with ``more`` functions, a tuple of one such column per function (the values grouped once)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = values.dictionary_encode()  # nulls stay nulls in the indices
    distinct = encoded.dictionary.to_pylist()
    hashed = tuple(pa.array([f(v) for v in distinct], pa.int64()).take(encoded.indices) for f in (fn, *more))
    return hashed if more else hashed[0]


def _account_ids(accounts: pa.ChunkedArray, api_key_hash: pa.Array, end_user_hash: pa.Array) -> pa.Array:
    """The provider's account id, else one derived from the API key or end user (:func:`account_key`)."""
    if not accounts.null_count:
        return accounts
    keys, users = api_key_hash.to_pylist(), end_user_hash.to_pylist()
    return pa.array([a if a is not None else account_key(None, k, u)
                     for a, k, u in zip(accounts.to_pylist(), keys, users)], pa.string())  # fmt: skip


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


def batch_excerpt_candidates(batch: NormalizedBatch, per_account: int, shipped: dict[str, int]) -> list[tuple[str, str, float, str]]:
    """:func:`excerpt_candidates` of a whole batch, looking only at the rows of accounts that may still need one.

    Once an account has had ``per_account`` candidates shipped (the common case after the first
    blocks of a log), none of its rows is turned back into Python objects.

    Example:
        >>> from distillguard.privacy import Hasher
        >>> batch = normalize_batch([{"event_id": "e1", "ts": 1.0, "account_id": "a",
        ...     "messages": [{"role": "user", "content": "hi"}]}], Hasher(b"k"))
        >>> shipped = {}
        >>> batch_excerpt_candidates(batch, 1, shipped), batch_excerpt_candidates(batch, 1, shipped)
        ([('a', 'e1', 1.0, 'hi')], [])
    """
    accounts = batch.events["account_id"].combine_chunks().dictionary_encode()
    still_open = np.array([shipped.get(a, 0) < per_account for a in accounts.dictionary.to_pylist()], bool)
    rows = np.flatnonzero(still_open[accounts.indices.to_numpy(zero_copy_only=False)]) if len(still_open) else []
    if not len(rows):
        return []
    events = batch.events.take(rows)
    columns = [events[name].to_pylist() for name in ("account_id", "event_id", "ts")]
    return excerpt_candidates(list(zip(*columns, batch.prompts.take(rows).to_pylist())), per_account, shipped=shipped)


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
