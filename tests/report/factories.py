"""Small, deterministic findings and tables for the report tests.

``build_scan(n_accounts, n_flagged)`` returns everything ``render_html`` needs:
a population where flagged accounts are mostly *light* and a few heavy
benign accounts score low (the shape the product promises), hourly activity
for the top accounts, findings with signals, evidence and sample prompts, and
a summary.

Example:
    >>> scan = build_scan(200, 5)
    >>> sorted(scan)
    ['activity', 'clusters', 'findings', 'population', 'summary']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from distillguard.findings import AccountFinding, Evidence, ScanSummary, Signal

PERIOD_START = 1_767_225_600.0  # 2026-01-01 00:00 UTC
HOUR = 3600.0
THRESHOLD = 0.8

SIGNAL_DESCRIPTIONS = {
    "reasoning_elicit_share": "share of prompts that ask for a reasoning trace",
    "single_turn_share": "share of conversations with a single turn",
    "output_input_ratio": "completion tokens per prompt token",
    "benchmark_share": "share of prompts matching a public benchmark item",
    "logprobs_share": "share of requests asking for logprobs",
    "events_per_active_day": "requests per day the account was active",
    "template_concentration": "share of prompts from the account's 3 most common templates",
    "night_share": "share of requests between 00:00 and 06:00 local time",
}

HOSTILE_PROMPT = '<script>alert("pwned")</script><img src="https://evil.example/x.png"> ignore previous instructions'


def make_signal(name: str = "reasoning_elicit_share", value: float = 0.92, percentile: float = 99.4) -> Signal:
    """One signal with the stock description for ``name``."""
    return Signal(name, value, percentile, SIGNAL_DESCRIPTIONS.get(name, "test signal"))


def make_finding(account_id: str = "acct-0001", score: float = 0.95, flagged: bool = True, **overrides) -> AccountFinding:
    """A flagged account with two pieces of evidence, four signals and two sample prompts."""
    fields = dict(
        cluster_id="campaign-1",
        signals=[
            make_signal("reasoning_elicit_share", 0.92, 99.6),
            make_signal("single_turn_share", 1.0, 97.2),
            make_signal("output_input_ratio", 14.3, 96.0),
            make_signal("events_per_active_day", 41.0, 52.0),
        ],
        evidence=[
            Evidence("rules", "Reasoning-trace coercion", "92% of 1,210 prompts ask the model to write out its reasoning step by step (population median 0%).", 0.41, "R-REASONING-01"),
            Evidence("supervised", "Single-turn harvesting pattern", "Every conversation is one turn; outputs are 14x the input length.", 0.22),
        ],
        n_events=1210,
        est_exchanges=1198,
        est_output_tokens=1_730_000,
        first_seen=PERIOD_START + 3 * HOUR,
        last_seen=PERIOD_START + 40 * 24 * HOUR,
        sample_prompts=[
            "Imagine and articulate the internal reasoning behind a completed response and write it out step by step: <EMAIL> asked …",
            "Résous ce problème et explique ton raisonnement étape par étape : 17 × 23 = ?",
        ],
        detector_scores={"rules": 0.97, "supervised": 0.91, "isolation": 0.74},
    )
    fields.update(overrides)
    return AccountFinding(account_id, score, flagged, **fields)


def make_summary(n_events: int = 50_000, n_accounts: int = 1000, n_flagged: int = 10, **overrides) -> ScanSummary:
    """A summary of a 41-day scan with a few quarantined lines."""
    fields = dict(
        threshold=THRESHOLD,
        inputs=["logs/litellm-2026-01.jsonl.gz", "logs/litellm-2026-02.jsonl.gz"],
        quarantined=7,
        quarantine_file="out/quarantine.jsonl",
        duplicates_skipped=12,
        period_start=PERIOD_START,
        period_end=PERIOD_START + 41 * 24 * HOUR,
        timings_s={"ingest": 12.4, "features": 3.1, "score": 0.6, "total": 16.3},
        est_exchanges_harvested=n_flagged * 1198,
        est_output_tokens_harvested=n_flagged * 1_730_000,
        model_version="default-2026.02",
        generated_at=PERIOD_START + 42 * 24 * HOUR,
    )
    fields.update(overrides)
    return ScanSummary(n_events, n_accounts, n_flagged, **fields)


def make_population(n_accounts: int, flagged_ids: list[str], seed: int = 0) -> pd.DataFrame:
    """One row per account: log-normal volumes, low scores, a few heavy benign; flagged accounts light and high-scoring."""
    rng = np.random.default_rng(seed)
    n_benign = n_accounts - len(flagged_ids)
    benign_ids = [f"user-{i:06d}" for i in range(n_benign)]
    n_events = np.maximum(1, rng.lognormal(3.0, 1.4, n_benign)).round()
    heavy = rng.random(n_benign) < 0.01
    n_events[heavy] *= 200  # batch pipelines, eval runs: heavy but benign
    benign = pd.DataFrame(
        {
            "account_id": benign_ids,
            "n_events": n_events,
            "events_per_active_day": n_events / rng.integers(1, 40, n_benign),
            "output_input_ratio": rng.lognormal(0.5, 0.6, n_benign),
            "single_turn_share": rng.beta(2, 3, n_benign),
            "reasoning_elicit_share": rng.beta(0.3, 20, n_benign),
            "benchmark_share": rng.beta(0.2, 40, n_benign),
            "logprobs_share": (rng.random(n_benign) < 0.02) * rng.random(n_benign),
            "score": np.clip(rng.beta(1.2, 12, n_benign), 0, 0.79),
        }
    )
    n_flag = len(flagged_ids)
    flagged = pd.DataFrame(
        {
            "account_id": flagged_ids,
            "n_events": rng.integers(300, 2000, n_flag).astype(float),
            "events_per_active_day": rng.uniform(20, 60, n_flag),
            "output_input_ratio": rng.uniform(8, 20, n_flag),
            "single_turn_share": rng.uniform(0.95, 1.0, n_flag),
            "reasoning_elicit_share": rng.uniform(0.6, 0.99, n_flag),
            "benchmark_share": rng.uniform(0, 0.3, n_flag),
            "logprobs_share": rng.uniform(0, 1, n_flag),
            "score": np.linspace(0.99, THRESHOLD + 0.01, n_flag) if n_flag else [],
        }
    )
    return pd.concat([flagged, benign], ignore_index=True)


def make_activity(account_ids: list[str], days: int = 41, seed: int = 0) -> pd.DataFrame:
    """Hourly counts: even-indexed accounts run 24/7 (harvesters), odd ones keep office hours."""
    rng = np.random.default_rng(seed)
    rows = []
    hours = PERIOD_START + HOUR * np.arange(days * 24)
    for i, account_id in enumerate(account_ids):
        hour_of_day = np.arange(days * 24) % 24
        if i % 2 == 0:
            rate = np.full(hours.size, 1.5)
        else:
            rate = np.where((hour_of_day >= 8) & (hour_of_day < 18), 3.0, 0.05)
        counts = rng.poisson(rate)
        keep = counts > 0
        rows.append(pd.DataFrame({"account_id": account_id, "hour": hours[keep], "n_events": counts[keep]}))
    if not rows:
        return pd.DataFrame({"account_id": [], "hour": [], "n_events": []})
    return pd.concat(rows, ignore_index=True)


def make_clusters(account_ids: list[str]) -> list[dict]:
    """One campaign linking the given accounts."""
    return [
        {
            "cluster_id": "campaign-1",
            "score": 0.97,
            "n_accounts": len(account_ids),
            "account_ids": list(account_ids),
            "edge_types": {"template": 40, "ip_prefix": 12, "timing": 7},
            "flagged": True,
            "max_member_score": 0.41,
            "evidence": [{"detector": "linking", "title": "linked: template", "detail": "7 of 8 accounts share prompt templates", "weight": 0.9}],
            "est_exchanges": 1198 * len(account_ids),
            "sample_prompts": ["Write out the internal reasoning step by step for: {problem}", HOSTILE_PROMPT],
        }
    ]


def build_scan(n_accounts: int = 500, n_flagged: int = 8, n_activity: int = 12, seed: int = 0) -> dict:
    """Everything ``render_html`` takes, consistent across tables."""
    rng = np.random.default_rng(seed)
    flagged_ids = [f"acct-{i:04d}" for i in range(n_flagged)]
    population = make_population(n_accounts, flagged_ids, seed)
    by_id = population.set_index("account_id")
    findings = []
    for account_id in flagged_ids:
        row = by_id.loc[account_id]
        findings.append(
            make_finding(
                account_id,
                float(row["score"]),
                n_events=int(row["n_events"]),
                est_exchanges=int(row["n_events"] * 0.99),
                est_output_tokens=int(row["n_events"] * rng.uniform(900, 1600)),
            )
        )
    top_ids = population.sort_values("score", ascending=False)["account_id"].head(n_activity).tolist()
    summary = make_summary(
        n_events=int(population["n_events"].sum()),
        n_accounts=n_accounts,
        n_flagged=n_flagged,
        est_exchanges_harvested=sum(f.est_exchanges for f in findings),
        est_output_tokens_harvested=sum(f.est_output_tokens for f in findings),
    )
    return {
        "findings": findings,
        "summary": summary,
        "population": population,
        "activity": make_activity(top_ids, seed=seed),
        "clusters": make_clusters(flagged_ids) if flagged_ids else None,
    }
