"""The enforcement policy: YAML rules mapping an account's risk and the request to actions.

A policy is a list of named rules checked in order; **the first rule whose conditions all hold
decides** (so put the strongest rules first, and end with a catch-all if you want one).  No match
means allow.  Thresholds live in the file, not in code; the shipped default is
``gateway/policies/default.yml``; ``docs/policy.md`` is the reference.

``mode: shadow`` (or ``shadow: true`` on a rule) logs and counts what would have been done without
doing it (dry run).  :class:`PolicyWatcher` reloads the file when it changes and keeps the old
policy, logging why, when the new file is invalid.

Example:
    >>> policy = Policy.from_dict({"rules": [
    ...     {"name": "block-flagged", "when": {"flagged": True, "score_gte": 0.9}, "actions": ["block"]},
    ...     {"name": "no-logprobs", "when": {"score_gte": 0.5, "logprobs": True}, "actions": ["strip_logprobs"]},
    ... ]})
    >>> from distillguard.gateway.risk import RiskView
    >>> from distillguard.gateway.types import RequestInfo
    >>> req = RequestInfo("acct-1", "/v1/chat/completions", {"logprobs": True, "top_logprobs": 20})
    >>> policy.match(RiskView("acct-1", score=0.6), req).name
    'no-logprobs'
    >>> policy.match(RiskView("acct-1", score=0.2), req) is None
    True
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from distillguard.errors import ConfigError
from distillguard.gateway.risk import RiskView
from distillguard.gateway.types import MAX_TOKEN_KEYS, Action, RequestInfo

log = logging.getLogger(__name__)

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent / "policies" / "default.yml"
MODES = ("enforce", "shadow")
CLAMP_KEYS = ("n", "max_tokens", "top_logprobs")
THROTTLE_UNITS = ("tokens", "requests")

Predicate = Callable[[RiskView, RequestInfo], bool]


# -- request parameters -------------------------------------------------------------------------
def requests_logprobs(body: dict[str, Any]) -> bool:
    """The request asks for log-probabilities (chat ``logprobs``/``top_logprobs``, completions ``logprobs: k``)."""
    lp = body.get("logprobs")
    top = body.get("top_logprobs")
    return bool(lp) or (isinstance(top, (int, float)) and top > 0)


def requested_n(body: dict[str, Any]) -> int:
    n = body.get("n")
    return int(n) if isinstance(n, (int, float)) and not isinstance(n, bool) else 1


def requested_max_tokens(body: dict[str, Any]) -> int:
    """The largest output cap the request names (0 when it names none)."""
    caps = [body.get(k) for k in MAX_TOKEN_KEYS]
    return max([int(c) for c in caps if isinstance(c, (int, float)) and not isinstance(c, bool)] or [0])


# -- conditions ---------------------------------------------------------------------------------
def _number(lo: float | None = None, hi: float | None = None) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValueError(f"expected a number in [{lo}, {hi}], got {value!r}")
        return float(value)

    return parse


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _strings(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected a list of names, got {value!r}")
    return frozenset(value)


#: condition name -> (value parser, predicate factory, one-line meaning for the docs)
CONDITIONS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Predicate], str]] = {
    "score_gte": (_number(0, 1), lambda x: lambda v, r: v.score >= x, "account score (max of online and scan) >= x"),
    "score_lt": (_number(0, 1), lambda x: lambda v, r: v.score < x, "account score < x"),
    "flagged": (_boolean, lambda b: lambda v, r: v.flagged is b, "account flagged online or by the batch scan"),
    "scan_flagged": (_boolean, lambda b: lambda v, r: v.scan_flagged is b, "account flagged by a loaded batch scan"),
    "online_flagged": (_boolean, lambda b: lambda v, r: v.online_flagged is b, "account flagged by online scoring"),
    "cluster_score_gte": (_number(0, 1), lambda x: lambda v, r: v.cluster_score >= x, "the account's cluster's pooled score >= x"),
    "cluster_flagged": (_boolean, lambda b: lambda v, r: v.cluster_flagged is b, "the account's cluster is flagged (bound and over the threshold)"),
    "in_cluster": (_boolean, lambda b: lambda v, r: (v.cluster_id is not None) is b, "the account belongs to a linked cluster"),
    "signals": (_strings, lambda s: lambda v, r: not s.isdisjoint(v.signals), "any of these detection rule ids fired for the account"),
    "n_events_gte": (_number(0), lambda x: lambda v, r: v.n_events >= x, "events behind the account's score >= x"),
    "logprobs": (_boolean, lambda b: lambda v, r: requests_logprobs(r.body) is b, "the request asks for logprobs / top_logprobs"),
    "n_gt": (_number(0), lambda x: lambda v, r: requested_n(r.body) > x, "the request's n > x"),
    "max_tokens_gt": (_number(0), lambda x: lambda v, r: requested_max_tokens(r.body) > x, "the request's max tokens > x"),
    "endpoints": (_strings, lambda s: lambda v, r: r.endpoint in s, "the request's path is one of these"),
}


@dataclass(frozen=True)
class Bucket:
    """Refill ``rate`` units per second up to ``burst`` units."""

    rate: float
    burst: float


@dataclass(frozen=True)
class Throttle:
    """Token buckets of a throttle rule: per account, per cluster, or both (a request must fit all)."""

    unit: str = "tokens"  # tokens: the request's estimated tokens; requests: 1 per request
    account: Bucket | None = None
    cluster: Bucket | None = None

    def cost(self, request: RequestInfo) -> float:
        return 1.0 if self.unit == "requests" else float(max(request.est_tokens, 1))


@dataclass(frozen=True)
class PolicyRule:
    """One named rule: conditions (all must hold), actions, and their parameters."""

    name: str
    actions: tuple[Action, ...]
    when: dict[str, Any] = field(default_factory=dict)  # as written, for display
    throttle: Throttle | None = None
    clamp: dict[str, int] = field(default_factory=dict)
    shadow: bool = False
    message: str | None = None  # what a refused client is told (the default says nothing about detection)
    predicates: tuple[Predicate, ...] = field(default=(), repr=False, compare=False)

    def matches(self, view: RiskView, request: RequestInfo) -> bool:
        for holds in self.predicates:
            if not holds(view, request):
                return False
        return True


@dataclass(frozen=True)
class Policy:
    """An ordered list of rules; the first match decides.  ``mode: shadow`` makes every rule a dry run."""

    rules: tuple[PolicyRule, ...] = ()
    mode: str = "enforce"
    source: str = "<policy>"

    @property
    def shadow(self) -> bool:
        return self.mode == "shadow"

    def match(self, view: RiskView, request: RequestInfo) -> PolicyRule | None:
        """The first rule whose conditions hold, else None (allow)."""
        for rule in self.rules:
            if rule.matches(view, request):
                return rule
        return None

    @classmethod
    def load(cls, path: str | Path | None = None) -> Policy:
        """The policy in ``path`` (default: the shipped ``policies/default.yml``)."""
        path = Path(path) if path else DEFAULT_POLICY_PATH
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: policy file not found") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the policy file: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<policy>") -> Policy:
        """Validate and compile; a wrong value raises ConfigError naming ``source`` and the field."""

        def fail(where: str, why: str) -> ConfigError:
            return ConfigError(f"{source}: {where}: {why}")

        if not isinstance(data, dict):
            raise fail("(top level)", "expected a mapping with 'rules'")
        unknown = set(data) - {"version", "mode", "rules"}
        if unknown:
            raise fail(sorted(unknown)[0], "unknown field; expected version, mode, rules")
        if data.get("version", 1) != 1:
            raise fail("version", f"unsupported policy version {data.get('version')!r} (this distillguard reads 1)")
        mode = data.get("mode", "enforce")
        if mode not in MODES:
            raise fail("mode", f"expected one of {', '.join(MODES)}, got {mode!r}")
        raw_rules = data.get("rules") or []
        if not isinstance(raw_rules, list):
            raise fail("rules", "expected a list of rules")
        rules, names = [], set()
        for i, raw in enumerate(raw_rules):
            rule = _parse_rule(raw, f"rules[{i}]", fail)
            if rule.name in names:
                raise fail(f"rules[{i}].name", f"duplicate rule name {rule.name!r}")
            names.add(rule.name)
            rules.append(rule)
        return cls(tuple(rules), mode, source)


def _parse_rule(raw: Any, where: str, fail: Callable[[str, str], ConfigError]) -> PolicyRule:
    if not isinstance(raw, dict):
        raise fail(where, "expected a mapping with name, when, actions")
    unknown = set(raw) - {"name", "when", "actions", "throttle", "clamp", "shadow", "message", "description"}
    if unknown:
        raise fail(f"{where}.{sorted(unknown)[0]}", "unknown field")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail(f"{where}.name", "every rule needs a name")
    where = f"{where} ({name})"
    when = raw.get("when") or {}
    if not isinstance(when, dict):
        raise fail(f"{where}.when", "expected a mapping of conditions")
    predicates = []
    for key, value in when.items():
        if key not in CONDITIONS:
            raise fail(f"{where}.when.{key}", f"unknown condition; expected one of {', '.join(CONDITIONS)}")
        parse, make, _ = CONDITIONS[key]
        try:
            predicates.append(make(parse(value)))
        except ValueError as exc:
            raise fail(f"{where}.when.{key}", str(exc)) from exc
    acts = raw.get("actions")
    if isinstance(acts, str):
        acts = [acts]
    if not isinstance(acts, list) or not acts:
        raise fail(f"{where}.actions", f"expected a list of actions from {', '.join(a.value for a in Action)}")
    try:
        actions = tuple(dict.fromkeys(Action(a) for a in acts))
    except ValueError as exc:
        raise fail(f"{where}.actions", f"{exc}; expected actions from {', '.join(a.value for a in Action)}") from exc
    if Action.ALLOW in actions and len(actions) > 1:
        raise fail(f"{where}.actions", "allow cannot be combined with other actions")
    throttle = _parse_throttle(raw.get("throttle"), f"{where}.throttle", fail) if "throttle" in raw else None
    if Action.THROTTLE in actions and throttle is None:
        raise fail(f"{where}.throttle", "a throttle action needs a throttle block (account and/or cluster buckets)")
    clamp = _parse_clamp(raw.get("clamp"), f"{where}.clamp", fail) if "clamp" in raw else {}
    if Action.CLAMP in actions and not clamp:
        raise fail(f"{where}.clamp", f"a clamp action needs clamp values ({', '.join(CLAMP_KEYS)})")
    shadow = raw.get("shadow", False)
    if not isinstance(shadow, bool):
        raise fail(f"{where}.shadow", f"expected true or false, got {shadow!r}")
    message = raw.get("message")
    if message is not None and not isinstance(message, str):
        raise fail(f"{where}.message", "expected a string")
    return PolicyRule(name, actions, dict(when), throttle, clamp, shadow, message, tuple(predicates))


def _parse_throttle(raw: Any, where: str, fail: Callable[[str, str], ConfigError]) -> Throttle:
    if not isinstance(raw, dict):
        raise fail(where, "expected a mapping with unit, account, cluster")
    unknown = set(raw) - {"unit", "account", "cluster"}
    if unknown:
        raise fail(f"{where}.{sorted(unknown)[0]}", "unknown field; expected unit, account, cluster")
    unit = raw.get("unit", "tokens")
    if unit not in THROTTLE_UNITS:
        raise fail(f"{where}.unit", f"expected one of {', '.join(THROTTLE_UNITS)}, got {unit!r}")
    buckets = {}
    for scope in ("account", "cluster"):
        spec = raw.get(scope)
        if spec is None:
            continue
        if not isinstance(spec, dict) or set(spec) != {"rate", "burst"}:
            raise fail(f"{where}.{scope}", "expected {rate: <units per second>, burst: <units>}")
        for k in ("rate", "burst"):
            v = spec[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise fail(f"{where}.{scope}.{k}", f"expected a positive number, got {v!r}")
        buckets[scope] = Bucket(float(spec["rate"]), float(spec["burst"]))
    if not buckets:
        raise fail(where, "name an account and/or a cluster bucket")
    return Throttle(unit, buckets.get("account"), buckets.get("cluster"))


def _parse_clamp(raw: Any, where: str, fail: Callable[[str, str], ConfigError]) -> dict[str, int]:
    if not isinstance(raw, dict) or not raw:
        raise fail(where, f"expected a mapping of {', '.join(CLAMP_KEYS)} to limits")
    out = {}
    for k, v in raw.items():
        if k not in CLAMP_KEYS:
            raise fail(f"{where}.{k}", f"unknown clamp; expected one of {', '.join(CLAMP_KEYS)}")
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if k == "top_logprobs" else 1):
            raise fail(f"{where}.{k}", f"expected a positive integer, got {v!r}")
        out[k] = v
    return out


class PolicyWatcher:
    """The current policy, reloaded when its file changes (checked at most every ``check_interval_s``).

    :meth:`current` is cheap enough for the request path: a clock read, and a ``stat`` once per
    interval.  An invalid new file is logged once and the previous policy stays in force.

    Example:
        >>> watcher = PolicyWatcher(DEFAULT_POLICY_PATH, check_interval_s=2.0)
        >>> watcher.current().mode
        'enforce'
    """

    def __init__(self, path: str | Path | None = None, *, check_interval_s: float = 2.0):
        self.path = Path(path) if path else DEFAULT_POLICY_PATH
        self.check_interval_s = check_interval_s
        self.policy = Policy.load(self.path)  # an invalid file at start is an error, not a warning
        self.last_error: str | None = None
        self.reloads = 0
        self._stamp = self._stat()
        self._next_check = time.monotonic() + check_interval_s
        self._lock = threading.Lock()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self) -> Policy:
        if time.monotonic() >= self._next_check:
            self.check()
        return self.policy

    def check(self) -> bool:
        """Reload now if the file changed; True when a new policy took effect."""
        with self._lock:
            self._next_check = time.monotonic() + self.check_interval_s
            stamp = self._stat()
            if stamp is None or stamp == self._stamp:
                return False
            self._stamp = stamp  # a bad file is reported once, not on every check
            try:
                self.policy = Policy.load(self.path)
            except ConfigError as exc:
                self.last_error = str(exc)
                log.error("policy reload failed, keeping the previous policy: %s", exc)
                return False
            self.last_error = None
            self.reloads += 1
            log.info("policy reloaded from %s (%d rules, mode %s)", self.path, len(self.policy.rules), self.policy.mode)
            return True
