"""Batch scan results as enforcement input: ``accounts.jsonl`` and ``clusters.jsonl`` → risk records.

An analyst runs ``distillguard scan logs/ --out scan/``, then points the gateway at ``scan/``
(``decisions_from``) or calls :func:`load_scan_decisions`: every account becomes a ``scan`` risk
record (score, flag, cluster, fired rule ids, evidence titles), every flagged end user of a shared
account one keyed by its sub-account id (``<account>#eu:<end-user hash>``), and every cluster a
``cluster`` record, which the policy matches like online risk.  Records expire after ``ttl_s`` (a scan is a
snapshot; load a newer one to refresh) and a later load replaces earlier records of the same ids.

Example:
    >>> from distillguard.gateway.state.memory import MemoryState
    >>> loaded = load_scan_decisions("scan-out/", MemoryState().risk)    # doctest: +SKIP
    >>> loaded.n_flagged_accounts, loaded.n_flagged_clusters              # doctest: +SKIP
    (131, 2)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from distillguard.errors import InputError
from distillguard.findings import FINDINGS_SCHEMA_VERSION
from distillguard.gateway.risk import RiskRecord
from distillguard.gateway.state.base import CLUSTER, SCAN, RiskTable
from distillguard.privacy import Hasher
from distillguard.subaccount_ids import sub_account_id
from distillguard.types import PathArg

#: Scan records live a week unless told otherwise: long enough for a weekly scan cadence.
DEFAULT_SCAN_TTL_S = 7 * 86400.0
#: Evidence titles and cluster members kept per record (records are read on the request path).
MAX_EVIDENCE, MAX_MEMBERS = 5, 200


@dataclass(frozen=True)
class LoadedScan:
    """What :func:`load_scan_decisions` wrote."""

    scan_dir: str
    n_accounts: int
    n_flagged_accounts: int
    n_clusters: int
    n_flagged_clusters: int
    threshold: float | None
    n_end_users: int = 0  # end users inside shared accounts, keyed by sub-account id
    n_flagged_end_users: int = 0


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open("rb") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputError(str(path), f"not valid JSON: {exc}", line=line_no) from exc
            version = row.get("schema_version")
            if version != FINDINGS_SCHEMA_VERSION:
                raise InputError(str(path), f"findings schema v{version}, this gateway reads v{FINDINGS_SCHEMA_VERSION}", line=line_no, field="schema_version")
            rows.append(row)
    return rows


def account_record(row: dict[str, Any], *, threshold: float | None, now: float) -> RiskRecord:
    """One ``accounts.jsonl`` row as a scan risk record.

    A shared account's scan score is lifted to its top harvesting end user's; each of those end
    users gets a record of its own (:func:`end_user_records`), so the account's record carries the
    score it has without them (``detector_scores["cluster"]``: its own, or its bound cluster's),
    and the gateway's policy does not fall on the reseller's other end users.  The lifted score is
    kept in ``extra["end_user_score"]``.
    """
    evidence = row.get("evidence") or []
    score, flagged, extra = float(row["score"]), bool(row["flagged"]), {}
    flagged_end_users = [s for s in row.get("flagged_end_users") or () if str(s.get("end_user")) != "none"]
    if flagged_end_users:  # the enforcer looks end users up only in accounts that say so
        extra["flagged_end_users"] = len(flagged_end_users)
    unlifted = (row.get("detector_scores") or {}).get("cluster")
    # without the scan's threshold the flag cannot be re-decided: keep the scan's score and flag as they are
    if row.get("flagged_end_users") and unlifted is not None and threshold is not None:
        extra["end_user_score"] = score
        score = min(score, float(unlifted))
        flagged = score >= threshold
    return RiskRecord(
        subject=str(row["account_id"]), score=score, flagged=flagged, source="scan",
        threshold=threshold, cluster_id=row.get("cluster_id"),
        rule_ids=tuple(dict.fromkeys(e["rule_id"] for e in evidence if e.get("rule_id"))),
        evidence=tuple(_title(e) for e in evidence[:MAX_EVIDENCE]), n_events=int(row.get("n_events") or 0), updated_at=now,
        extra=extra,
    )  # fmt: skip


def end_user_records(row: dict[str, Any], *, threshold: float | None, now: float) -> list[RiskRecord]:
    """The ``flagged_end_users`` of one ``accounts.jsonl`` row as scan risk records keyed by sub-account id.

    The id-less group (``end_user`` ``none``) is left out: a request without an end-user id is
    judged on its account's record.
    """
    records = []
    for sub in row.get("flagged_end_users") or ():
        if str(sub.get("end_user")) == "none":
            continue
        evidence = sub.get("evidence") or []
        records.append(RiskRecord(
            subject=sub_account_id(str(row["account_id"]), str(sub["end_user"])), score=float(sub["score"]),
            flagged=bool(sub["flagged"]), source="scan", threshold=threshold, cluster_id=row.get("cluster_id"),
            rule_ids=tuple(dict.fromkeys(e["rule_id"] for e in evidence if e.get("rule_id"))),
            evidence=tuple(_title(e) for e in evidence[:MAX_EVIDENCE]), n_events=int(sub.get("n_events") or 0),
            updated_at=now, extra={"account_id": str(row["account_id"]), "flagged_by": sub.get("flagged_by")},
        ))  # fmt: skip
    return records


def _title(evidence: Any) -> str:
    return str(evidence.get("title") or evidence.get("detail")) if isinstance(evidence, dict) else str(evidence)


def cluster_record(row: dict[str, Any], *, threshold: float | None, now: float) -> RiskRecord:
    """One ``clusters.jsonl`` row as a cluster risk record."""
    members = [str(m) for m in row.get("account_ids") or []]
    return RiskRecord(
        subject=str(row["cluster_id"]), score=float(row["score"]), flagged=bool(row["flagged"]), source="scan",
        threshold=threshold, evidence=tuple(_title(e) for e in (row.get("evidence") or [])[:MAX_EVIDENCE]),
        n_events=int(row.get("n_events") or 0), updated_at=now, members=tuple(members[:MAX_MEMBERS]),
        n_members=int(row.get("n_accounts") or len(members)), extra={"bound": bool(row.get("bound"))},
    )  # fmt: skip


def load_scan_decisions(scan_dir: PathArg, risk: RiskTable, *, ttl_s: float | None = DEFAULT_SCAN_TTL_S, min_score: float = 0.0,
                        hasher: Hasher | None = None) -> LoadedScan:  # fmt: skip
    """Write a scan's accounts (score >= ``min_score``) and clusters as risk records into ``risk``.

    ``hasher``: the gateway's.  A scan that names the secret it hashed with (``summary.json``'s
    ``secret_fingerprint``) and used another one is refused: its end users (and accounts known only by
    a key hash) would never match the gateway's, so its decisions would silently not apply.
    """
    out = Path(scan_dir)
    accounts_path = out / "accounts.jsonl"
    if not accounts_path.is_file():
        raise InputError(str(accounts_path), "no accounts.jsonl here: is this a `distillguard scan --out` directory?")
    threshold = None
    summary_path = out / "summary.json"
    if summary_path.is_file():
        summary = orjson.loads(summary_path.read_bytes())
        threshold = summary.get("threshold")
        scanned_with = summary.get("secret_fingerprint")
        if hasher is not None and scanned_with is not None and scanned_with != hasher.fingerprint:
            raise InputError(str(summary_path), f"the scan hashed identifiers with another secret (fingerprint {scanned_with}, "
                             f"this gateway's is {hasher.fingerprint}): give both the same DISTILLGUARD_SECRET or --secret-file",
                             field="secret_fingerprint")  # fmt: skip
    now = time.time()
    rows = _read_jsonl(accounts_path)
    accounts = [account_record(r, threshold=threshold, now=now) for r in rows if float(r["score"]) >= min_score]
    end_users = [s for r in rows for s in end_user_records(r, threshold=threshold, now=now) if s.score >= min_score]
    clusters_path = out / "clusters.jsonl"
    clusters = [cluster_record(r, threshold=threshold, now=now) for r in _read_jsonl(clusters_path)] if clusters_path.is_file() else []
    # clusters first: an account record naming a cluster should find it there
    risk.put_many(CLUSTER, {c.subject: c.to_dict() for c in clusters}, ttl_s)
    risk.put_many(SCAN, {a.subject: a.to_dict() for a in accounts + end_users}, ttl_s)
    return LoadedScan(
        str(out), len(accounts), sum(a.flagged for a in accounts), len(clusters), sum(c.flagged for c in clusters), threshold,
        len(end_users), sum(e.flagged for e in end_users),
    )
