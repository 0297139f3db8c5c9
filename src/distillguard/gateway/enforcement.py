"""The enforcer: override → risk → policy → token buckets → a Decision with a readable reason.

:class:`PolicyEnforcer` implements :class:`~distillguard.gateway.types.Enforcer` (``decide``,
``observe``) and :class:`~distillguard.gateway.types.EnforcerAdmin` (risk, overrides, decision
log).  ``decide`` never computes features: it reads the account's stored records (a dict lookup in
process; in Redis one ``EVALSHA`` fetching override, online and scan records and the cluster's, cached
per replica for ``cache_ttl_s``), matches the policy, and for a throttle rule takes from the
account's and cluster's buckets (one more ``EVALSHA`` in Redis).  Online scoring
(:class:`~distillguard.gateway.online.OnlineScorer`) and loaded scan results
(:mod:`distillguard.gateway.decisions`) write the records it reads.

Analyst overrides win over the policy and are applied even in shadow mode: they are explicit.

Example:
    >>> import asyncio
    >>> from distillguard.gateway.types import RequestInfo
    >>> enforcer = PolicyEnforcer(online=False)
    >>> enforcer.set_override("acct-9", Action.BLOCK, "chargeback fraud", by="alice")
    >>> d = asyncio.run(enforcer.decide(RequestInfo("acct-9", "/v1/chat/completions", {})))
    >>> d.status, d.policy_rule
    (403, 'override')
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from distillguard.errors import ConfigError
from distillguard.gateway.buckets import BucketSpec
from distillguard.gateway.policy import Policy, PolicyRule, PolicyWatcher
from distillguard.gateway.risk import RiskView, risk_view
from distillguard.gateway.state import CLUSTER, OVERRIDE, State, open_state
from distillguard.gateway.state.base import AccountView
from distillguard.gateway.types import Action, Decision, Enforcer, EnforcerAdmin, RequestInfo
from distillguard.privacy import Hasher
from distillguard.subaccount_ids import end_user_of, sub_account_id

if TYPE_CHECKING:  # the scorer (DuckDB, pandas, the detectors) loads only where it runs
    from distillguard.gateway.online import OnlineScorer

log = logging.getLogger(__name__)

#: What a refused client is told unless the rule sets ``message``: nothing about what was detected.
BLOCK_MESSAGE = "This request was refused under the provider's usage policy. Contact support if you think this is a mistake."
THROTTLE_MESSAGE = "Rate limit exceeded for this account; retry after {retry:.0f} s."
OVERRIDE_RULE = "override"
_ALLOW = Decision.allow()  # frozen: one instance serves every plain allow
_CACHE_MAX = 100_000


class PolicyEnforcer(Enforcer, EnforcerAdmin):
    """Decides per request from stored risk and the policy; learns through an online scorer.

    ``policy``: a :class:`Policy`, a :class:`PolicyWatcher`, or a path (watched, reloaded on change);
    default: the shipped ``policies/default.yml``.  ``state``: default in process.  ``scorer``: an
    :class:`OnlineScorer` writing to ``state`` (built with defaults when ``online`` and none is given;
    its thread starts here).  ``cache_ttl_s``: how long a replica reuses an account's records read
    from shared state (default 1 s with Redis, 0 in process); a change made on another replica takes
    effect within it.  ``hasher``: the deployment's keyed hasher (the one the scan's ingest used;
    default :meth:`Hasher.from_config`), for end users' sub-account ids.
    """

    def __init__(
        self,
        policy: Policy | PolicyWatcher | str | Path | None = None,
        state: State | None = None,
        scorer: OnlineScorer | None = None,
        *,
        online: bool = True,
        cache_ttl_s: float | None = None,
        decision_log_size: int = 10_000,
        start: bool = True,
        hasher: Hasher | None = None,
    ):
        if isinstance(policy, Policy):
            self._fixed: Policy | None = policy
            self.watcher: PolicyWatcher | None = None
        else:
            self._fixed, self.watcher = None, policy if isinstance(policy, PolicyWatcher) else PolicyWatcher(policy)
        self.state = state or open_state(None)
        if scorer is None and online:
            from distillguard.gateway.online import OnlineScorer

            scorer = OnlineScorer(self.state.risk)
        self.scorer = scorer
        # hashes a request's end-user id as the ingest does, to find its sub-account's records
        self.hasher = hasher or Hasher.from_config()
        self.cache_ttl_s = cache_ttl_s if cache_ttl_s is not None else (1.0 if self.state.shared else 0.0)
        self._cache: dict[str, tuple[float, AccountView]] = {}
        self._log: deque[tuple[float, Decision]] = deque(maxlen=decision_log_size)
        self.counts: Counter[tuple[str, str]] = Counter()  # (rule or "-", action) -> decisions
        if start and self.scorer is not None:
            self.scorer.start()

    @property
    def policy(self) -> Policy:
        return self._fixed if self._fixed is not None else self.watcher.current()

    # -- hot path ------------------------------------------------------------------------------
    async def _view(self, account_id: str) -> AccountView:
        if not self.cache_ttl_s:
            return await self.state.risk.aaccount_view(account_id)
        now = time.monotonic()
        hit = self._cache.get(account_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        view = await self.state.risk.aaccount_view(account_id)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[account_id] = (now + self.cache_ttl_s, view)
        return view

    async def decide(self, request: RequestInfo) -> Decision:
        """Override, else the first matching policy rule (with its bucket take), else allow.

        A request naming an end user whose sub-account has records of its own (a flagged end user
        of a reseller, from the scan) is judged on those, with buckets of its own; the account's
        override still wins.  Every other request is judged on the account's records.
        """
        stored = await self._view(request.account_id)
        subject, sub_id = request.account_id, None
        # only accounts the scan or online scoring found flagged end users in are looked up further: any
        # other request (most, and every one without an end user) costs no HMAC and no second lookup
        if request.end_user and stored.override is None and (_has_flagged_end_users(stored.scan) or _has_flagged_end_users(stored.online)):
            end_user_id = sub_account_id(request.account_id, self.hasher.hash(request.end_user))
            sub_stored = await self._view(end_user_id)
            if sub_stored.override is not None or sub_stored.scan is not None or sub_stored.online is not None:
                stored = end_user_view(stored, sub_stored)
                subject = sub_id = end_user_id
        if stored.override is not None:
            decision = _override_decision(request.account_id, stored.override, sub_id)
        else:
            view = risk_view(subject, stored)
            policy = self.policy
            rule = policy.match(view, request)
            decision = _ALLOW if rule is None else await self._apply(rule, view, request, policy.shadow or rule.shadow, sub_id)
        if decision.policy_rule is not None:
            self._log.append((time.time(), decision))
            for action in decision.actions:
                self.counts[(decision.policy_rule, action.value)] += 1
        return decision

    async def _apply(self, rule: PolicyRule, view: RiskView, request: RequestInfo, shadow: bool, sub_id: str | None) -> Decision:
        actions = list(rule.actions)
        status = retry = None
        reason = f"policy rule '{rule.name}': {view.describe()}"
        message = rule.message
        if Action.THROTTLE in actions:
            specs = _bucket_specs(rule, view.account_id, view.cluster_id)  # an end user's own buckets when it decided
            allowed, wait = (await self.state.buckets.atake_many(specs, rule.throttle.cost(request))) if specs else (True, 0.0)
            if allowed:
                actions.remove(Action.THROTTLE)
            else:
                status, retry = 429, round(wait, 3)
                scopes = " and ".join(s.key.split(":", 1)[0] for s in specs)
                reason += f"; throttled: {rule.throttle.unit} bucket ({scopes}) empty, retry in {wait:.1f} s"
                message = message or THROTTLE_MESSAGE.format(retry=math.ceil(wait))
        if Action.BLOCK in actions:
            status, retry = 403, None
            message = message or BLOCK_MESSAGE
        return Decision(
            actions=tuple(actions) or (Action.FLAG,), reason=reason, score=view.score, account_id=request.account_id,
            cluster_id=view.cluster_id, policy_rule=rule.name, shadow=shadow, status=status, retry_after_s=retry,
            clamp=dict(rule.clamp) if Action.CLAMP in actions else {}, message=message, sub_account_id=sub_id,
        )  # fmt: skip

    def observe(self, events: pa.Table) -> None:
        if self.scorer is not None:
            self.scorer.observe(events)

    # -- admin ---------------------------------------------------------------------------------
    def account_risk(self, account_id: str) -> dict[str, Any]:
        stored = self.state.risk.account_view(account_id)
        view = risk_view(account_id, stored)
        buckets = {}
        for rule in self.policy.rules:
            for spec in _bucket_specs(rule, account_id, view.cluster_id):
                buckets[f"{rule.name}/{spec.key.split(':', 1)[0]}"] = {
                    "level": round(self.state.buckets.level(spec), 3), "rate": spec.rate, "burst": spec.burst, "unit": rule.throttle.unit,
                }  # fmt: skip
        return {
            "account_id": account_id, "known": view.known, "score": view.score, "flagged": view.flagged,
            "online_flagged": view.online_flagged, "scan_flagged": view.scan_flagged, "cluster_id": view.cluster_id,
            "cluster_score": view.cluster_score, "cluster_flagged": view.cluster_flagged, "signals": sorted(view.signals),
            "evidence": list(view.evidence), "n_events": view.n_events, "override": stored.override,
            "online": stored.online, "scan": stored.scan, "buckets": buckets,
        }  # fmt: skip

    def cluster_risk(self, cluster_id: str) -> dict[str, Any]:
        record = self.state.risk.get(CLUSTER, cluster_id)
        buckets = {}
        for rule in self.policy.rules:
            if rule.throttle is not None and rule.throttle.cluster is not None:
                spec = _cluster_spec(rule, cluster_id)
                buckets[rule.name] = {"level": round(self.state.buckets.level(spec), 3), "rate": spec.rate, "burst": spec.burst, "unit": rule.throttle.unit}
        return {
            "cluster_id": cluster_id, "known": record is not None, "score": (record or {}).get("score", 0.0),
            "flagged": bool((record or {}).get("flagged")), "members": (record or {}).get("members", []),
            "n_members": (record or {}).get("n_members", 0), "evidence": (record or {}).get("evidence", []),
            "record": record, "buckets": buckets,
        }  # fmt: skip

    def set_override(self, account_id: str, action: Action, reason: str, *, by: str = "admin") -> None:
        action = Action(action)
        if action not in (Action.ALLOW, Action.BLOCK):
            raise ValueError(f"an override is allow or block, not {action.value}")
        self.state.risk.put(OVERRIDE, account_id, {"action": action.value, "reason": reason, "by": by, "at": time.time()})
        self._cache.pop(account_id, None)
        log.info("override %s on %s by %s: %s", action.value, account_id, by, reason)

    def clear_override(self, account_id: str) -> bool:
        self._cache.pop(account_id, None)
        return self.state.risk.delete(OVERRIDE, account_id)

    def decisions(self, limit: int = 100, account_id: str | None = None) -> list[dict[str, Any]]:
        out = []
        for ts, decision in reversed(self._log):
            if account_id is None or account_id in (decision.account_id, decision.sub_account_id):
                out.append({**decision.to_dict(), "ts": ts})
                if len(out) >= limit:
                    break
        return out

    def stats(self) -> dict[str, Any]:
        """Decision counts by rule and action, policy reload state, online scoring counters."""
        return {
            "decisions": {f"{rule}:{action}": n for (rule, action), n in self.counts.items()},
            "policy_source": self.policy.source, "policy_mode": self.policy.mode,
            "policy_reloads": self.watcher.reloads if self.watcher else 0,
            "policy_error": self.watcher.last_error if self.watcher else None,
            "online": vars(self.scorer.stats).copy() if self.scorer else None,
        }  # fmt: skip

    def close(self) -> None:
        if self.scorer is not None:
            self.scorer.close()
        self.state.close()


def _has_flagged_end_users(record: dict[str, Any] | None) -> bool:
    """Whether an account's scan or online record says end users inside it were flagged (they have records of their own)."""
    return bool(record and (record.get("extra") or {}).get("flagged_end_users"))


def end_user_view(account: AccountView, end_user: AccountView) -> AccountView:
    """The records an end user with records of its own is judged on: its override and scan record, the
    higher-scored of its online record and its account's, and its account's cluster.  What holds for
    the whole account online still holds for each of its end users; a scan record of the account is
    left out only where the end user has one of its own (the account's then carries its score without
    its end users' lift, see :func:`~distillguard.gateway.decisions.account_record`).

    Example:
        >>> acct = AccountView(None, {"score": 0.2}, {"score": 0.3}, None)
        >>> eu = AccountView(None, {"score": 0.9, "flagged": True}, None, None)
        >>> v = end_user_view(acct, eu)
        >>> v.online["score"], v.scan["score"]
        (0.9, 0.3)
    """
    online = end_user.online
    if online is None or (account.online is not None and float(account.online.get("score") or 0.0) > float(online.get("score") or 0.0)):
        online = account.online
    scan = end_user.scan if end_user.scan is not None or end_user.override is not None else account.scan
    return account._replace(override=end_user.override, online=online, scan=scan)


def _override_decision(account_id: str, override: dict[str, Any], sub_id: str | None = None) -> Decision:
    why = f"analyst override by {override.get('by', 'admin')}: {override.get('reason', '')}".rstrip(": ")
    if sub_id is not None:
        why += f" (on end user {sub_id})"
    if override.get("action") == Action.BLOCK.value:
        return Decision(actions=(Action.BLOCK,), reason=why, account_id=account_id, policy_rule=OVERRIDE_RULE, status=403,
                        message=BLOCK_MESSAGE, sub_account_id=sub_id)  # fmt: skip
    return Decision.allow(why, account_id=account_id, policy_rule=OVERRIDE_RULE, sub_account_id=sub_id)


def _cluster_spec(rule: PolicyRule, cluster_id: str) -> BucketSpec:
    b = rule.throttle.cluster
    return BucketSpec(f"cluster:{rule.name}:{cluster_id}", b.rate, b.burst)


def _bucket_specs(rule: PolicyRule, account_id: str, cluster_id: str | None) -> list[BucketSpec]:
    """The buckets a throttle rule takes from: per (rule, account) and per (rule, cluster) when in one.

    ``account_id`` may be a sub-account id: an end user judged on its own records gets an
    ``end_user`` bucket of the account's size, so it cannot drain the reseller's.
    """
    t = rule.throttle
    if t is None:
        return []
    scope = "account" if end_user_of(account_id) is None else "end_user"
    specs = [BucketSpec(f"{scope}:{rule.name}:{account_id}", t.account.rate, t.account.burst)] if t.account else []
    if t.cluster is not None and cluster_id:
        specs.append(_cluster_spec(rule, cluster_id))
    return specs


#: build_enforcer options (GatewayConfig attributes or keyword arguments) and their defaults.
ENFORCER_OPTIONS: dict[str, Any] = {
    "policy_path": None,  # YAML policy; None: the shipped default
    "redis_url": None,  # shared state; None: in process
    "redis_prefix": "dg:",
    "model_path": None,  # Ensemble model file; None: the shipped model
    "decisions_dir": None,  # a `distillguard scan --out` directory to load as decisions (GatewayConfig's name)
    "decisions_from": None,  # the same, under the name the issue uses
    "threshold": None,  # flag point; None: the model's operating point
    "online": True,  # run online scoring on recorded traffic
    "rescore_interval_s": 10.0,
    "min_rescore_interval_s": 5.0,  # an account is rescored at most this often, however busy
    "window_s": 86400.0,
    "max_window_events": 200_000,
    "link_interval_s": None,  # online campaign linking period; None: off
    "online_end_users": True,  # online scoring also judges the end users of shared accounts
    "policy_check_interval_s": 2.0,
    "cache_ttl_s": None,
    "secret": None,  # accepted for GatewayConfig compatibility; hashing happens in the recorder
    "secret_file": None,  # hashing secret (else $DISTILLGUARD_SECRET, else the demo secret): end users' sub-account ids
}


def enforcer_options(config: Any = None, **overrides: Any) -> dict[str, Any]:
    """Every option of :data:`ENFORCER_OPTIONS`, from a GatewayConfig-like object and/or keywords.

    Reads the attributes named in :data:`ENFORCER_OPTIONS` from ``config`` (missing ones take the
    defaults there); keywords override them; an unknown keyword is a ConfigError.

    Example:
        >>> enforcer_options(online=False)["online"], enforcer_options()["rescore_interval_s"]
        (False, 10.0)
    """
    unknown = set(overrides) - set(ENFORCER_OPTIONS)
    if unknown:
        raise ConfigError(f"unknown enforcer option(s): {', '.join(sorted(unknown))}; expected {', '.join(ENFORCER_OPTIONS)}")
    return {name: overrides[name] if name in overrides else getattr(config, name, default) for name, default in ENFORCER_OPTIONS.items()}


def build_scorer(risk: Any, options: dict[str, Any]) -> OnlineScorer | None:
    """The online scorer the options describe, writing to ``risk`` (None when ``online`` is off).

    The serving process's enforcer builds it in process; the recording worker
    (:mod:`distillguard.gateway.worker`) builds it beside the store it feeds.
    """
    if not options["online"]:
        return None
    from distillguard.gateway.online import OnlineScorer
    from distillguard.subaccounts import SubAccountConfig

    return OnlineScorer(
        risk, model_path=options["model_path"], threshold=options["threshold"], window_s=float(options["window_s"]),
        max_events=int(options["max_window_events"]), rescore_interval_s=float(options["rescore_interval_s"]),
        min_rescore_interval_s=float(options["min_rescore_interval_s"]), link_interval_s=options["link_interval_s"],
        end_users=SubAccountConfig() if options["online_end_users"] else None,
    )  # fmt: skip


def build_enforcer(
    config: Any = None, *, scorer_in_process: bool = True, hasher: Hasher | None = None, **overrides: Any
) -> PolicyEnforcer:
    """The enforcer the ``serve`` command runs, from a GatewayConfig-like object and/or keywords
    (:func:`enforcer_options`).  Loads ``decisions_from`` into the state at start.

    ``scorer_in_process=False``: no online scorer in this process even when ``online`` is on (the
    recording worker runs it and sends its risk records back; see
    :class:`~distillguard.gateway.process_recorder.ProcessRecorder`).  ``hasher``: the deployment's
    (else one from ``secret_file``), to name end users as the scan's ingest did.

    Example:
        >>> e = build_enforcer(online=False)
        >>> e.policy.mode
        'enforce'
    """
    options = enforcer_options(config, **overrides)
    state = open_state(options["redis_url"], prefix=options["redis_prefix"])
    try:
        watcher = PolicyWatcher(options["policy_path"], check_interval_s=float(options["policy_check_interval_s"]))
        hasher = hasher or Hasher.from_config(options["secret_file"])
        scan_dir = options["decisions_dir"] or options["decisions_from"]
        if scan_dir:
            from distillguard.gateway.decisions import load_scan_decisions

            loaded = load_scan_decisions(scan_dir, state.risk, hasher=hasher)
            log.info("loaded scan decisions from %s: %d accounts (%d flagged), %d end users of shared accounts (%d flagged), "
                     "%d clusters (%d flagged)", loaded.scan_dir, loaded.n_accounts, loaded.n_flagged_accounts,
                     loaded.n_end_users, loaded.n_flagged_end_users, loaded.n_clusters, loaded.n_flagged_clusters)  # fmt: skip
        scorer = build_scorer(state.risk, options) if scorer_in_process else None
        return PolicyEnforcer(
            watcher, state, scorer, online=scorer is not None, cache_ttl_s=options["cache_ttl_s"],
            hasher=hasher,
        )  # fmt: skip
    except BaseException:
        state.close()
        raise
