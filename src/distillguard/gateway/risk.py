"""Risk records (what online scoring and a loaded batch scan write) and the view a policy matches on.

A :class:`RiskRecord` is stored as JSON in the state backend (tables ``online``, ``scan``,
``cluster``); :func:`risk_view` folds an account's records into one :class:`RiskView`:
the higher of the online and scan scores, flagged when either is, the cluster's score and flag.

Example:
    >>> from distillguard.gateway.state.base import AccountView
    >>> online = RiskRecord("acct-1", score=0.4, flagged=False, source="online").to_dict()
    >>> scan = RiskRecord("acct-1", score=0.95, flagged=True, source="scan", rule_ids=("logprob_harvesting",)).to_dict()
    >>> v = risk_view("acct-1", AccountView(None, online, scan, None))
    >>> v.score, v.flagged, v.scan_flagged, sorted(v.signals)
    (0.95, True, True, ['logprob_harvesting'])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from distillguard.gateway.state.base import AccountView, Record, cluster_of
from distillguard.subaccount_ids import end_user_of, parent_of


@dataclass(frozen=True)
class RiskRecord:
    """Risk of one account or cluster at one time, from one source."""

    subject: str  # account id, or cluster id
    score: float  # 0..1; an account's score already includes a bound cluster's lift
    flagged: bool  # score >= the model's operating point (clusters: and bound)
    source: str  # "online" | "scan"
    threshold: float | None = None
    cluster_id: str | None = None  # accounts: the cluster it belongs to
    rule_ids: tuple[str, ...] = ()  # detection rules that fired
    evidence: tuple[str, ...] = ()  # top evidence titles, most telling first
    n_events: int = 0
    updated_at: float = 0.0  # epoch seconds
    members: tuple[str, ...] = ()  # clusters: member account ids (capped)
    n_members: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Record:
        d = asdict(self)
        for k in ("rule_ids", "evidence", "members"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, data: Record) -> RiskRecord:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for k in ("rule_ids", "evidence", "members"):
            known[k] = tuple(known.get(k) or ())
        return cls(**known)


@dataclass(frozen=True)
class RiskView:
    """What a policy rule's conditions see about the requesting account."""

    account_id: str  # or a sub-account id (an end user inside a shared account)
    score: float = 0.0  # max of online and scan scores
    flagged: bool = False  # flagged online or by the scan
    scan_flagged: bool = False
    online_flagged: bool = False
    cluster_id: str | None = None
    cluster_score: float = 0.0
    cluster_flagged: bool = False
    signals: frozenset[str] = frozenset()  # rule ids fired (online or scan)
    evidence: tuple[str, ...] = ()
    n_events: int = 0
    known: bool = False  # any risk record exists

    def describe(self) -> str:
        """``account acct-1 score 0.93 (flagged by scan); cluster c0001 score 0.97 (flagged); evidence: ...``
        (``end user -2 of account acct-1 score ...`` for a sub-account)."""
        flags = [s for s, on in (("online", self.online_flagged), ("scan", self.scan_flagged)) if on]
        end_user = end_user_of(self.account_id)
        who = f"account {self.account_id}" if end_user is None else f"end user {end_user} of account {parent_of(self.account_id)}"
        text = f"{who} score {self.score:.2f}" + (f" (flagged by {' and '.join(flags)})" if flags else "")
        if self.cluster_id:
            text += f"; cluster {self.cluster_id} score {self.cluster_score:.2f}" + (" (flagged)" if self.cluster_flagged else "")
        if self.evidence:
            text += "; evidence: " + "; ".join(self.evidence[:3])
        return text


def risk_view(account_id: str, view: AccountView) -> RiskView:
    """Fold an account's stored records into the one view the policy matches on."""
    online, scan, cluster = view.online or {}, view.scan or {}, view.cluster or {}
    if not (online or scan or cluster):
        return RiskView(account_id)
    first = scan if float(scan.get("score") or 0.0) >= float(online.get("score") or 0.0) else online
    second = online if first is scan else scan
    evidence = tuple(first.get("evidence") or ()) + tuple(e for e in second.get("evidence") or () if e not in (first.get("evidence") or ()))
    return RiskView(
        account_id=account_id,
        score=max(float(online.get("score") or 0.0), float(scan.get("score") or 0.0)),
        flagged=bool(online.get("flagged") or scan.get("flagged")),
        scan_flagged=bool(scan.get("flagged")),
        online_flagged=bool(online.get("flagged")),
        cluster_id=cluster_of(view.online, view.scan),
        cluster_score=float(cluster.get("score") or 0.0),
        cluster_flagged=bool(cluster.get("flagged")),
        signals=frozenset(online.get("rule_ids") or ()) | frozenset(scan.get("rule_ids") or ()),
        evidence=evidence,
        n_events=max(int(online.get("n_events") or 0), int(scan.get("n_events") or 0)),
        known=True,
    )
