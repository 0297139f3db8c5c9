"""End users inside shared accounts, scored as accounts of their own.

Resellers, routers and app backends send many end users' traffic through one account.  A
harvesting operator that buys access through a reseller hides there as a small share of the
account's traffic, so the account's pooled behaviour is mostly genuine and the account-level
score stays low.  When the log carries an end-user id (OpenAI ``user`` / ``safety_identifier``,
LiteLLM ``end_user``), the scan can look one level down: in every account with at least
``min_end_users`` distinct end users, each end user's requests (and the requests with no end-user
id, as one group) form a *sub-account*.  Its features come from the very same SQL as an
account's (:func:`distillguard.features.account.account_features_sql` over a view in which
``account_id`` is ``<account>#eu:<end-user hash>``) and the scan's :class:`Ensemble` scores it
against the account population.

Three guards keep the many genuine end users of a large reseller from turning into false flags:

* a sub-account must carry ``min_events`` requests before it is scored: below that its features
  are too noisy to judge, and the harvest is too small to act on;
* features that describe the account's place among other accounts (how many accounts share its
  network prefix) keep the parent account's value: a reseller's end users all leave through the
  reseller's servers, which says nothing about any one of them;
* a shared account holds many end users, so judging each of them at the account operating point
  would multiply false flags (many tests, one verdict).  An end user is flagged only when, besides
  the score, an explicit harvesting rule of at least ``min_rule_score`` severity fires on it
  (reasoning-trace coercion, benchmark sweep, logprob or multi-sample harvesting, broad
  single-turn coverage...): resemblance to known harvesting alone does not convict inside a
  shared account.

Example:
    >>> sub_account_id("reseller-1", None), sub_account_id("reseller-1", -2)
    ('reseller-1#eu:none', 'reseller-1#eu:-2')
    >>> parent_of("reseller-1#eu:-2")
    'reseller-1'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from distillguard.detectors.ensemble import Ensemble
from distillguard.features.account import FEATURE_NAMES, account_features_sql
from distillguard.findings import Evidence
from distillguard.schema import EVENT_SCHEMA
from distillguard.store.base import EventStore

SEPARATOR = "#eu:"
#: Features computed relative to other accounts; a sub-account inherits its parent's value.
PARENT_FEATURES = ("ip_prefix_accounts",)


@dataclass(frozen=True)
class SubAccountConfig:
    """When an account counts as shared, and when one of its end users is scored."""

    min_end_users: int = 20  # distinct end-user ids that make an account a shared one
    min_events: int = 50  # requests an end user needs before it is scored
    min_rule_score: float = 0.5  # an explicit rule at least this severe must fire on the end user


@dataclass
class SubAccountFinding:
    """The verdict on one end user inside a shared account."""

    account_id: str  # the parent account
    end_user: str  # keyed hash of the end-user id (decimal, as stored), or "none"
    score: float
    flagged: bool
    n_events: int
    share: float  # of the parent account's requests
    est_exchanges: int = 0  # successful requests of this end user, when flagged
    est_output_tokens: int = 0
    evidence: list[Evidence] = field(default_factory=list)

    def explain(self) -> str:
        who = "requests without an end-user id" if self.end_user == "none" else f"end user {self.end_user}"
        titles = "; ".join(e.title for e in self.evidence[:3]) or "no rule fired"
        return (
            f"{who} in account {self.account_id}: score {self.score:.3f} over {self.n_events:,} requests "
            f"({self.share:.1%} of the account's traffic): {titles}"
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["score"] = round(float(self.score), 6)
        d["share"] = round(float(self.share), 6)
        return d


def sub_account_id(account_id: str, end_user_hash: int | None) -> str:
    return f"{account_id}{SEPARATOR}{'none' if end_user_hash is None else end_user_hash}"


def parent_of(sub_id: str) -> str:
    return sub_id.split(SEPARATOR, 1)[0]


def _events_until(until: float | None) -> str:
    return "events" if until is None else f"(SELECT * FROM events WHERE ts < {float(until)!r})"


def _end_user_view(shared: str, until: float | None = None) -> str:
    """The shared accounts' events, relabelled by end user (portable SQL)."""
    cols = ", ".join(f'"{c}"' for c in EVENT_SCHEMA.names if c != "account_id")
    label = f"account_id || '{SEPARATOR}' || coalesce(CAST(end_user_hash AS VARCHAR), 'none')"
    return f"(SELECT {cols}, {label} AS account_id FROM {_events_until(until)} e WHERE account_id IN (SELECT account_id FROM {shared}))"


def end_user_features(
    store: EventStore, frame: pd.DataFrame, config: SubAccountConfig = SubAccountConfig(), *, until: float | None = None
) -> pd.DataFrame:
    """Feature rows (index = sub-account id) for the end users of shared accounts worth scoring.

    ``frame`` is the scan's account feature frame (index = account id); accounts in it with at
    least ``config.min_end_users`` distinct end users are the shared ones.  ``until`` restricts the
    events to ``ts < until``, as for the account frame (replays).  Returns an empty frame when
    there are none.
    """
    if "distinct_end_users" not in frame or frame.empty:
        return pd.DataFrame(columns=list(FEATURE_NAMES))
    shared = frame.index[frame["distinct_end_users"] >= config.min_end_users].astype(str).tolist()
    if not shared:
        return pd.DataFrame(columns=list(FEATURE_NAMES))
    sub = store.query(
        f"""WITH shared AS (SELECT unnest(?::VARCHAR[]) AS account_id)
            SELECT * FROM ({account_features_sql(_end_user_view("shared", until), population=_events_until(until))}) f
            WHERE f.n_events >= ?""",
        [shared, int(config.min_events)],
    ).to_pandas()
    sub = sub.set_index("account_id")
    for name in FEATURE_NAMES:
        sub[name] = sub[name].astype("float64").fillna(0.0)
    parents = [parent_of(s) for s in sub.index]
    for name in PARENT_FEATURES:
        sub[name] = frame.loc[parents, name].to_numpy()
    sub["parent_account"] = parents
    return sub


def score_end_users(
    store: EventStore, frame: pd.DataFrame, model: Ensemble, threshold: float, config: SubAccountConfig = SubAccountConfig(),
    *, until: float | None = None,
) -> list[SubAccountFinding]:
    """Score the end users of shared accounts; flagged ones explain themselves.

    ``model`` must already be fitted on the account population (the scan does this first), so
    end users are judged against accounts, not against each other.
    """
    sub = end_user_features(store, frame, config, until=until)
    if sub.empty:
        return []
    per_detector = model.detector_scores(sub)
    scores, rules = model.combine(per_detector), per_detector["rules"]
    # column arrays, not a row Series per end user (there can be many thousands)
    parents = sub["parent_account"].astype(str).tolist()
    n_events, n_success, output_tokens = (sub[c].to_numpy() for c in ("n_events", "n_success", "output_tokens"))
    out = []
    for i, sid in enumerate(sub.index):
        parent = parents[i]
        flagged = bool(scores[i] >= threshold and rules[i] >= config.min_rule_score)
        finding = SubAccountFinding(
            account_id=parent,
            end_user=str(sid).split(SEPARATOR, 1)[1],
            score=float(scores[i]),
            flagged=flagged,
            n_events=int(n_events[i]),
            share=float(n_events[i]) / max(float(frame.at[parent, "n_events"]), 1.0),
        )
        if flagged:
            finding.est_exchanges = int(n_success[i])
            finding.est_output_tokens = int(output_tokens[i])
            finding.evidence = model.explain(sub, sid)
        out.append(finding)
    out.sort(key=lambda f: -f.score)
    return out


def end_user_evidence(flagged: list[SubAccountFinding]) -> Evidence:
    """One readable sentence on the parent account for its flagged end users."""
    top = flagged[0]
    more = f" and {len(flagged) - 1} more end user(s)" if len(flagged) > 1 else ""
    return Evidence("end_users", "harvesting end user inside a shared account", top.explain() + more, round(top.score, 3))
