"""The one normalized event schema every input format lands in.

Two layers:

* :class:`RawEvent` is what a reader (``distillguard.ingest.*``) yields for one
  API exchange: clear-text identifiers and the message text, exactly as the
  log had them, just renamed to common field names.  It never reaches disk.
* ``EVENT_SCHEMA`` is what the store keeps for that exchange after
  :mod:`distillguard.normalize` has keyed-hashed the identifiers, measured the
  text (:mod:`distillguard.features.event`) and dropped the text itself.

The batch scan and the gateway both go through the same two steps, so a
feature means the same thing wherever it is computed.

Example:
    >>> ev: RawEvent = {"event_id": "a1", "ts": 1.7e9, "account_id": "acct-1",
    ...                 "messages": [{"role": "user", "content": "hi"}]}
    >>> "ts" in EVENT_SCHEMA.names
    True
"""

from __future__ import annotations

from typing import Any, TypedDict

import pyarrow as pa

#: Bumped whenever a stored column changes meaning or type (v2: `conversation_hash` and `system_hash` are
#: SipHash-2-4 under a key derived from the secret, no longer HMAC-SHA256).
EVENT_SCHEMA_VERSION = 2


class Message(TypedDict, total=False):
    role: str  # system | user | assistant | tool | developer
    content: str


class RawEvent(TypedDict, total=False):
    """One exchange as a reader found it.  Every field but ``ts`` is optional.

    Readers fill what their format has and leave the rest out (or ``None``).
    """

    event_id: str  # stable id from the source; else the reader derives one from the line
    ts: float  # request start, epoch seconds (UTC)
    end_ts: float | None  # response end, epoch seconds
    first_token_ts: float | None  # first streamed token, epoch seconds
    account_id: str | None  # the provider's account / user id
    api_key: str | None  # raw key or the gateway's key hash: hashed again at ingest
    end_user: str | None  # `user` / `safety_identifier` / LiteLLM end_user
    team_id: str | None
    org_id: str | None
    ip: str | None  # requester IP address (v4 or v6)
    user_agent: str | None
    model: str | None
    status: str | None  # "success" | "failure"
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_tokens: int | None
    max_tokens: int | None  # max_tokens or max_completion_tokens
    temperature: float | None
    top_p: float | None
    n: int | None
    logprobs: bool | None
    top_logprobs: int | None
    seed: int | None
    reasoning_effort: str | None
    stream: bool | None
    tools_count: int | None  # tools / functions declared in the request
    response_tool_calls: int | None  # tool calls in the response
    messages: list[Message]  # the request's messages, in order
    completion_text: str | None  # the response's text (first choice)
    reasoning_text: str | None  # reasoning_content / thinking returned, if any
    source_format: str  # reader name, e.g. "litellm"
    source_file: str
    source_line: int


#: Columns kept per exchange.  ``*_hash`` columns are HMAC-SHA256 (truncated to
#: 64 bits, signed) of the clear value under the deployment secret.
EVENT_SCHEMA = pa.schema(
    [
        # identity and provenance
        ("event_id", pa.string()),
        ("ts", pa.float64()),
        ("account_id", pa.string()),  # provider account id, else "key:<hash of api key>"
        ("api_key_hash", pa.int64()),
        ("end_user_hash", pa.int64()),
        ("team_id", pa.string()),
        ("org_id", pa.string()),
        ("ip_hash", pa.int64()),
        ("ip_prefix_hash", pa.int64()),  # /24 for IPv4, /48 for IPv6
        ("user_agent_hash", pa.int64()),
        ("source_format", pa.string()),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        # request parameters
        ("model", pa.string()),
        ("status", pa.string()),
        ("latency_s", pa.float64()),
        ("ttft_s", pa.float64()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
        ("max_tokens", pa.int64()),
        ("temperature", pa.float64()),
        ("top_p", pa.float64()),
        ("n", pa.int64()),
        ("logprobs", pa.bool_()),
        ("top_logprobs", pa.int64()),
        ("seed", pa.int64()),
        ("reasoning_effort", pa.string()),
        ("stream", pa.bool_()),
        ("tools_count", pa.int64()),
        ("response_tool_calls", pa.int64()),
        # conversation structure
        ("n_messages", pa.int64()),
        ("n_user_turns", pa.int64()),
        ("n_assistant_turns", pa.int64()),  # prior assistant turns sent back = a real follow-up
        ("has_system", pa.bool_()),
        ("system_hash", pa.int64()),
        ("conversation_hash", pa.int64()),  # hash of the first user message: groups turns of one chat
        # text measurements (computed from the text, which is then dropped)
        ("prompt_chars", pa.int64()),
        ("completion_chars", pa.int64()),
        ("prompt_hash", pa.int64()),  # exact (normalized) last-user-message hash
        ("template_prefix_hash", pa.int64()),  # first words, digits masked
        ("template_suffix_hash", pa.int64()),  # last words, digits masked
        ("minhash_bands", pa.list_(pa.int64())),  # LSH band keys of the prompt's MinHash
        ("script", pa.string()),  # dominant writing system of the prompt: latin, cjk, cyrillic, ...
        ("capability", pa.string()),  # code | math | reasoning | writing | translation | extraction | chat | other
        ("reasoning_elicit", pa.bool_()),  # asks for the model's reasoning trace / CoT
        ("rubric_grading", pa.bool_()),  # asks the model to grade / score / judge responses
        ("benchmark_hits", pa.int64()),  # shingles shared with the public-benchmark index
        ("benchmark_name", pa.string()),  # best-matching benchmark, if any
        ("completion_has_reasoning", pa.bool_()),  # the answer contains a worked reasoning trace
    ]
)

#: Optional clear-text columns, stored only with ``--keep-text``.
TEXT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("prompt_text", pa.string()),
        ("system_text", pa.string()),
        ("completion_text", pa.string()),
    ]
)

#: A few redacted prompts per account, kept for evidence even without ``--keep-text``.
SAMPLE_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("event_id", pa.string()),
        ("ts", pa.float64()),
        ("prompt_excerpt", pa.string()),
    ]
)

#: The optional accounts table.
ACCOUNT_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("created_at", pa.float64()),  # epoch seconds
        ("payment_hash", pa.int64()),
        ("email_hash", pa.int64()),
        ("email_domain", pa.string()),
        ("country", pa.string()),
        ("verification_tier", pa.string()),
        ("organization", pa.string()),
    ]
)


class RawAccount(TypedDict, total=False):
    """One row of the accounts table as a reader found it (clear text)."""

    account_id: str
    created_at: float | None
    payment_fingerprint: str | None
    email: str | None
    country: str | None
    verification_tier: str | None
    organization: str | None


def empty_row(schema: pa.Schema) -> dict[str, Any]:
    """A dict with every column of ``schema`` set to None."""
    return {name: None for name in schema.names}
