"""The main job: logs → store → account features → scores → explained findings.

Example:
    >>> result = run_scan(["traffic.jsonl.gz"], "out/")      # doctest: +SKIP
    >>> [f.account_id for f in result.findings if f.flagged][:3]   # doctest: +SKIP
    ['acct-h-0003', 'acct-h-0017', 'acct-r-0001']
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import orjson

from distillguard.findings import FINDINGS_SCHEMA_VERSION, AccountFinding, Evidence, ScanSummary, Signal
from distillguard.ingest.pipeline import IngestReport, ingest_logs, stop_worker_server
from distillguard.privacy import Hasher
from distillguard.store.base import EventStore
from distillguard.store.duckdb import DuckDBStore

if TYPE_CHECKING:
    import pandas as pd

    from distillguard.detectors.ensemble import Ensemble
    from distillguard.linking import ClusterFinding, LinkResult
    from distillguard.subaccounts import SubAccountConfig, SubAccountFinding

ProgressCallback = Callable[[int], None]

#: What scoring needs and the ingest does not: ~3 s of imports (pandas, scikit-learn, igraph, matplotlib),
#: imported by a thread while the ingest runs (:func:`run_scan`) rather than before it.  Functions below
#: import what they use where they use it; the imports are instant once this thread has run.
SCORING_MODULES = (
    "pandas", "distillguard.features.account", "distillguard.detectors.ensemble", "distillguard.detectors.rules",
    "distillguard.subaccounts", "distillguard.linking",
)  # fmt: skip
#: Linking's compiled pair sums load numba (~0.5 s): imported with the rest when the scan links.
LINKING_MODULES = ("distillguard.linking.pairs",)


def import_in_background(names: Sequence[str] = SCORING_MODULES) -> threading.Thread:
    """Import ``names`` in a daemon thread (a failure is left for the code that imports them to raise)."""

    def run() -> None:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - see the docstring
                return

    thread = threading.Thread(target=run, name="distillguard-imports", daemon=True)
    thread.start()
    return thread


@dataclass
class ScanOptions:
    """Everything a scan can be told; defaults are the documented ones."""

    threshold: float | None = None  # None: the model's operating point
    model_path: str | None = None
    rules_dirs: Sequence[str] = ()
    fmt: str | None = None
    mapping: str | None = None
    accounts_path: str | None = None
    secret_file: str | None = None
    keep_text: bool = False
    store_path: str | None = None  # default: <out>/distillguard.duckdb
    batch_size: int = 20_000
    workers: int | None = None  # ingest processes; None: one per CPU for large inputs
    max_signals: int = 8
    link: bool = True  # link accounts into campaigns (clusters) and let bound clusters lift their members
    end_users: bool = True  # score end users inside shared accounts (resellers) as sub-accounts


@dataclass
class ScanResult:
    findings: list[AccountFinding]
    summary: ScanSummary
    features: pd.DataFrame  # one row per account, features + score
    ingest: IngestReport | None
    store: EventStore
    out_dir: Path
    links: LinkResult | None = None
    files: dict[str, Path] = field(default_factory=dict)


def run_scan(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    options: ScanOptions | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> ScanResult:
    """Ingest ``paths`` (if any) into the store under ``out_dir``, score every account, write JSON outputs."""
    options = options or ScanOptions()
    import_in_background(SCORING_MODULES + (LINKING_MODULES if options.link else ()))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stage = on_stage or (lambda _s: None)
    timings: dict[str, float] = {}
    hasher = Hasher.from_config(options.secret_file)
    store = DuckDBStore(options.store_path or out / "distillguard.duckdb")

    t = time.perf_counter()
    stage("ingest")
    report = ingest_logs(
        paths, store, hasher, accounts_path=options.accounts_path, quarantine_path=out / "quarantine.jsonl",
        fmt=options.fmt, mapping=options.mapping, keep_text=options.keep_text, batch_size=options.batch_size,
        workers=options.workers, on_progress=on_progress,
    )  # fmt: skip
    timings["ingest"] = time.perf_counter() - t
    timings.update({f"ingest.{k}": v for k, v in report.timings_s.items()})
    stop_worker_server()  # the scan ingests once: the workers' fork server would hold ~270 MB through scoring

    from distillguard.detectors.ensemble import Ensemble
    from distillguard.detectors.rules import RuleDetector, load_rules
    from distillguard.features.account import compute_account_features
    from distillguard.subaccounts import SubAccountConfig

    t = time.perf_counter()
    stage("features")
    frame = compute_account_features(store)
    timings["features"] = time.perf_counter() - t

    t = time.perf_counter()
    stage("scoring")
    rules = RuleDetector(load_rules(*options.rules_dirs))
    model = Ensemble.load(options.model_path, rules=rules)
    threshold = options.threshold if options.threshold is not None else model.threshold
    findings, links = score_accounts(
        frame, model, threshold, store, max_signals=options.max_signals, link=options.link,
        end_users=SubAccountConfig() if options.end_users else None, on_stage=stage,
    )  # fmt: skip
    timings["scoring"] = time.perf_counter() - t
    if links is not None:
        timings.update({f"scoring.link.{k}": v for k, v in links.timings_s.items()})

    n_clusters_flagged = sum(c.flagged for c in links.clusters) if links else 0
    n_end_users_flagged = sum(len(f.flagged_end_users) for f in findings)
    summary = ScanSummary(
        n_events=int(frame["n_events"].sum()) if len(frame) else 0,
        n_accounts=len(frame),
        n_flagged=sum(f.flagged for f in findings),
        threshold=threshold,
        inputs=[str(p) for p in paths],
        quarantined=report.quarantined,
        quarantine_file=str(out / "quarantine.jsonl") if report.quarantined else None,
        duplicates_skipped=report.events - report.inserted,
        period_start=float(frame["first_ts"].min()) if len(frame) else None,
        period_end=float(frame["last_ts"].max()) if len(frame) else None,
        timings_s={k: round(v, 3) for k, v in timings.items()},
        est_exchanges_harvested=sum(f.est_exchanges for f in findings),
        est_output_tokens_harvested=sum(f.est_output_tokens for f in findings),
        n_clusters=len(links.clusters) if links else 0,
        n_clusters_flagged=n_clusters_flagged,
        n_end_users_flagged=n_end_users_flagged,
        secret_fingerprint=hasher.fingerprint,
        model_version=_model_label(model, hasher),
        generated_at=time.time(),
    )
    result = ScanResult(findings, summary, frame, report, store, out, links)
    result.files = write_json_outputs(result)
    return result


def _model_label(model: Ensemble, hasher: Hasher) -> str:
    label = str(model.metadata.get("scenario") or model.metadata.get("model") or "trained model")
    return label + ("; identifiers hashed with the DEMO secret (set DISTILLGUARD_SECRET)" if hasher.is_demo else "")


def score_accounts(
    frame: pd.DataFrame,
    model: Ensemble,
    threshold: float,
    store: EventStore,
    *,
    max_signals: int = 8,
    link: bool = True,
    end_users: SubAccountConfig | Literal["default"] | None = "default",
    on_stage: Callable[[str], None] | None = None,
) -> tuple[list[AccountFinding], LinkResult | None]:
    """Score every account of ``frame``, link accounts into clusters, build findings.

    An account's final score is its own, its bound cluster's pooled score when that is higher
    (see :mod:`distillguard.linking`), or its harvesting end user's when it is a shared account
    with one (see :mod:`distillguard.subaccounts`; ``end_users=None`` skips that).  Evidence is
    built for flagged and near-threshold accounts.  ``end_users="default"`` is ``SubAccountConfig()``.
    """
    import pandas as pd

    from distillguard.features.account import FEATURE_NAMES, population_percentiles
    from distillguard.linking import link_accounts
    from distillguard.subaccounts import SubAccountConfig, end_user_evidence, score_end_users

    if isinstance(end_users, str):
        end_users = SubAccountConfig()
    if len(frame) == 0:
        return [], None
    model.fit_population(frame)
    per_detector = model.detector_scores(frame)
    own = model.combine(per_detector)
    frame["score"] = own
    links = None
    if link and len(frame) > 1:
        if on_stage:
            on_stage("linking")
        links = link_accounts(store, frame, model, threshold)
        final = links.account_scores.reindex(frame.index).fillna(pd.Series(own, index=frame.index)).to_numpy()
        per_detector["cluster"] = final
        frame["score"] = final
    # one level down: harvesting end users inside shared accounts (resellers, routers, app backends)
    by_parent: dict[str, list[SubAccountFinding]] = {}
    if end_users is not None:
        if on_stage:
            on_stage("end users")
        for sub in score_end_users(store, frame, model, threshold, end_users):
            if sub.flagged:
                by_parent.setdefault(sub.account_id, []).append(sub)
    own_or_cluster_flagged = frame["score"].to_numpy() >= threshold
    if by_parent:
        lifted = frame.index.isin(list(by_parent))
        top = pd.Series({a: subs[0].score for a, subs in by_parent.items()}).reindex(frame.index).fillna(0.0).to_numpy()
        per_detector["end_users"] = top
        frame["score"] = np.where(lifted, np.maximum(frame["score"].to_numpy(), top), frame["score"].to_numpy())
    scores = frame["score"].to_numpy()
    clusters = {c.cluster_id: c for c in links.clusters} if links else {}
    cluster_of = links.cluster_of if links else {}
    flagged = scores >= threshold
    # evidence for flagged and near-threshold accounts only, every detector run once over all of them
    explained = np.flatnonzero(flagged | (scores >= threshold * 0.5))
    evidence_of = dict(zip(explained.tolist(), model.explain_rows(frame, explained), strict=True))
    pct = population_percentiles(frame).to_numpy(dtype="float64") if len(explained) else None
    values = frame[list(FEATURE_NAMES)].to_numpy(dtype="float64")  # in population_percentiles' column order
    samples = _samples_by_account(store)
    n_events = frame["n_events"].to_numpy()
    n_success = frame["n_success"].to_numpy()
    output_tokens = frame["output_tokens"].to_numpy()
    first_ts = frame["first_ts"].to_numpy()
    last_ts = frame["last_ts"].to_numpy()
    detector_columns = {k: [round(x, 4) for x in np.asarray(v, dtype="float64").tolist()] for k, v in per_detector.items()}
    findings = []
    for i, account_id in enumerate(frame.index.tolist()):
        is_flagged = bool(flagged[i])
        finding = AccountFinding(
            account_id=str(account_id),
            score=float(scores[i]),
            flagged=is_flagged,
            cluster_id=cluster_of.get(str(account_id)),
            n_events=int(n_events[i]),
            est_exchanges=int(n_success[i]) if own_or_cluster_flagged[i] else 0,
            est_output_tokens=int(output_tokens[i]) if own_or_cluster_flagged[i] else 0,
            first_seen=float(first_ts[i]),
            last_seen=float(last_ts[i]),
            detector_scores={k: v[i] for k, v in detector_columns.items()},
        )
        evidence = evidence_of.get(i)
        if evidence is not None:
            finding.evidence = evidence
            cluster = clusters.get(finding.cluster_id or "")
            if cluster is not None and scores[i] > own[i] + 1e-9:
                finding.evidence.insert(0, _cluster_evidence(cluster, float(own[i])))
            subs = by_parent.get(finding.account_id)
            if subs:
                finding.evidence.insert(0, end_user_evidence(subs))
                finding.flagged_end_users = [sub.to_dict() for sub in subs]
                if not own_or_cluster_flagged[i]:  # only the end users' harvest, not the whole reseller's traffic
                    finding.est_exchanges = sum(sub.est_exchanges for sub in subs)
                    finding.est_output_tokens = sum(sub.est_output_tokens for sub in subs)
            finding.signals = _signals(values[i], pct[i], finding, max_signals)
            finding.sample_prompts = samples.get(str(account_id), [])[:3]
        findings.append(finding)
    findings.sort(key=lambda f: (-f.score, f.account_id))  # ties by id: the same file from the same store
    return findings, links


def _cluster_evidence(cluster: ClusterFinding, own: float) -> Evidence:
    binding = "; ".join(e.detail for e in cluster.evidence[:2])
    return Evidence(
        "linking",
        "Member of a harvesting campaign",
        f"Alone this account scores {own:.2f}; it is linked to {cluster.n_accounts - 1} other accounts "
        f"(cluster {cluster.cluster_id}) whose pooled behaviour scores {cluster.score:.2f}. {binding}",
        float(cluster.score),
    )


def _signals(values: np.ndarray, pct: np.ndarray, finding: AccountFinding, limit: int) -> list[Signal]:
    """The account's most telling features: those named by its evidence first, then its most extreme.

    ``values`` and ``pct`` are the account's feature values and its row of :func:`population_percentiles`
    (both in FEATURE_NAMES order).
    """
    from distillguard.features.account import FEATURE_BY_NAME, FEATURE_NAMES

    named = [n for n in FEATURE_NAMES if any(n in e.detail for e in finding.evidence)]
    extreme = [FEATURE_NAMES[j] for j in _descending(pct) if FEATURE_NAMES[j] not in named and pct[j] >= 90]
    chosen = (named + extreme)[:limit]
    return [
        Signal(n, round(float(values[j]), 4), round(float(pct[j]), 1), FEATURE_BY_NAME[n].description)
        for n, j in ((n, FEATURE_NAMES.index(n)) for n in chosen)
    ]


def _descending(values: np.ndarray) -> list[int]:
    """Positions of ``values`` from largest to smallest, NaNs last: the order (ties included) of
    ``pd.Series(values).sort_values(ascending=False)``, without building a Series per account."""
    missing = np.isnan(values)
    idx = np.flatnonzero(~missing)[::-1]
    order = idx[values[idx].argsort(kind="quicksort")][::-1]
    return order.tolist() + np.flatnonzero(missing).tolist()


def _samples_by_account(store: EventStore) -> dict[str, list[str]]:
    table = store.query("SELECT account_id, prompt_excerpt FROM samples ORDER BY account_id, ts")
    samples: dict[str, list[str]] = {}
    for account, excerpt in zip(table.column("account_id").to_pylist(), table.column("prompt_excerpt").to_pylist()):
        samples.setdefault(account, []).append(excerpt)
    return samples


def hourly_activity(store: EventStore, account_ids: Sequence[str]) -> pd.DataFrame:
    """Requests per hour for the given accounts: columns account_id, hour (epoch s), n_events."""
    import pandas as pd

    if not account_ids:
        return pd.DataFrame(columns=["account_id", "hour", "n_events"])
    placeholders = ",".join("?" for _ in account_ids)
    return store.query(
        f"SELECT account_id, floor(ts / 3600) * 3600 AS hour, count(*) AS n_events FROM events "
        f"WHERE account_id IN ({placeholders}) GROUP BY 1, 2 ORDER BY 1, 2",
        list(account_ids),
    ).to_pandas()


def write_json_outputs(result: ScanResult) -> dict[str, Path]:
    """``accounts.jsonl`` (every account, highest score first), ``summary.json``; with linking also
    ``clusters.jsonl`` (every cluster of 2+ accounts, flagged first) and ``graph.json``."""
    out = result.out_dir
    accounts_path, summary_path = out / "accounts.jsonl", out / "summary.json"
    with accounts_path.open("wb") as fh:
        for finding in result.findings:
            fh.write(finding.to_json() + b"\n")
    summary_path.write_bytes(orjson.dumps(result.summary.to_dict(), option=orjson.OPT_INDENT_2))
    files = {"accounts": accounts_path, "summary": summary_path}
    if result.links is not None:
        clusters_path = out / "clusters.jsonl"
        with clusters_path.open("wb") as fh:
            for cluster in result.links.clusters:
                row = {**cluster.to_dict(), "schema_version": FINDINGS_SCHEMA_VERSION}
                fh.write(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY, default=str) + b"\n")
        files["clusters"] = clusters_path
        files["graph"] = result.links.write_graph(out / "graph.json")
    return files
