"""The self-contained HTML report: one file, no network, no JavaScript.

Everything the page needs is inline: CSS in a ``<style>`` block, plots as
base64 PNG data URIs.  A Content-Security-Policy forbids scripts and any
fetch, as a second line of defence behind Jinja's autoescaping, because
sample prompts, account ids and cluster prompts are attacker-controlled text.

The page lists flagged accounts only (ranked table capped at
:data:`MAX_TABLE_ROWS`, detail cards for the top :data:`MAX_CARDS`); benign
accounts appear only in aggregate in the plots, which downsample, so the
file stays small for 100,000 accounts.

Example:
    >>> from distillguard.findings import ScanSummary
    >>> import pandas as pd
    >>> html = render_html([], ScanSummary(0, 0, 0, 0.8), pd.DataFrame(), pd.DataFrame())
    >>> "No account was flagged" in html
    True
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import numpy as np
import pandas as pd

from distillguard import __version__
from distillguard.findings import FINDINGS_SCHEMA_VERSION, AccountFinding, ScanSummary
from distillguard.report import plots
from distillguard.report.wording import fmt_compact, verdict  # noqa: F401  (re-exported)

#: Flagged accounts listed in the ranked table; the rest are counted, and are in accounts.jsonl.
MAX_TABLE_ROWS = 500
#: Flagged accounts that get a full detail card.
MAX_CARDS = 50
#: Per card / cluster limits, so one noisy account cannot bloat the page.
MAX_PROMPTS = 5
MAX_PROMPT_CHARS = 600
MAX_SIGNALS = 12
MAX_CLUSTER_ACCOUNTS = 25
MAX_CLUSTERS = 100
MAX_FEATURES = 40

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("distillguard.report", "templates"),
    autoescape=True,  # all templates are HTML; never mark user data |safe
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)



def _stylesheet() -> markupsafe.Markup:
    # Read verbatim rather than {% include %}d: CSS braces are not Jinja syntax.  It is our own static file.
    source, _, _ = _TEMPLATES.loader.get_source(_TEMPLATES, "report.css")
    return markupsafe.Markup(source)


# ---------------------------------------------------------------- formatting


def fmt_int(value: float | int | None) -> str:
    """``1234567 -> '1,234,567'``; None or NaN -> an en dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{int(round(value)):,}"




def fmt_value(value: float | None) -> str:
    """A signal value with three significant figures, integers as integers."""
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    value = float(value)
    if value.is_integer() and abs(value) < 1e12:
        return f"{int(value):,}"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def fmt_time(epoch_s: float | None) -> str:
    """Epoch seconds as ``2026-01-05 14:03 UTC``."""
    if epoch_s is None or not math.isfinite(float(epoch_s)):
        return "–"
    return dt.datetime.fromtimestamp(float(epoch_s), dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def fmt_duration(seconds: float | None) -> str:
    """``3725 -> '1.0 h'``; used for time spans and stage timings."""
    if seconds is None or not math.isfinite(float(seconds)):
        return "–"
    seconds = float(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _truncate(text: str, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _percentile_class(percentile: float) -> str:
    if percentile >= 99:
        return "extreme"
    if percentile >= 95:
        return "high"
    return "normal"


# ---------------------------------------------------------------- context


def _flag_mask(population: pd.DataFrame, flagged_ids: set[str]) -> np.ndarray:
    return population["account_id"].astype(str).isin(flagged_ids).to_numpy()


def _population_plots(
    population: pd.DataFrame, findings: list[AccountFinding], flagged_ids: set[str], threshold: float
) -> dict[str, Any]:
    """Score histogram and volume scatter, from the population table or, failing that, the findings."""
    if population is not None and not population.empty and "score" in population.columns:
        scores = pd.to_numeric(population["score"], errors="coerce").to_numpy(dtype=float)
        flagged = _flag_mask(population, flagged_ids) if "account_id" in population.columns else scores >= threshold
        volume = (
            pd.to_numeric(population["n_events"], errors="coerce").to_numpy(dtype=float)
            if "n_events" in population.columns
            else None
        )
        source = "population"
    else:
        # No population table: plot what the findings hold (usually flagged accounts only).
        scores = np.array([f.score for f in findings], dtype=float)
        flagged = np.array([f.flagged for f in findings], dtype=bool)
        volume = np.array([f.n_events for f in findings], dtype=float)
        source = "findings"
    out: dict[str, Any] = {
        "score_plot": plots.score_distribution(scores, flagged, threshold),
        "plot_source": source,
        "scatter_plot": None,
        "scatter_note": "",
    }
    if volume is not None:
        out["scatter_plot"], out["scatter_note"] = plots.volume_vs_score(volume, scores, flagged, threshold)
    return out


def _feature_reference(population: pd.DataFrame, flagged_ids: set[str]) -> list[dict[str, str]]:
    """Per feature: median and p99 of all accounts beside the flagged accounts' median.

    The set of feature columns is open-ended; every numeric column except the
    score is described, up to :data:`MAX_FEATURES`.
    """
    if population is None or population.empty or "account_id" not in population.columns:
        return []
    columns = [
        c
        for c in population.columns
        if c not in ("account_id", "score") and pd.api.types.is_numeric_dtype(population[c])
    ][:MAX_FEATURES]
    is_flagged = _flag_mask(population, flagged_ids)
    rows = []
    for column in columns:
        values = pd.to_numeric(population[column], errors="coerce")
        flagged_values = values[is_flagged].dropna()
        rows.append(
            {
                "name": column,
                "median_all": fmt_value(values.median()),
                "p99_all": fmt_value(values.quantile(0.99)),
                "median_flagged": fmt_value(flagged_values.median()) if len(flagged_values) else "–",
            }
        )
    return rows


def _signal_rows(finding: AccountFinding) -> list[dict[str, Any]]:
    signals = sorted(finding.signals, key=lambda s: -float(s.percentile))[:MAX_SIGNALS]
    return [
        {
            "name": s.name,
            "value": fmt_value(s.value),
            "percentile": float(s.percentile),
            "percentile_label": f"p{float(s.percentile):.1f}",
            "bar_width": f"{min(max(float(s.percentile), 0.0), 100.0):.1f}",
            "level": _percentile_class(float(s.percentile)),
            "description": s.description,
        }
        for s in signals
    ]


def _top_evidence(finding: AccountFinding, n: int) -> list[str]:
    titles = [e.title for e in sorted(finding.evidence, key=lambda e: -float(e.weight))[:n]]
    if not titles:  # fall back on the most extreme signals
        titles = [s.name for s in sorted(finding.signals, key=lambda s: -float(s.percentile))[:n]]
    return titles


def _account_row(rank: int, finding: AccountFinding, anchors: dict[str, str]) -> dict[str, Any]:
    return {
        "rank": rank,
        "account_id": finding.account_id,
        "anchor": anchors.get(finding.account_id),
        "score": f"{finding.score:.3f}",
        "score_width": f"{min(max(finding.score, 0.0), 1.0) * 100:.1f}",
        "n_events": fmt_int(finding.n_events),
        "est_exchanges": fmt_int(finding.est_exchanges),
        "est_output_tokens": fmt_compact(finding.est_output_tokens),
        "cluster_id": finding.cluster_id,
        "top_evidence": _top_evidence(finding, 2),
    }


def _account_card(rank: int, finding: AccountFinding, anchor: str) -> dict[str, Any]:
    span = (
        finding.last_seen - finding.first_seen
        if finding.first_seen is not None and finding.last_seen is not None
        else None
    )
    prompts = [_truncate(p, MAX_PROMPT_CHARS) for p in finding.sample_prompts[:MAX_PROMPTS]]
    return {
        **_account_row(rank, finding, {finding.account_id: anchor}),
        "flagged": finding.flagged,
        "est_output_tokens_full": fmt_int(finding.est_output_tokens),
        "first_seen": fmt_time(finding.first_seen),
        "last_seen": fmt_time(finding.last_seen),
        "active_span": fmt_duration(span) if span is not None else "–",
        "evidence": [
            {
                "detector": e.detector,
                "title": e.title,
                "detail": e.detail,
                "weight": f"{float(e.weight):.2f}",
                "rule_id": e.rule_id,
            }
            for e in sorted(finding.evidence, key=lambda e: -float(e.weight))
        ],
        "signals": _signal_rows(finding),
        "prompts": prompts,
        "n_prompts_hidden": max(0, len(finding.sample_prompts) - MAX_PROMPTS),
        "detector_scores": [(k, f"{float(v):.3f}") for k, v in sorted(finding.detector_scores.items())],
    }


def _edge_labels(edge_types: dict | list | None) -> list[str]:
    """``{"template": 378, "ip": 12}`` → ``["template (378)", "ip (12)"]``, most edges first; a list as it is."""
    if isinstance(edge_types, dict):
        return [f"{k} ({int(v):,})" for k, v in sorted(edge_types.items(), key=lambda kv: -kv[1])]
    return [str(e) for e in (edge_types or [])]


def _cluster_rows(clusters: Iterable[dict], anchors: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    ordered = sorted(clusters, key=lambda c: -float(c.get("score") or 0.0))
    for c in ordered[:MAX_CLUSTERS]:
        account_ids = [str(a) for a in (c.get("account_ids") or [])]
        rows.append(
            {
                "cluster_id": str(c.get("cluster_id", "")),
                "score": f"{float(c['score']):.3f}" if c.get("score") is not None else "–",
                "n_accounts": fmt_int(c.get("n_accounts", len(account_ids))),
                "accounts": [(a, anchors.get(a)) for a in account_ids[:MAX_CLUSTER_ACCOUNTS]],
                "n_accounts_hidden": max(0, len(account_ids) - MAX_CLUSTER_ACCOUNTS),
                "edge_types": _edge_labels(c.get("edge_types")),
                "est_exchanges": fmt_int(c.get("est_exchanges")),
                "flagged": bool(c.get("flagged")),
                "max_member_score": f"{float(c['max_member_score']):.3f}" if c.get("max_member_score") is not None else None,
                "evidence": [str(e.get("detail", "")) if isinstance(e, dict) else str(e) for e in (c.get("evidence") or [])[:6]],
                "prompts": [_truncate(p, MAX_PROMPT_CHARS) for p in (c.get("sample_prompts") or [])[:MAX_PROMPTS]],
            }
        )
    return rows


def _summary_context(summary: ScanSummary) -> dict[str, Any]:
    period = None
    if summary.period_start is not None and summary.period_end is not None:
        period = (
            f"{fmt_time(summary.period_start)} → {fmt_time(summary.period_end)} "
            f"({fmt_duration(summary.period_end - summary.period_start)})"
        )
    # Dotted keys ("ingest.read") break a top-level stage down; they are shown apart and not summed twice.
    stages = {k: v for k, v in summary.timings_s.items() if "." not in k}
    timings = [(stage, fmt_duration(s)) for stage, s in stages.items()]
    sub_timings = [(stage, fmt_duration(s)) for stage, s in summary.timings_s.items() if "." in stage]
    total_s = summary.timings_s.get("total") or sum(v for k, v in stages.items() if k != "total")
    rate = f"{summary.n_events / total_s:,.0f} events/s" if total_s and summary.n_events else None
    share = summary.n_flagged / summary.n_accounts if summary.n_accounts else 0.0
    return {
        "n_events": fmt_int(summary.n_events),
        "n_accounts": fmt_int(summary.n_accounts),
        "n_flagged": fmt_int(summary.n_flagged),
        "flagged_share": "0%" if share == 0 else f"{share:.2%}" if share >= 0.0001 else f"{share:.4%}",
        "threshold": f"{summary.threshold:.2f}",
        "period": period,
        "inputs": list(summary.inputs),
        "quarantined": fmt_int(summary.quarantined),
        "quarantine_file": summary.quarantine_file,
        "duplicates_skipped": fmt_int(summary.duplicates_skipped),
        "est_exchanges": fmt_int(summary.est_exchanges_harvested),
        "est_output_tokens": fmt_compact(summary.est_output_tokens_harvested),
        "est_output_tokens_full": fmt_int(summary.est_output_tokens_harvested),
        "model_version": summary.model_version or "unknown",
        "timings": timings,
        "sub_timings": sub_timings,
        "rate": rate,
        "generated_at": fmt_time(summary.generated_at if summary.generated_at is not None else dt.datetime.now(dt.UTC).timestamp()),
    }


def _activity_order(
    flagged: list[AccountFinding], findings: list[AccountFinding], population: pd.DataFrame, activity: pd.DataFrame
) -> list[str]:
    """Heatmap rows: flagged accounts by score, then other findings, then the rest by population score."""
    order = [f.account_id for f in flagged]
    order += [f.account_id for f in sorted(findings, key=lambda f: -f.score) if not f.flagged]
    if (
        activity is not None
        and not activity.empty
        and population is not None
        and {"account_id", "score"} <= set(population.columns)
    ):
        in_activity = population[population["account_id"].astype(str).isin(set(activity["account_id"].astype(str)))]
        order += in_activity.sort_values("score", ascending=False)["account_id"].astype(str).tolist()
    return order




def build_context(
    findings: list[AccountFinding],
    summary: ScanSummary,
    population: pd.DataFrame,
    activity: pd.DataFrame,
    clusters: list[dict] | None = None,
) -> dict[str, Any]:
    """Everything the template shows, already formatted (the template does no arithmetic).

    Example:
        >>> from distillguard.findings import ScanSummary
        >>> ctx = build_context([], ScanSummary(0, 0, 0, 0.8), pd.DataFrame(), pd.DataFrame())
        >>> ctx["n_flagged_listed"]
        0
    """
    flagged = sorted((f for f in findings if f.flagged), key=lambda f: (-f.score, f.account_id))
    flagged_ids = {f.account_id for f in flagged}
    card_findings = flagged[:MAX_CARDS]
    anchors = {f.account_id: f"acct-{i}" for i, f in enumerate(card_findings, start=1)}

    activity_order = _activity_order(flagged, findings, population, activity)
    if activity is not None and not activity.empty:
        activity_plot, activity_note = plots.activity_heatmap(activity, activity_order, flagged_ids)
    else:
        activity_plot, activity_note = None, ""

    return {
        "title": "distillguard scan report",
        "version": __version__,
        "schema_version": FINDINGS_SCHEMA_VERSION,
        "summary": _summary_context(summary),
        "verdict": verdict(findings, summary),
        **_population_plots(population, findings, flagged_ids, summary.threshold),
        "features": _feature_reference(population, flagged_ids),
        "activity_plot": activity_plot,
        "activity_note": activity_note,
        "rows": [_account_row(i, f, anchors) for i, f in enumerate(flagged[:MAX_TABLE_ROWS], start=1)],
        "n_flagged_listed": min(len(flagged), MAX_TABLE_ROWS),
        "n_flagged_total": len(flagged),
        "n_flagged_unlisted": max(0, len(flagged) - MAX_TABLE_ROWS),
        "cards": [_account_card(i, f, anchors[f.account_id]) for i, f in enumerate(card_findings, start=1)],
        "n_cards_hidden": max(0, len(flagged) - MAX_CARDS),
        "clusters": _cluster_rows(clusters, anchors) if clusters else None,
        "n_clusters_hidden": max(0, len(clusters) - MAX_CLUSTERS) if clusters else 0,
        "max_cards": MAX_CARDS,
    }


def render_html(
    findings: list[AccountFinding],
    summary: ScanSummary,
    population: pd.DataFrame,
    activity: pd.DataFrame,
    clusters: list[dict] | None = None,
) -> str:
    """Render the scan as one self-contained HTML page (inline CSS and PNGs, no scripts, works offline).

    ``population`` has one row per account (``account_id``, numeric feature
    columns, ``score``); ``activity`` has ``account_id``, ``hour`` (epoch
    seconds of the hour start) and ``n_events`` for the top accounts;
    ``clusters`` (optional) are dicts with ``cluster_id``, ``score``,
    ``n_accounts``, ``account_ids``, ``edge_types``, ``est_exchanges`` and
    ``sample_prompts``.

    Example:
        >>> from distillguard.findings import AccountFinding, ScanSummary
        >>> f = AccountFinding("acct-7", 0.97, True, n_events=120, sample_prompts=["<b>hi</b>"])
        >>> page = render_html([f], ScanSummary(120, 1, 1, 0.8), pd.DataFrame(), pd.DataFrame())
        >>> "acct-7" in page and "&lt;b&gt;hi&lt;/b&gt;" in page
        True
    """
    context = build_context(findings, summary, population, activity, clusters)
    return _TEMPLATES.get_template("report.html.j2").render(**context, stylesheet=_stylesheet())


def write_html(
    path: str | Path,
    findings: list[AccountFinding],
    summary: ScanSummary,
    population: pd.DataFrame,
    activity: pd.DataFrame,
    clusters: list[dict] | None = None,
) -> Path:
    """Render the report and write it to ``path`` (UTF-8); returns the path.

    Example:
        >>> write_html("out/report.html", findings, summary, population, activity)  # doctest: +SKIP
        PosixPath('out/report.html')
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    html = render_html(findings, summary, population, activity, clusters)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)  # never leave a half-written report behind
    return path
