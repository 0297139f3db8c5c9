"""Detection quality per scenario, with simple baselines in the same table.

For each scenario: simulate it (a seed stream the shipped model never trained
on), scan it, and compare scores with the simulator's labels.  Metrics per
scenario: account-level ROC AUC, recall at 0.1% and 1% benign false-positive
rate, recall and FPR at the operating threshold, campaign recall (a campaign
counts as found when at least one of its accounts is flagged), and flagged
share per hard-negative persona.  Baselines: a per-account rate limit and a
per-account volume z-score, scored on the same accounts.

Example:
    >>> rows = run_quality_bench(Path("/tmp/q"), ["demo"], scale=0.2)   # doctest: +SKIP
    >>> rows[0]["distillguard"]["auc"] > 0.9                            # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from distillguard.bench.throughput import TreeMemorySampler, rss_kb
from distillguard.detectors.ensemble import Ensemble
from distillguard.scan import ScanOptions, run_scan
from distillguard.training import labels_vector

#: A seed offset so benchmark traffic never coincides with the training scenario's seed 0.
EVAL_SEED = 1000


def recall_at_fpr(y: np.ndarray, scores: np.ndarray, fpr_target: float) -> float:
    """Highest recall reachable with a benign false-positive rate at or under ``fpr_target``."""
    if y.sum() == 0 or y.sum() == len(y):
        return float("nan")
    fpr, tpr, _ = roc_curve(y, scores)
    ok = fpr <= fpr_target + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def baseline_scores(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Scores of the baselines a gateway would use, from the same account features.

    ``rate_limit``: how far the account's peak requests/minute and requests/day exceed common
    gateway limits (60 rpm, 2,000 per day), so a threshold at 1 is "the limit fired".
    ``volume_z``: z-score of the account's request count against the population.
    """
    rpm = frame["max_per_minute"].to_numpy() / 60.0
    rpd = frame["events_per_active_day"].to_numpy() / 2000.0
    volume = np.log1p(frame["n_events"].to_numpy())
    sd = volume.std() or 1.0
    return {"rate_limit": np.maximum(rpm, rpd), "volume_z": (volume - volume.mean()) / sd}


def score_metrics(y: np.ndarray, scores: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    both = 0 < y.sum() < len(y)
    return {
        "auc": float(roc_auc_score(y, scores)) if both else float("nan"),
        "recall_at_0.1pct_fpr": recall_at_fpr(y, scores, 0.001),
        "recall_at_1pct_fpr": recall_at_fpr(y, scores, 0.01),
        "recall_at_threshold": float(flagged[y == 1].mean()) if y.any() else float("nan"),
        "fpr_at_threshold": float(flagged[y == 0].mean()) if (y == 0).any() else float("nan"),
    }


def evaluate_scan(
    frame: pd.DataFrame, labels: dict[str, dict], threshold: float, text_scores: dict[str, dict[str, float]] | None = None
) -> dict[str, Any]:
    """Metrics of distillguard and the baselines on one scanned scenario.

    ``text_scores``: per text baseline (PRADA, MMD) a score per account, computed from the raw prompts.
    """
    ids = [str(a) for a in frame.index]
    y = labels_vector(frame, {a: bool(row.get("is_attack")) for a, row in labels.items()})
    scores = frame["score"].to_numpy()
    flagged = scores >= threshold
    result: dict[str, Any] = {"accounts": len(ids), "attack_accounts": int(y.sum()), "distillguard": score_metrics(y, scores, flagged)}
    for name, base in baseline_scores(frame).items():
        base_flag = base >= (1.0 if name == "rate_limit" else 3.0)
        result[name] = score_metrics(y, base, base_flag)
    for name, by_account in (text_scores or {}).items():
        base = np.array([by_account.get(a, 0.0) for a in ids])
        result[name] = score_metrics(y, base, base >= (0.1 if name == "prada" else np.inf))
    campaigns: dict[str, bool] = defaultdict(bool)
    hard_negatives: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for a, f in zip(ids, flagged):
        lab = labels.get(a, {})
        if lab.get("campaign_id"):
            campaigns[lab["campaign_id"]] |= bool(f)
        if lab.get("hard_negative") and not lab.get("is_attack"):
            hard_negatives[lab["persona"]][0] += 1
            hard_negatives[lab["persona"]][1] += int(f)
    result["campaigns"] = len(campaigns)
    result["campaign_recall"] = float(np.mean(list(campaigns.values()))) if campaigns else float("nan")
    result["hard_negative_fp"] = {p: {"accounts": n, "flagged": k, "rate": k / n} for p, (n, k) in sorted(hard_negatives.items())}
    result["_roc"] = {"y": y.tolist(), "score": scores.tolist()}
    return result


def replay_schedule(t0: float, t1: float, campaign_starts: Sequence[float] = ()) -> list[float]:
    """Replay cut-offs: every hour for the first two days after each campaign starts (where "before
    2% is harvested" is decided) and after the start of the data, and every 6 hours otherwise."""
    hour, window = 3600.0, 48 * 3600.0
    cuts = set(np.arange(t0 + 6 * hour, t1 + 6 * hour, 6 * hour).tolist())
    for start in (t0, *campaign_starts):
        cuts.update(np.arange(start + hour, min(start + window, t1 + hour) + 1, hour).tolist())
    return sorted(float(t) for t in cuts if t > t0)


def detection_delay(store, model, threshold: float, labels: dict[str, dict], event_campaigns: dict[str, str]) -> dict[str, Any]:
    """Replay the stored scenario hour by hour; per campaign, exchanges harvested before its first flag.

    The step in which a campaign is first flagged is replayed again at each quarter of it (every
    15 minutes inside the hourly part of the schedule), so the figure is not inflated by the step.

    A campaign's exchanges are its accounts' events, or for accounts that mix campaign and genuine
    traffic (a reseller), the events the simulator labelled with the campaign.  Each cut is judged
    as the scan judges (account scores, then end users inside shared accounts with the scan's
    default :class:`~distillguard.subaccounts.SubAccountConfig`, sequential test included), and
    ``via`` says which of them flagged the campaign first.  (Linking is not replayed: it only lifts
    accounts, so the delay measured is an upper bound on the scan's.)
    """
    from distillguard.features.account import compute_account_features
    from distillguard.subaccounts import score_end_users

    events = store.query("SELECT event_id, account_id, ts FROM events").to_pandas()
    member = {a: lab["campaign_id"] for a, lab in labels.items() if lab.get("campaign_id") and lab.get("is_attack")}
    by_event = events["event_id"].map(event_campaigns).astype(object)
    # an account with event-level labels mixes campaign and genuine traffic: only its labelled events count
    mixed = events["account_id"].isin(set(events.loc[by_event.notna(), "account_id"]))
    by_account = events["account_id"].map(member).astype(object).where(~mixed)
    campaign = by_event.where(by_event.notna(), by_account)
    events = events.assign(campaign=campaign).dropna(subset=["campaign"])
    if events.empty:
        return {}
    totals = events.groupby("campaign").size()
    accounts_of = {c: set(g) for c, g in events.groupby("campaign")["account_id"]}
    t0, t1 = float(store.query("SELECT min(ts) AS a FROM events").column(0)[0].as_py()), float(events["ts"].max())
    starts = events.groupby("campaign")["ts"].min()
    detected: dict[str, float] = {}
    via: dict[str, str] = {}  # how each campaign was first flagged

    def judge(cut: float) -> dict[str, str]:
        """Campaigns flagged with the data up to ``cut`` (among those not yet detected), and how."""
        frame = compute_account_features(store, until=cut)
        if frame.empty:
            return {}
        model.fit_population(frame)
        flagged = set(frame.index[model.score(frame) >= threshold])
        through_end_users: dict[str, str] = {}  # account -> how its first flagged end user was found
        for f in score_end_users(store, frame, model, threshold, until=cut):
            if f.flagged and f.account_id not in flagged:
                through_end_users.setdefault(f.account_id, f"end user ({f.flagged_by})")
        found = {}
        for c, accounts in accounts_of.items():
            if c not in detected and accounts & (flagged | set(through_end_users)):
                found[c] = "account" if accounts & flagged else through_end_users[min(accounts & set(through_end_users))]
        return found

    previous = t0
    for cut in replay_schedule(t0, t1, starts.tolist()):
        # skip an hourly cut that no undetected campaign needs (it is in none's first two days)
        pending = [c for c in accounts_of if c not in detected]
        if (cut - t0) % (6 * 3600) and not any(starts[c] < cut <= starts[c] + 48 * 3600 + 3600 for c in pending):
            continue
        found = judge(cut)
        if found:
            # refine: the earliest quarter of the step at which each newly flagged campaign already was
            for part in (0.25, 0.5, 0.75):
                for c, how in judge(previous + part * (cut - previous)).items():
                    if c in found and c not in detected:
                        detected[c], via[c] = previous + part * (cut - previous), how
                if all(c in detected for c in found):
                    break
            for c, how in found.items():
                if c not in detected:
                    detected[c], via[c] = cut, how
        previous = cut
        if len(detected) == len(accounts_of):
            break
    out = {}
    for c, total in totals.items():
        cut = detected.get(c)
        before = int((events.loc[events["campaign"] == c, "ts"] < cut).sum()) if cut is not None else int(total)
        out[c] = {"exchanges": int(total), "harvested_before_flag": before, "share": before / total, "detected": cut is not None,
                  "via": via.get(c)}
    return out


def run_quality_bench(
    workdir: Path,
    scenarios: Sequence[str],
    *,
    seed: int = EVAL_SEED,
    scale: float = 1.0,
    corpora: str | None = "bundled",
    model_path: str | None = None,
    replay: bool = True,
    text_baselines: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Simulate, scan and score each scenario; write ``results.json``, ``results.md`` and ``roc.png``."""
    from distillguard.simulate import run_scenario

    stage = on_stage or (lambda _s: None)
    rows = []
    for name in scenarios:
        stage(f"{name}: simulating")
        sim = run_scenario(name, workdir / name / "traffic", seed=seed, corpora=corpora, scale=scale)
        labels = {}
        with open(sim.labels, "rb") as fh:
            for line in fh:
                row = json.loads(line)
                labels[str(row["account_id"])] = row
        stage(f"{name}: scanning {sim.events:,} events")
        t0 = time.perf_counter()
        memory = TreeMemorySampler(os.getpid())  # this process and its ingest workers
        before_kb = rss_kb(os.getpid())  # what this process held already (earlier scenarios' leftovers)
        memory.start()
        try:
            result = run_scan([sim.traffic], workdir / name / "scan", ScanOptions(accounts_path=str(sim.accounts_file), model_path=model_path))
        finally:
            memory.stop()
        seconds = time.perf_counter() - t0
        text_scores = _text_baseline_scores(name, seed, corpora, scale) if text_baselines else None
        metrics = evaluate_scan(result.features, labels, result.summary.threshold, text_scores)
        if replay:
            stage(f"{name}: replaying hour by hour")
            event_campaigns = _event_campaigns(sim.event_labels)
            model = Ensemble.load(model_path)
            delays = detection_delay(result.store, model, result.summary.threshold, labels, event_campaigns)
            metrics["detection"] = delays
            shares = [d["share"] for d in delays.values()]
            metrics["max_harvested_share_before_flag"] = max(shares) if shares else float("nan")
        metrics.update({"scenario": name, "events": sim.events, "scan_s": round(seconds, 2), "events_per_s": round(sim.events / seconds),
                        "peak_tree_rss_mb": round(memory.peak_rss_kb / 1024, 1),
                        "scan_peak_rss_mb": round((memory.peak_rss_kb - before_kb) / 1024, 1)})
        rows.append(metrics)
        result.store.close()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "results.json").write_text(json.dumps([{k: v for k, v in r.items() if k != "_roc"} for r in rows], indent=1))
    (workdir / "results.md").write_text(markdown_table(rows))
    plot_roc(rows, workdir / "roc.png")
    plot_harvested(rows, workdir / "harvested.png")
    return rows


def _text_baseline_scores(name: str, seed: int, corpora: str | None, scale: float) -> dict[str, dict[str, float]]:
    """PRADA and MMD scores per account, from the scenario's prompts (regenerated: same seed, same text)."""
    from distillguard.bench.baselines import collect_prompts, text_baselines
    from distillguard.simulate import generate_events

    prompts = collect_prompts(generate_events(name, seed=seed, corpora=corpora, scale=scale))
    scores = {}
    for baseline in text_baselines():
        baseline.fit(prompts)
        scores[baseline.name] = baseline.score(prompts)
    return scores


def _event_campaigns(path: Path | None) -> dict[str, str]:
    if path is None or not Path(path).exists():
        return {}
    import gzip

    with gzip.open(path, "rb") as fh:
        return {row["event_id"]: row["campaign_id"] for row in map(json.loads, fh)}


def _auc(row: dict[str, Any], name: str) -> str:
    return f"{row[name]['auc']:.3f}" if name in row else "n/a"


def _mb(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f} MB"


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The results as the markdown table kept in docs/benchmarks.md."""
    head = (
        "| scenario | events | accounts (attack) | AUC | recall @0.1% FPR | recall @1% FPR | recall / FPR at threshold "
        "| campaign recall | max harvested before flag | hard-negative FP | volume z AUC | rate-limit recall | PRADA AUC | MMD AUC | events/s | peak memory |\n|" + "---|" * 16 + "\n"
    )
    lines = []
    for r in rows:
        d, hn = r["distillguard"], r["hard_negative_fp"]
        worst = max(hn.items(), key=lambda kv: kv[1]["rate"]) if hn else None
        n_hn = sum(v["accounts"] for v in hn.values())
        hn_text = f"{_pct(worst[1]['rate'])} ({worst[0]})" if worst and worst[1]["flagged"] else f"0 of {n_hn}"
        lines.append(
            f"| {r['scenario']} | {r['events']:,} | {r['accounts']} ({r['attack_accounts']}) | {d['auc']:.4f} "
            f"| {_pct(d['recall_at_0.1pct_fpr'])} | {_pct(d['recall_at_1pct_fpr'])} "
            f"| {_pct(d['recall_at_threshold'])} / {_pct(d['fpr_at_threshold'])} | {_pct(r['campaign_recall'])} "
            f"| {_pct(r.get('max_harvested_share_before_flag', float('nan')))} | {hn_text} "
            f"| {r['volume_z']['auc']:.3f} | {_pct(r['rate_limit']['recall_at_threshold'])} "
            f"| {_auc(r, 'prada')} | {_auc(r, 'mmd')} | {r['events_per_s']:,} | {_mb(r.get('scan_peak_rss_mb'))} |"
        )
    return head + "\n".join(lines) + "\n"


def benchmark_page(rows: list[dict[str, Any]], command: str, plots: str | None = None) -> str:
    """docs/benchmarks.md: how the numbers were made, the table, the plots (``<plots>-roc.png`` and
    ``<plots>-harvested.png`` beside the page, when given) and what it does not show."""
    when = time.strftime("%Y-%m-%d", time.gmtime())
    return f"""# Benchmark results

Generated {when} by `{command} --markdown docs/benchmarks.md` (2-core machine; events/s is the whole
scan of each scenario on a shared, noisy machine). Each scenario is the full benign population
(chat users, app backends, batch pipelines, evaluation runs, synthetic-data developers, corporate
NATs, resellers) plus the named campaign(s), simulated with a seed the shipped model never saw.

* AUC and recall at fixed false-positive rates are account-level, over all accounts of the scenario.
* "recall / FPR at threshold" uses the shipped model's operating point.
* Campaign recall: a campaign counts as found when at least one of its accounts is flagged.
* Max harvested before flag: the largest share of a campaign's exchanges made before its first flag,
  replaying the scenario hour by hour through each campaign's first two days (6-hourly otherwise),
  and the step in which it is first flagged again at each quarter (every 15 minutes in the hourly part).
  A campaign mixed into a reseller counts only its own requests, and is flagged through its end
  users (the account model from 50 requests each, or sooner the sequential test on per-request
  evidence, one end user alone or all of the account's pooled); `results.json` says, per
  campaign, which path flagged it first (`via`).
* Hard-negative FP: the worst flagged share among hard-negative benign personas.
* Peak memory: the largest resident memory of the bench process and its ingest workers, summed,
  while the scenario's scan ran, less what the bench process held when the scan began (earlier
  scenarios' leftovers); `results.json` has the whole peak too (`peak_tree_rss_mb`).
* Baselines on the same accounts: volume z-score, a gateway rate limit (60 rpm / 2,000 per day),
  PRADA-style query-distance normality, MMD window test on wordllama embeddings.

{markdown_table(rows)}
{f"![ROC per scenario]({plots}-roc.png) ![Harvested before detection]({plots}-harvested.png)" if plots else ""}

Caveat: these scenarios come from our own simulator; an evaluation set we do not have exists. A
perfect score here says the simulated campaigns are separable, not that real ones are.
"""


def plot_roc(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5))
    for r in rows:
        y, s = np.array(r["_roc"]["y"]), np.array(r["_roc"]["score"])
        if 0 < y.sum() < len(y):
            fpr, tpr, _ = roc_curve(y, s)
            ax.plot(np.maximum(fpr, 1e-4), tpr, label=f"{r['scenario']} (AUC {r['distillguard']['auc']:.3f})")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.axvline(0.001, color="grey", ls=":", lw=1)
    ax.set_xlabel("benign false-positive rate (log)")
    ax.set_ylabel("harvesting accounts flagged (recall)")
    ax.set_title("distillguard ROC per scenario")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_harvested(rows: list[dict[str, Any]], path: Path, target: float = 0.02) -> None:
    """Share of each campaign's exchanges harvested before its first flag, per scenario, against the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in rows if r.get("detection")]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * max(len(measured), 3) + 1.2))
    for i, r in enumerate(measured):
        shares = [max(d["share"], 1e-4) if d["detected"] else 1.0 for d in r["detection"].values()]
        missed = [not d["detected"] for d in r["detection"].values()]
        ax.scatter(shares, [i] * len(shares), c=["tab:red" if m else "tab:blue" for m in missed], s=18, alpha=0.8)
    ax.axvline(target, color="tab:red", ls="--", lw=1, label=f"target: flagged before {target:.0%}")
    ax.set_yticks(range(len(measured)), [r["scenario"] for r in measured])
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1.05)
    ax.set_xlabel("share of exchanges harvested before the first flag (log; 1 = never flagged)")
    ax.set_title("Harvested before detection, one dot per campaign")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
