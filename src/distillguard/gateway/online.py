"""Online scoring: the batch scan's feature SQL and detectors, re-run over a window of recent traffic.

The recorder hands normalized ``EVENT_SCHEMA`` rows to :meth:`OnlineScorer.observe`, which only
queues them (it runs on the recorder's flush thread and must not wait).  A background thread
(:meth:`OnlineScorer.start`) owns an in-memory DuckDB store holding the window and, in a loop:

1. appends all queued rows with one ``INSERT`` (``event_id`` is the key, so a replayed batch is
   not counted twice) and evicts events older than ``window_s`` before the newest event seen, then
   the oldest beyond ``max_events`` (event time, not wall time, so a replay behaves like live
   traffic); the window's size is tracked from the statements' row counts, not ``count(*)``;
2. every ``rescore_interval_s``, or sooner once an account has ``rescore_after_events`` new
   events, recomputes the features of the accounts that changed with
   :func:`distillguard.features.account.compute_account_features` (the batch scan's SQL) and
   scores them with the batch scan's :class:`~distillguard.detectors.ensemble.Ensemble`;
   every ``refit_interval_s`` the population-relative part (isolation) is refitted on all
   accounts in the window first.  An account is rescored at most once every
   ``min_rescore_interval_s`` (capped at ``rescore_interval_s``) whatever its event count: a busy
   account waits, its new events still counted, until its interval has passed;
3. judges the end users of the rescored accounts that are shared (resellers, routers, app
   backends: ``end_users.min_end_users`` distinct end-user ids in the window) with the batch
   scan's :func:`distillguard.subaccounts.score_end_users` (the sequential test and the model
   path), so a harvesting end user inside a reseller is caught between scans;
4. every ``link_interval_s`` (when set) links the window's accounts into clusters with
   :func:`distillguard.linking.link_accounts` and writes cluster records (ids ``online-<id>``);
5. writes one :class:`~distillguard.gateway.risk.RiskRecord` per scored account (table ``online``),
   and one per flagged end user keyed by its sub-account id (``<account>#eu:<end-user hash>``,
   cleared when it is no longer flagged, also after a restart); the account's record then says how
   many and which (``extra.flagged_end_users``, ``extra.flagged_end_user_ids``), which is what makes
   the enforcer look its end users up.

Accounts with fewer than ``min_events`` events in the window are not scored: a handful of
requests says too little, and the rules themselves ask for more before they fire.

Example:
    >>> from distillguard.gateway.state.memory import MemoryState
    >>> scorer = OnlineScorer(MemoryState().risk, rescore_interval_s=5)   # doctest: +SKIP
    >>> scorer.start(); scorer.observe(events_table)                       # doctest: +SKIP
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.detectors.ensemble import Ensemble
from distillguard.features.account import FEATURE_NAMES, compute_account_features
from distillguard.gateway.risk import RiskRecord
from distillguard.gateway.state.base import CLUSTER, ONLINE, RiskTable
from distillguard.store.duckdb import TABLES, DuckDBStore, insert_new
from distillguard.subaccount_ids import sub_account_id
from distillguard.subaccounts import SubAccountConfig, score_end_users, shared_accounts

log = logging.getLogger(__name__)

#: Prefix of cluster ids found online, so they never collide with a loaded scan's ids.
ONLINE_CLUSTER_PREFIX = "online-"


@dataclass
class OnlineStats:
    """Counters for metrics and the admin API."""

    events_seen: int = 0
    events_in_window: int = 0
    batches_dropped: int = 0  # the queue was full (scoring could not keep up); rows are still recorded
    rescores: int = 0
    accounts_scored: int = 0
    end_users_flagged: int = 0  # end users flagged now, over all shared accounts
    last_rescore_s: float = 0.0  # seconds the last rescore took
    refits: int = 0
    links: int = 0
    errors: int = 0


class OnlineScorer:
    """Keeps account risk current from recorded traffic (see the module docstring).

    ``model``: an :class:`Ensemble` (default: ``Ensemble.load(model_path)``, the shipped model).
    ``threshold``: the flag point (default: the model's operating point).
    ``end_users``: when an account counts as shared and its end users are judged (None: accounts only).
    """

    def __init__(
        self,
        risk: RiskTable,
        model: Ensemble | None = None,
        *,
        model_path: str | None = None,
        threshold: float | None = None,
        window_s: float = 86400.0,
        max_events: int = 200_000,
        rescore_interval_s: float = 10.0,
        rescore_after_events: int = 100,
        min_rescore_interval_s: float = 5.0,
        refit_interval_s: float = 300.0,
        min_events: int = 5,
        link_interval_s: float | None = None,
        record_ttl_s: float | None = 2 * 86400.0,
        max_pending_batches: int = 10_000,
        end_users: SubAccountConfig | None = SubAccountConfig(),
    ):
        self.risk = risk
        self.model = model or Ensemble.load(model_path)
        self.threshold = float(threshold if threshold is not None else self.model.threshold)
        self.window_s, self.max_events = window_s, max_events
        self.rescore_interval_s, self.rescore_after_events = rescore_interval_s, rescore_after_events
        # per-account floor between two rescores; never longer than the periodic interval itself
        self.min_rescore_interval_s = min(float(min_rescore_interval_s), float(rescore_interval_s))
        self.refit_interval_s, self.min_events = refit_interval_s, min_events
        self.link_interval_s, self.record_ttl_s = link_interval_s, record_ttl_s
        self.end_users = end_users
        self._flagged_end_users: dict[str, set[str]] = {}  # account -> sub-account ids flagged at its last rescore
        # accounts whose stored online record was read for end users flagged before this scorer started
        self._recovered: set[str] = set()
        # one thread, one connection: the scorer must not take the proxy's second core
        self.store = DuckDBStore(":memory:", threads=1, memory_limit="512MB")
        self.stats = OnlineStats()
        self._pending: queue.Queue[pa.Table] = queue.Queue(maxsize=max_pending_batches)
        self._new_events: Counter[str] = Counter()  # account -> events since it was last scored
        self._scored_at: dict[str, float] = {}  # account -> monotonic time of its last rescore
        self._max_ts = float("-inf")
        self._oldest_ts = float("inf")  # lower bound of the window's oldest ts (exact after an eviction)
        self._n_window = 0  # rows in the window, kept from INSERT/DELETE row counts
        self._ingested_since_link = False
        self._last_rescore = self._last_refit = self._last_link = float("-inf")
        self._cluster_of: dict[str, str] = {}  # from the last online linking
        self._lifted: dict[str, float] = {}  # account -> cluster-adjusted score from the last linking
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- feeding -------------------------------------------------------------------------------
    def observe(self, events: pa.Table) -> None:
        """Queue normalized rows for scoring; never blocks (a full queue drops the batch and counts it)."""
        if events.num_rows == 0:
            return
        try:
            self._pending.put_nowait(events)
        except queue.Full:
            self.stats.batches_dropped += 1

    def ingest_pending(self) -> int:
        """Move queued rows into the window with one INSERT; returns rows added."""
        batches: list[pa.Table] = []
        while True:
            try:
                batches.append(self._pending.get_nowait())
            except queue.Empty:
                break
        if not batches:
            return 0
        schema, _ = TABLES["events"]
        batch = pa.concat_tables([b.select(schema.names).cast(schema) for b in batches])
        added = insert_new(self.store.con, "events", batch, "event_id")
        self._new_events.update(batch.column("account_id").to_pylist())
        ts_min, ts_max = pc.min_max(batch.column("ts")).values()
        if ts_max.is_valid:
            self._max_ts = max(self._max_ts, float(ts_max.as_py()))
            self._oldest_ts = min(self._oldest_ts, float(ts_min.as_py()))
        if added:
            self.stats.events_seen += added
            self._n_window += added
            self._ingested_since_link = True
            self._evict()
        return added

    def _evict(self) -> None:
        con = self.store.con
        cutoff = self._max_ts - self.window_s
        if self._oldest_ts < cutoff:  # skipped (no statement) while the window holds nothing too old
            self._n_window -= int(con.execute("DELETE FROM events WHERE ts < ?", [cutoff]).fetchall()[0][0])
            self._oldest_ts = cutoff
        if self._n_window > self.max_events:
            cut = con.execute("SELECT ts FROM events ORDER BY ts DESC LIMIT 1 OFFSET ?", [self.max_events]).fetchall()[0][0]
            self._n_window -= int(con.execute("DELETE FROM events WHERE ts <= ?", [cut]).fetchall()[0][0])
            self._oldest_ts = max(self._oldest_ts, float(cut))
        self.stats.events_in_window = self._n_window

    # -- scoring -------------------------------------------------------------------------------
    def _eligible(self, now: float) -> list[str]:
        """Accounts with new events whose last rescore is at least ``min_rescore_interval_s`` old."""
        floor, scored_at, never = self.min_rescore_interval_s, self._scored_at, float("-inf")
        return sorted(a for a in self._new_events if now - scored_at.get(a, never) >= floor)

    def due(self, now: float | None = None) -> bool:
        """A rescore is due: the interval passed with new events, or an account piled up new events.

        Either way only accounts past their ``min_rescore_interval_s`` count; O(1) with nothing new.
        """
        if not self._new_events:
            return False
        now = time.monotonic() if now is None else now
        floor, scored_at, never = self.min_rescore_interval_s, self._scored_at, float("-inf")
        if now - self._last_rescore >= self.rescore_interval_s:
            return any(now - scored_at.get(a, never) >= floor for a in self._new_events)
        if now - self._last_rescore < 1.0:
            return False
        after = self.rescore_after_events
        return any(n >= after and now - scored_at.get(a, never) >= floor for a, n in self._new_events.items())

    def step(self, now: float | None = None) -> list[RiskRecord]:
        """One loop iteration: take queued rows in, rescore if due, link if due."""
        self.ingest_pending()
        now = time.monotonic() if now is None else now
        records = self.rescore(now=now) if self.due(now) else []
        if (self.link_interval_s is not None and now - self._last_link >= self.link_interval_s and self.stats.events_in_window
                and self._ingested_since_link):  # fmt: skip
            records += self.link(now=now)
        return records

    def rescore(self, accounts: list[str] | None = None, *, now: float | None = None, refit: bool = False) -> list[RiskRecord]:
        """Recompute and store the risk of ``accounts`` (default: those with new events whose
        ``min_rescore_interval_s`` has passed; the others keep their new-event counts for later).

        ``refit``: refit the population part on the whole window first, whatever the interval says.
        """
        t0 = time.perf_counter()
        now = time.monotonic() if now is None else now
        if accounts is None:
            changed = self._eligible(now)
            if len(changed) == len(self._new_events):
                self._new_events.clear()
            else:
                for a in changed:
                    del self._new_events[a]
        else:
            changed = list(accounts)
            for a in changed:
                self._new_events.pop(a, None)
        self._last_rescore = now
        if not changed:
            return []
        if len(self._scored_at) > 100_000:  # forget times that no longer hold anyone back
            self._scored_at = {a: t for a, t in self._scored_at.items() if now - t < self.min_rescore_interval_s}
        for a in changed:
            self._scored_at[a] = now
        if refit or not self.model.population_fitted or now - self._last_refit >= self.refit_interval_s:
            population = compute_account_features(self.store)
            if len(population) == 0:
                return []
            self.model.fit_population(population[list(FEATURE_NAMES)])
            self._last_refit = now
            self.stats.refits += 1
            frame = population.loc[population.index.intersection(changed)]
        else:
            frame = compute_account_features(self.store, accounts=changed)
        frame = frame[frame["n_events"] >= self.min_events]
        self._score_end_users(frame)
        records = self._score(frame)
        self.stats.rescores += 1
        self.stats.accounts_scored += len(records)
        self.stats.last_rescore_s = time.perf_counter() - t0
        return records

    def _score(self, frame: pd.DataFrame) -> list[RiskRecord]:
        if len(frame) == 0:
            return []
        own = self.model.score(frame)
        # evidence for enforcement is the fired rules, read off one boolean matrix; the full
        # per-detector explanation (Ensemble.explain, ~50 ms an account) is the batch scan's job
        rules = self.model.rules.rules
        fired = self.model.rules.fired(frame)
        by_severity = sorted(range(len(rules)), key=lambda j: -rules[j].severity)
        n_events = frame["n_events"].to_numpy()
        wall = time.time()
        records = []
        for i, account_id in enumerate(frame.index.astype(str)):
            score = max(float(own[i]), self._lifted.get(account_id, 0.0))
            hit = [rules[j] for j in by_severity if fired[i, j]]
            titles = [r.title for r in hit]
            cluster_id = self._cluster_of.get(account_id)
            if score > own[i] + 1e-9 and cluster_id:
                titles.insert(0, f"Member of a harvesting campaign (cluster {cluster_id})")
            if not titles and score >= 0.5 * self.threshold:
                titles.append(f"Learned model and population outlier score {own[i]:.2f} (no rule fired)")
            extra: dict[str, Any] = {"own_score": round(float(own[i]), 6)}
            if self._flagged_end_users.get(account_id):  # the enforcer looks end users up only where this says so
                extra["flagged_end_users"] = len(self._flagged_end_users[account_id])
                extra["flagged_end_user_ids"] = sorted(self._flagged_end_users[account_id])
            records.append(RiskRecord(
                subject=account_id, score=round(score, 6), flagged=score >= self.threshold, source="online",
                threshold=self.threshold, cluster_id=cluster_id, rule_ids=tuple(r.id for r in hit), evidence=tuple(titles[:5]),
                n_events=int(n_events[i]), updated_at=wall, extra=extra,
            ))  # fmt: skip
        self.risk.put_many(ONLINE, {r.subject: r.to_dict() for r in records}, self.record_ttl_s)
        return records

    def _score_end_users(self, frame: pd.DataFrame) -> list[RiskRecord]:
        """Judge the end users of the shared accounts in ``frame`` on the window's events; write a record
        for each flagged one, and a cleared record for each that was flagged and no longer is.

        Like the batch scan: an account's own score is not lifted by its end users (the policy must
        not fall on a reseller's honest customers); the flagged ones are judged on their own records.
        Requests without an end-user id (``none``) are judged on the account's record.
        """
        if self.end_users is None or len(frame) == 0:
            return []
        shared = set(shared_accounts(frame, self.end_users))
        accounts = frame.index.astype(str).tolist()
        for account in accounts:
            self._recover(account)
        judged = [a for a in accounts if a in shared or a in self._flagged_end_users]
        if not judged:
            return []
        found = score_end_users(self.store, frame.loc[[a for a in judged if a in shared]], self.model, self.threshold,
                                self.end_users) if shared else []  # fmt: skip
        before = {a: self._flagged_end_users.pop(a, set()) for a in judged}
        wall = time.time()
        records: dict[str, RiskRecord] = {}
        for f in found:
            subject = sub_account_id(f.account_id, f.end_user)
            if f.end_user == "none" or not (f.flagged or subject in before[f.account_id]):
                continue
            records[subject] = RiskRecord(
                subject=subject, score=round(float(f.score), 6), flagged=bool(f.flagged), source="online", threshold=self.threshold,
                cluster_id=self._cluster_of.get(f.account_id), rule_ids=tuple(dict.fromkeys(e.rule_id for e in f.evidence if e.rule_id)),
                evidence=tuple(e.title for e in f.evidence[:5]), n_events=int(f.n_events), updated_at=wall,
                extra={"account_id": f.account_id, "flagged_by": f.flagged_by},
            )  # fmt: skip
            if f.flagged:
                self._flagged_end_users.setdefault(f.account_id, set()).add(subject)
        for account, subjects in before.items():  # flagged before, not even scored now: cleared
            for subject in subjects - records.keys():
                records[subject] = RiskRecord(subject=subject, score=0.0, flagged=False, source="online", threshold=self.threshold,
                                              updated_at=wall, extra={"account_id": account})  # fmt: skip
        self.stats.end_users_flagged = sum(len(v) for v in self._flagged_end_users.values())
        if records:
            self.risk.put_many(ONLINE, {subject: r.to_dict() for subject, r in records.items()}, self.record_ttl_s)
        return list(records.values())

    def _recover(self, account: str) -> None:
        """Once per account and scorer: take the end users its stored online record names as flagged
        (written before a restart; with shared state, records outlive the process), so that those no
        longer flagged are cleared rather than left to their TTL."""
        if account in self._recovered or account in self._flagged_end_users:
            return
        if len(self._recovered) > 1_000_000:  # bounded like _scored_at; an account read twice costs one lookup
            self._recovered.clear()
        self._recovered.add(account)
        record = self.risk.get(ONLINE, account) or {}
        ids = (record.get("extra") or {}).get("flagged_end_user_ids") or ()
        if ids:
            self._flagged_end_users[account] = {str(i) for i in ids}

    def link(self, *, now: float | None = None) -> list[RiskRecord]:
        """Link the window's accounts into clusters; write cluster records and re-score the members."""
        from distillguard.linking import link_accounts  # igraph/leiden load only when linking is on

        self._last_link = time.monotonic() if now is None else now
        self._ingested_since_link = False
        frame = compute_account_features(self.store)
        frame = frame[frame["n_events"] >= self.min_events]
        if len(frame) < 2:
            return []
        if not self.model.population_fitted:
            self.model.fit_population(frame[list(FEATURE_NAMES)])
        frame["score"] = self.model.score(frame)
        links = link_accounts(self.store, frame, self.model, self.threshold)
        self.stats.links += 1
        self._cluster_of = {a: ONLINE_CLUSTER_PREFIX + c for a, c in links.cluster_of.items()}
        lifted = links.account_scores.reindex(frame.index).to_numpy(dtype="float64")
        self._lifted = {a: float(s) for a, s, o in zip(frame.index, lifted, frame["score"], strict=True) if np.isfinite(s) and s > o + 1e-9}
        wall = time.time()
        clusters = {
            ONLINE_CLUSTER_PREFIX + c.cluster_id: RiskRecord(
                subject=ONLINE_CLUSTER_PREFIX + c.cluster_id, score=round(float(c.score), 6), flagged=bool(c.flagged), source="online",
                threshold=self.threshold, evidence=tuple(str(e) for e in c.evidence[:5]), n_events=int(c.n_events), updated_at=wall,
                members=tuple(c.account_ids[:200]), n_members=int(c.n_accounts), extra={"bound": bool(c.bound)},
            ).to_dict()
            for c in links.clusters
        }  # fmt: skip
        self.risk.put_many(CLUSTER, clusters, self.record_ttl_s)
        return self._score(frame.loc[[a for a in frame.index if a in self._cluster_of]])

    # -- thread --------------------------------------------------------------------------------
    def start(self) -> OnlineScorer:
        """Run :meth:`step` in a daemon thread until :meth:`close`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="distillguard-online-scorer", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        tick = min(1.0, self.rescore_interval_s)
        while not self._stop.wait(tick):
            try:
                self.step()
            except Exception:  # a scoring failure must not stop enforcement; it is logged and counted
                self.stats.errors += 1
                log.exception("online scoring step failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.store.close()
