"""Sentences and numbers shared by the HTML report and the terminal summary."""

from __future__ import annotations

import math

from distillguard.findings import AccountFinding, ScanSummary

def fmt_compact(value: float | int | None) -> str:
    """Large counts in words a reader takes in at a glance: ``1730000 -> '1.73M'``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    value = float(value)
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:,.0f}"

def verdict(findings: list[AccountFinding], summary: ScanSummary) -> str:
    """One sentence a reader can quote: how many accounts were flagged and what they took.

    Example:
        >>> from distillguard.findings import ScanSummary
        >>> verdict([], ScanSummary(100, 10, 0, 0.8))
        'No account was flagged at threshold 0.80 among 10 accounts (100 events).'
    """
    if summary.n_flagged == 0:
        text = (
            f"No account was flagged at threshold {summary.threshold:.2f} among "
            f"{summary.n_accounts:,} accounts ({summary.n_events:,} events)."
        )
        top = max(findings, key=lambda f: f.score, default=None)
        if top is not None:
            text += f" Highest score: {top.score:.3f} ({top.account_id})."
        return text
    clusters = {f.cluster_id for f in findings if f.flagged and f.cluster_id}
    campaign = f" in {len(clusters):,} linked group{'s' if len(clusters) != 1 else ''}" if clusters else ""
    return (
        f"{summary.n_flagged:,} of {summary.n_accounts:,} accounts flagged at threshold "
        f"{summary.threshold:.2f}{campaign}; an estimated {summary.est_exchanges_harvested:,} exchanges and "
        f"{fmt_compact(summary.est_output_tokens_harvested)} output tokens harvested."
    )
