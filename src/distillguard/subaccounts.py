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

Two ways to be flagged, for two questions:

* **the account model** ("does this end user, over its history, look like a harvesting account?"):
  a sub-account carrying ``min_events`` requests is scored like an account, with the guards below;
* **a sequential test** ("is this end user's run of requests already conclusive?"):
  :mod:`distillguard.sequential` accumulates per-request harvest evidence (fresh prompts answered
  at many times their length, benchmark prompts and reasoning traces among them, requests to
  write out reasoning) against the account's own traffic, and flags a unit as soon as its own
  evidence, or the account's evidence pooled over all its units, crosses a threshold set by a
  false-alarm budget (``alpha`` per account, split between the two), whatever its request count.
  A campaign spread thin over several end-user ids reaches 50 requests per id late (a day and a
  half at a 5% share); its requests are harvest-shaped from the first one.

Three guards keep the many genuine end users of a large reseller from turning into false flags on
the model path:

* a sub-account must carry ``min_events`` requests before it is scored: below that its features
  are too noisy to judge;
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

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from distillguard.detectors.ensemble import Ensemble
from distillguard.features.account import FEATURE_NAMES, account_features_sql, columns_but_account
from distillguard.findings import Evidence
from distillguard.sequential import INDICATORS, SequentialTest
from distillguard.store.base import EventStore
from distillguard.subaccount_ids import SEPARATOR, parent_of, sub_account_id  # noqa: F401 - re-exported

#: Features computed relative to other accounts; a sub-account inherits its parent's value.
PARENT_FEATURES = ("ip_prefix_accounts",)


@dataclass(frozen=True)
class SubAccountConfig:
    """When an account counts as shared, and when one of its end users is scored."""

    min_end_users: int = 20  # distinct end-user ids that make an account a shared one
    min_events: int = 50  # requests an end user needs before the account model scores it
    min_rule_score: float = 0.5  # an explicit rule at least this severe must fire on the end user
    sequential: SequentialTest | None = SequentialTest()  # per-request evidence test (None: model path only)


@dataclass
class SubAccountFinding:
    """The verdict on one end user inside a shared account."""

    account_id: str  # the parent account
    end_user: str  # keyed hash of the end-user id (decimal, as stored), or "none"
    score: float  # the higher of the model's score and the sequential test's (1 - its adjusted p-value bound)
    flagged: bool
    n_events: int
    share: float  # of the parent account's requests
    est_exchanges: int = 0  # successful requests of this end user, when flagged
    est_output_tokens: int = 0
    evidence: list[Evidence] = field(default_factory=list)
    model_score: float | None = None  # the account model's score (None: fewer than min_events requests)
    evidence_nats: float | None = None  # the sequential test's log likelihood ratio (None: test off)
    evidence_needed: float | None = None  # the threshold it had to reach in this account
    pooled_nats: float | None = None  # the pooled test's evidence over all end users of the account (None: test off)
    pooled_needed: float | None = None  # the threshold the pooled evidence had to reach
    harvest_posterior: float | None = None  # the pooled test's posterior chance that this end user harvests
    flagged_by: str | None = None  # "sequential test", "pooled test" or "model" (the first that holds), None if not flagged

    def explain(self) -> str:
        who = "requests without an end-user id" if self.end_user == "none" else f"end user {self.end_user}"
        titles = "; ".join(e.title for e in self.evidence[:3]) or "no rule fired"
        return (
            f"{who} in account {self.account_id}: score {self.score:.3f} over {self.n_events:,} requests "
            f"({self.share:.1%} of the account's traffic): {titles}"
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("score", "share", "model_score", "evidence_nats", "evidence_needed", "pooled_nats", "pooled_needed", "harvest_posterior"):
            if d[k] is not None:
                d[k] = round(float(d[k]), 6)
        return d


def _events_until(until: float | None) -> str:
    return "events" if until is None else f"(SELECT * FROM events WHERE ts < {float(until)!r})"


#: The end users' events while their features are computed (temp table, dropped after).
END_USER_EVENTS_TABLE = "_dg_end_user_events"

#: The end user a stored event belongs to, as it appears in sub-account ids.
_END_USER = "coalesce(CAST(end_user_hash AS VARCHAR), 'none')"


def _end_user_view(shared: str, until: float | None = None, min_events: int = 1) -> str:
    """The shared accounts' events, relabelled by end user, of end users with ``min_events`` requests (portable SQL;
    the columns the feature query reads).

    The end users below ``min_events`` are left out before the features are computed, not after:
    on the 1M-event bench log they are 83k of 84k end users and half the shared accounts' events.
    Every feature of an end user reads its own events (and the population, passed apart), so the
    others' rows are the same either way.
    """
    label = f"account_id || '{SEPARATOR}' || {_END_USER}"
    view = f"(SELECT {columns_but_account()}, {label} AS account_id FROM {_events_until(until)} e WHERE account_id IN (SELECT account_id FROM {shared}))"
    if min_events <= 1:
        return view
    big = f"SELECT account_id FROM {view} c GROUP BY account_id HAVING count(*) >= {int(min_events)}"
    return f"(SELECT * FROM {view} u WHERE account_id IN ({big}))"


def end_user_features(
    store: EventStore, frame: pd.DataFrame, config: SubAccountConfig = SubAccountConfig(), *, until: float | None = None
) -> pd.DataFrame:
    """Feature rows (index = sub-account id) for the end users of shared accounts worth scoring.

    ``frame`` is the scan's account feature frame (index = account id); accounts in it with at
    least ``config.min_end_users`` distinct end users are the shared ones.  ``until`` restricts the
    events to ``ts < until``, as for the account frame (replays).  Returns an empty frame when
    there are none.
    """
    shared = shared_accounts(frame, config)
    if not shared:
        return pd.DataFrame(columns=list(FEATURE_NAMES))
    # their events copied once: the feature query reads its source in some twenty parts, and each read
    # of the view would select and relabel the shared accounts' events again (1M-event bench log: ~1 s)
    events = f"""WITH shared AS (SELECT unnest(?::VARCHAR[]) AS account_id)
                 SELECT * FROM {_end_user_view("shared", until, config.min_events)}"""
    with store.temp_table(END_USER_EVENTS_TABLE, events, [shared]) as source:  # type: ignore[attr-defined]
        sub = store.query(account_features_sql(source, population=_events_until(until))).to_pandas()
    sub = sub.set_index("account_id")
    for name in FEATURE_NAMES:
        sub[name] = sub[name].astype("float64").fillna(0.0)
    parents = [parent_of(s) for s in sub.index]
    for name in PARENT_FEATURES:
        sub[name] = frame.loc[parents, name].to_numpy()
    sub["parent_account"] = parents
    return sub


def shared_accounts(frame: pd.DataFrame, config: SubAccountConfig = SubAccountConfig()) -> list[str]:
    """Accounts of ``frame`` with at least ``config.min_end_users`` distinct end users."""
    if "distinct_end_users" not in frame or frame.empty:
        return []
    return frame.index[frame["distinct_end_users"] >= config.min_end_users].astype(str).tolist()


def sequential_evidence(
    store: EventStore, shared: list[str], test: SequentialTest, *, until: float | None = None
) -> pd.DataFrame:
    """The sequential test's evidence for every end user (and id-less group) of the ``shared`` accounts.

    Index: sub-account id; columns as :meth:`SequentialTest.units_sql`, plus ``llr`` (the mixture's
    evidence, nats), ``profile`` (the best-fitting profile's position), ``needed`` (the threshold
    one unit must reach alone in its account), ``pooled`` / ``pooled_needed`` (the account's
    pooled evidence over all its units and its threshold, :meth:`SequentialTest.pooled`),
    ``posterior`` (the unit's chance of harvesting given the pooled evidence), ``flagged_pooled``
    (flagged by the pooled test: it fired and the unit's posterior is at least the test's
    ``attribution``, and not by its own evidence), ``flagged_alone`` (by its own evidence) and
    ``flagged``.  The reference traffic of each unit is its account's requests up to ``until``.

    Example:
        >>> ev = sequential_evidence(store, ["reseller-1"], SequentialTest())   # doctest: +SKIP
        >>> ev.loc["reseller-1#eu:-2", ["n", "llr", "needed", "flagged"]]      # doctest: +SKIP
    """
    if not shared:
        return pd.DataFrame(columns=["account_id", "unit", "n", "llr", "profile", "needed", "pooled", "posterior",
                                     "pooled_needed", "flagged_alone", "flagged_pooled", "flagged"])  # fmt: skip
    events = f"(SELECT * FROM {_events_until(until)} w WHERE account_id IN (SELECT unnest(?::VARCHAR[])))"
    units = store.query(test.units_sql(events, _END_USER), [shared]).to_pandas()
    # tolist(): iterating pandas' Arrow-backed strings directly costs ~1.5 us a value
    ids = zip(units["account_id"].tolist(), units["unit"].tolist())
    units.index = pd.Index([f"{a}{SEPARATOR}{u}" for a, u in ids], name="sub_account")
    by_profile = units[[f"llr_{k}" for k in range(len(test.profiles))]].to_numpy(dtype="float64")
    llr = test.combine(by_profile)
    pooled, posterior = np.zeros(len(units)), np.zeros(len(units))
    for rows in units.groupby("account_id", sort=False).indices.values():
        pooled[rows], posterior[rows] = test.pooled(llr[rows])
    needed = np.array([test.threshold(k) for k in units["n_units"].tolist()])
    alone = llr >= needed
    by_pool = (pooled >= test.pooled_threshold()) & (posterior >= test.attribution) & ~alone
    return units.assign(
        llr=llr, profile=by_profile.argmax(axis=1) if len(units) else np.zeros(0, dtype=int), needed=needed,
        pooled=pooled, posterior=posterior, pooled_needed=test.pooled_threshold(),
        flagged_alone=alone, flagged_pooled=by_pool, flagged=alone | by_pool,
    )  # fmt: skip


def _ville_score(nats: float, needed: float, alpha: float) -> float:
    """1 - the (adjusted) Ville bound on a genuine account showing ``nats`` where ``needed`` is its
    threshold at false-alarm rate ``alpha``: ``alpha`` exactly at the threshold, 0 far below it."""
    margin = needed - nats + math.log(alpha)  # ln of the bound
    return 1.0 - math.exp(margin) if margin < 0 else 0.0


def _sequential_score(test: SequentialTest, row: pd.Series) -> float:
    """The test's confidence in a unit: its own evidence's, or the pooled evidence's weighted by
    the unit's posterior share of it, whichever is higher."""
    own = _ville_score(float(row["llr"]), float(row["needed"]), test.alpha)
    pooled = _ville_score(float(row["pooled"]), float(row["pooled_needed"]), test.alpha) * float(row["posterior"])
    return max(own, pooled)


def _sequential_evidence_item(test: SequentialTest, row: pd.Series, score: float) -> Evidence:
    counts = {name: int(row[f"n_{name}"]) for name in INDICATORS}
    n = int(row["n"])
    own = (
        f"{test.describe(counts, n, int(row['profile']))}: {row['llr']:.1f} nats of evidence against the "
        f"account's traffic, {row['needed']:.1f} needed alone among its {int(row['n_units']):,} end users"
    )
    if bool(row["flagged_pooled"]):
        return Evidence(
            "sequential",
            "Harvest-shaped requests from several end users at once",
            f"{own}; together with the account's other end users {row['pooled']:.1f} nats that some of them harvest, "
            f"{row['pooled_needed']:.1f} needed, and a {row['posterior']:.0%} chance that this one is among them "
            f"(false-alarm bound {test.alpha:g} per account)",
            round(score, 4),
        )
    return Evidence(
        "sequential", "Harvest-shaped requests, one after another", f"{own} (false-alarm bound {test.alpha:g} per account)",
        round(score, 4),
    )


def score_end_users(
    store: EventStore, frame: pd.DataFrame, model: Ensemble, threshold: float, config: SubAccountConfig = SubAccountConfig(),
    *, until: float | None = None,
) -> list[SubAccountFinding]:
    """Score the end users of shared accounts; flagged ones explain themselves.

    Returned: every end user with ``config.min_events`` requests (scored by the model) and every
    end user the sequential test flags, whatever its size.  An end user is flagged when the model
    path (score, rule corroboration) or the sequential test says so.  ``model`` must already be
    fitted on the account population (the scan does this first), so end users are judged against
    accounts, not against each other.

    Example:
        >>> found = score_end_users(store, frame, model, model.threshold)      # doctest: +SKIP
        >>> [(f.end_user, f.n_events, f.evidence_nats) for f in found if f.flagged][:1]   # doctest: +SKIP
        [('-2', 14, 17.3)]
    """
    test = config.sequential
    seq = sequential_evidence(store, shared_accounts(frame, config), test, until=until) if test is not None else None
    sub = end_user_features(store, frame, config, until=until)
    # column arrays and position maps, not a row Series per end user (there can be many thousands)
    at_model: dict[str, int] = {}
    if not sub.empty:
        per_detector = model.detector_scores(sub)
        scores, rules = model.combine(per_detector), per_detector["rules"]
        model_flags = (scores >= threshold) & (rules >= config.min_rule_score)
        at_model = {str(sid): i for i, sid in enumerate(sub.index.tolist())}
        sub_n, sub_success, sub_tokens = (sub[c].to_numpy() for c in ("n_events", "n_success", "output_tokens"))
    at_seq: dict[str, int] = {}
    if seq is not None and len(seq):
        at_seq = {str(sid): i for i, sid in enumerate(seq.index.tolist())}
        llr, needed, seq_flags, seq_alone, seq_pooled = (
            seq[c].to_numpy() for c in ("llr", "needed", "flagged", "flagged_alone", "flagged_pooled")
        )
        pooled, pooled_needed, posterior = (seq[c].to_numpy() for c in ("pooled", "pooled_needed", "posterior"))
        seq_n, seq_success, seq_tokens = (seq[c].to_numpy() for c in ("n", "n_success", "output_tokens"))
    chosen = list(at_model) + [sid for sid, j in at_seq.items() if seq_flags[j] and sid not in at_model]
    parent_events = frame["n_events"]
    units = []  # (sub-account id, row in sub, row in seq, flagged by the model, by its own evidence, by the pooled test)
    for sid in chosen:
        i, j = at_model.get(sid), at_seq.get(sid)
        by_model = bool(model_flags[i]) if i is not None else False
        by_unit = bool(seq_alone[j]) if j is not None else False
        by_pool = bool(seq_pooled[j]) if j is not None else False
        units.append((sid, i, j, by_model, by_unit, by_pool))
    # the model explains all flagged end users it scored in one pass per detector, not one pass per end
    # user (an isolation forest pass costs ~70 ms whatever its size)
    explained = [i for _, i, _, *flags in units if i is not None and any(flags)]
    model_evidence = dict(zip(explained, model.explain_rows(sub, explained), strict=True)) if explained else {}
    out = []
    for sid, i, j, by_model, by_unit, by_pool in units:
        parent, end_user = sid.rsplit(SEPARATOR, 1)
        model_score = float(scores[i]) if i is not None else None
        seq_row = seq.iloc[j] if j is not None else None
        seq_score = _sequential_score(test, seq_row) if seq_row is not None else 0.0
        n_events = int(sub_n[i]) if i is not None else int(seq_n[j])
        finding = SubAccountFinding(
            account_id=parent,
            end_user=end_user,
            score=max(model_score or 0.0, seq_score),
            flagged=by_model or by_unit or by_pool,
            n_events=n_events,
            share=n_events / max(float(parent_events.at[parent]), 1.0),
            model_score=model_score,
            evidence_nats=float(llr[j]) if j is not None else None,
            evidence_needed=float(needed[j]) if j is not None else None,
            pooled_nats=float(pooled[j]) if j is not None and test.shares else None,
            pooled_needed=float(pooled_needed[j]) if j is not None and test.shares else None,
            harvest_posterior=float(posterior[j]) if j is not None and test.shares else None,
            flagged_by="sequential test" if by_unit else "pooled test" if by_pool else "model" if by_model else None,
        )
        if finding.flagged:
            finding.est_exchanges = int(sub_success[i] if i is not None else seq_success[j])
            finding.est_output_tokens = int(sub_tokens[i] if i is not None else seq_tokens[j])
            if by_unit or by_pool:
                finding.evidence.append(_sequential_evidence_item(test, seq_row, seq_score))
            if i is not None:
                finding.evidence += model_evidence[i]
        out.append(finding)
    out.sort(key=lambda f: -f.score)
    return out


def end_user_evidence(flagged: list[SubAccountFinding]) -> Evidence:
    """One readable sentence on the parent account for its flagged end users."""
    top = flagged[0]
    more = f" and {len(flagged) - 1} more end user(s)" if len(flagged) > 1 else ""
    return Evidence("end_users", "harvesting end user inside a shared account", top.explain() + more, round(top.score, 3))
