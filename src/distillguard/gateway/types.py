"""The contract between the gateway's parts: what a request looks like to the
enforcer, what the enforcer decides, and the two small interfaces behind them.

The proxy (:mod:`distillguard.gateway.app`) and the LiteLLM plugin
(:mod:`distillguard.gateway.litellm_plugin`) both build a :class:`RequestInfo`,
ask an :class:`Enforcer` for a :class:`Decision`, apply it, and hand the
finished exchange to a :class:`Recorder`.  Recorded exchanges are normalized
with :func:`distillguard.normalize.normalize_batch` (the batch scan's one
normalization step) and the resulting ``EVENT_SCHEMA`` rows are fed back to
the enforcer through :meth:`Enforcer.observe`, so online scoring sees the same
columns the batch scan does.

Example:
    >>> d = Decision.allow()
    >>> d.enforced, d.actions
    (False, (<Action.ALLOW: 'allow'>,))
    >>> Decision(actions=(Action.BLOCK,), reason="account blocked by analyst", status=403).error_body()["error"]["code"]
    'distillguard_blocked'
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pyarrow as pa

from distillguard.schema import RawEvent


class Action(str, Enum):
    """What a policy can do to one request.  Several may apply at once (e.g. strip + clamp)."""

    ALLOW = "allow"
    FLAG = "flag"  # allow, but record the decision as a flag
    THROTTLE = "throttle"  # token bucket says no: 429 with Retry-After
    STRIP_LOGPROBS = "strip_logprobs"  # drop logprobs / top_logprobs from the request
    CLAMP = "clamp"  # clamp n and max tokens (Decision.clamp)
    WITHHOLD_REASONING = "withhold_reasoning"  # drop reasoning content from the response
    BLOCK = "block"  # refuse: 403 with an OpenAI-style error body


#: Actions that refuse the request outright.
REFUSING = frozenset({Action.THROTTLE, Action.BLOCK})
#: The request body keys that cap output tokens (chat, legacy completions / chat, responses).
MAX_TOKEN_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


@dataclass(frozen=True)
class RequestInfo:
    """One client request as the enforcer sees it, before it goes upstream."""

    account_id: str
    endpoint: str  # e.g. "/v1/chat/completions"
    body: dict[str, Any]  # parsed JSON body; never mutated by the enforcer
    api_key_hash: int | None = None  # the gateway's keyed hash of the client's key, never the key
    ip: str | None = None
    user_agent: str | None = None
    end_user: str | None = None  # body["user"] / safety_identifier, if any
    est_tokens: int = 0  # estimated prompt tokens + requested max tokens: the token-bucket cost
    ts: float = 0.0  # arrival, epoch seconds


@dataclass(frozen=True)
class Decision:
    """The enforcer's answer for one request, with the reason a person can read.

    ``shadow`` decisions are logged and counted but not applied (dry-run mode).
    """

    actions: tuple[Action, ...]
    reason: str = ""
    score: float | None = None  # the account's (or its cluster's) current risk score
    account_id: str | None = None
    cluster_id: str | None = None
    policy_rule: str | None = None  # name of the policy rule that matched
    shadow: bool = False
    status: int | None = None  # HTTP status when refusing (429 throttle, 403 block)
    retry_after_s: float | None = None
    clamp: dict[str, int] = field(default_factory=dict)  # e.g. {"max_tokens": 512, "n": 1}
    # what a refused client is told; ``reason`` (rule, score, evidence) is for operators and logs,
    # and would tell a harvester which signal gave it away.  None: fall back to ``reason``.
    message: str | None = None
    # the end user acted on, as ``<account>#eu:<end-user hash>``, when its own risk record decided
    sub_account_id: str | None = None

    @staticmethod
    def allow(reason: str = "", **kw: Any) -> Decision:
        return Decision(actions=(Action.ALLOW,), reason=reason, **kw)

    @property
    def enforced(self) -> bool:
        """True when the decision changes what the client gets (and is not shadow)."""
        return not self.shadow and any(a not in (Action.ALLOW, Action.FLAG) for a in self.actions)

    @property
    def refuses(self) -> bool:
        return not self.shadow and any(a in REFUSING for a in self.actions)

    @property
    def http_status(self) -> int:
        """The status a refusal answers with: ``status``, else 429 for a throttle and 403 otherwise."""
        return self.status or (429 if Action.THROTTLE in self.actions else 403)

    @property
    def retry_after_header(self) -> str | None:
        """The ``Retry-After`` value (whole seconds, rounded up, at least 1), or None when not throttled."""
        return None if self.retry_after_s is None else str(max(1, math.ceil(self.retry_after_s)))

    def error_body(self) -> dict[str, Any]:
        """OpenAI-style error body for a refused request."""
        throttled = Action.THROTTLE in self.actions
        return {
            "error": {
                "message": self.message or self.reason or ("rate limited" if throttled else "request refused"),
                "type": "rate_limit_error" if throttled else "permission_error",
                "param": None,
                "code": "distillguard_throttled" if throttled else "distillguard_blocked",
            }
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": [a.value for a in self.actions],
            "reason": self.reason,
            "score": self.score,
            "account_id": self.account_id,
            "cluster_id": self.cluster_id,
            "policy_rule": self.policy_rule,
            "shadow": self.shadow,
            "status": self.status,
            "retry_after_s": self.retry_after_s,
            "clamp": dict(self.clamp),
            "message": self.message,
            "sub_account_id": self.sub_account_id,
        }


class Enforcer(ABC):
    """Decides what to do with a request, and learns from what was recorded."""

    @abstractmethod
    async def decide(self, request: RequestInfo) -> Decision:
        """The decision for ``request``; must be fast (a lookup and a token-bucket take)."""

    @abstractmethod
    def observe(self, events: pa.Table) -> None:
        """Feed normalized ``EVENT_SCHEMA`` rows of recorded exchanges to online scoring.

        Called from the recorder's flush thread; must not block for long.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Stop background work and release connections (the proxy calls it at shutdown)."""


class Recorder(ABC):
    """Durably records finished exchanges (write-ahead first, store in batches)."""

    @abstractmethod
    def record(self, event: RawEvent, extra: dict[str, Any] | None = None) -> None:
        """Append one exchange; returns once it is in the write-ahead file, or, when that write fails
        (disk full, I/O error), once it is counted as lost: never raises into the request handler.

        ``extra``: what the event schema has no column for (the gateway passes
        ``endpoint``, ``http_status``, ``error`` and ``decision`` = ``Decision.to_dict()``).
        """

    @abstractmethod
    def close(self) -> None:
        """Flush everything to the store and stop."""

    def status(self) -> dict[str, Any]:
        """What ``/healthz``, ``GET /admin/recorder`` and ``/metrics`` show about recording: ``state``
        (``running``, ``restarting``, ``failed``, ``closed``), ``error`` (why it failed) and counters;
        empty when there is nothing to show."""
        return {}


class EnforcerAdmin(ABC):
    """What the admin API reads and changes; the enforcer implements it next to :class:`Enforcer`."""

    @abstractmethod
    def account_risk(self, account_id: str) -> dict[str, Any]:
        """Current score, flag, cluster, top signals, override and bucket state of one account."""

    @abstractmethod
    def cluster_risk(self, cluster_id: str) -> dict[str, Any]:
        """Current score, members and bucket state of one cluster."""

    @abstractmethod
    def set_override(self, account_id: str, action: Action, reason: str, *, by: str = "admin") -> None:
        """Manual override: ``Action.ALLOW`` (never enforce) or ``Action.BLOCK`` (always refuse)."""

    @abstractmethod
    def clear_override(self, account_id: str) -> bool:
        """Remove a manual override; False when there was none."""

    @abstractmethod
    def decisions(self, limit: int = 100, account_id: str | None = None) -> list[dict[str, Any]]:
        """The most recent non-trivial decisions, newest first (``Decision.to_dict`` plus ``ts``)."""
