"""Plots for the HTML report, rendered offline to PNG and returned as data URIs.

Every function takes plain data (arrays, DataFrames, findings), draws with
matplotlib's Agg canvas on a private :class:`~matplotlib.figure.Figure` (no
pyplot, so the caller's backend and global figure state are never touched),
and returns ``data:image/png;base64,...`` ready for an ``<img src>``.  Large
populations are downsampled here, so the report's size does not grow with the
number of accounts.

Example:
    >>> import numpy as np
    >>> uri = score_distribution(np.array([0.1, 0.2, 0.95]), np.array([False, False, True]), 0.8)
    >>> uri.startswith("data:image/png;base64,")
    True
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap, LogNorm
from matplotlib.figure import Figure


# A restrained palette shared with the CSS (templates/report.css).
INK = "#1f2933"
MUTED = "#7b8794"
BENIGN = "#9aa5b1"
FLAGGED = "#c2410c"
WARN = "#d97706"
GRID = "#e4e7eb"
ACTIVITY_CMAP = LinearSegmentedColormap.from_list("distillguard_activity", ["#e8eef6", "#5b7fb0", "#1e3a5f"])

#: Resolution of the embedded PNGs; the CSS scales them to the column width.
DPI = 110
#: Caps that keep the report small for very large scans.
MAX_BENIGN_POINTS = 4000
MAX_HEAVY_BENIGN_POINTS = 300
MAX_FLAGGED_POINTS = 5000
MAX_ACTIVITY_ROWS = 30
MAX_TIMELINE_COLUMNS = 500  # about one column per pixel at the rendered width

_RC = {
    "font.size": 9,
    "font.family": "sans-serif",
    "axes.edgecolor": MUTED,
    "axes.labelcolor": INK,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlecolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "xtick.labelcolor": INK,
    "ytick.labelcolor": INK,
    "legend.frameon": False,
    "svg.fonttype": "none",
}


def _new_figure(width_in: float, height_in: float, constrained: bool = True) -> Figure:
    # Constrained layout costs a second draw; the small per-account charts use fixed margins instead.
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)
    return fig


def _to_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    # No metadata: keeps the bytes deterministic and a few hundred bytes smaller.
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _empty(fig: Figure, message: str) -> str:
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", color=MUTED, transform=ax.transAxes)
    return _to_data_uri(fig)


def score_distribution(scores: np.ndarray, flagged: np.ndarray, threshold: float) -> str:
    """Histogram of account scores with log-scale counts and the threshold marked.

    Counts are log-scaled because a handful of flagged accounts sit beside
    tens of thousands of benign ones; on a linear axis they would vanish.

    Example:
        >>> uri = score_distribution(np.linspace(0, 1, 50), np.linspace(0, 1, 50) > 0.9, 0.9)
    """
    scores = np.asarray(scores, dtype=float)
    flagged = np.asarray(flagged, dtype=bool)
    keep = np.isfinite(scores)
    scores, flagged = scores[keep], flagged[keep]
    with matplotlib.rc_context(_RC):
        fig = _new_figure(7.2, 2.9)
        if scores.size == 0:
            return _empty(fig, "no scored accounts")
        ax = fig.add_subplot()
        bins = np.linspace(0.0, 1.0, 51)
        ax.hist(
            [scores[~flagged], scores[flagged]],
            bins=bins,
            stacked=True,
            color=[BENIGN, FLAGGED],
            label=[f"not flagged ({int((~flagged).sum()):,})", f"flagged ({int(flagged.sum()):,})"],
            log=True,
            edgecolor="white",
            linewidth=0.4,
        )
        ax.axvline(threshold, color=INK, linestyle="--", linewidth=1)
        ax.annotate(
            f"threshold {threshold:.2f}",
            xy=(threshold, 1),
            xycoords=("data", "axes fraction"),
            xytext=(-4, -2),
            textcoords="offset points",
            ha="right",
            va="top",
            color=INK,
        )
        ax.set_xlim(0, 1)
        ax.set_xlabel("account score (0 = benign-looking, 1 = harvesting-like)")
        ax.set_ylabel("accounts (log scale)")
        ax.grid(axis="y", color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2)
        return _to_data_uri(fig)


def _downsample_for_scatter(volume: np.ndarray, flagged: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """Indices to draw: all flagged (capped), the heaviest benign, a random sample of the rest.

    The heaviest benign accounts are always kept because they are the point of
    the plot: heavy users that were *not* flagged.
    """
    rng = np.random.default_rng(seed)
    flagged_idx = np.flatnonzero(flagged)
    benign_idx = np.flatnonzero(~flagged)
    if flagged_idx.size > MAX_FLAGGED_POINTS:
        flagged_idx = rng.choice(flagged_idx, MAX_FLAGGED_POINTS, replace=False)
    heavy = benign_idx[np.argsort(-volume[benign_idx], kind="stable")[:MAX_HEAVY_BENIGN_POINTS]]
    rest = np.setdiff1d(benign_idx, heavy, assume_unique=True)
    if rest.size > MAX_BENIGN_POINTS:
        rest = rng.choice(rest, MAX_BENIGN_POINTS, replace=False)
    shown_benign = heavy.size + rest.size
    n_flagged = int(flagged.sum())
    note = ""
    if shown_benign < benign_idx.size or flagged_idx.size < n_flagged:
        flagged_part = (
            f"all {n_flagged:,} flagged" if flagged_idx.size == n_flagged else f"{flagged_idx.size:,} of {n_flagged:,} flagged (random)"
        )
        note = (
            f"showing {flagged_part} and {shown_benign:,} of {benign_idx.size:,} other accounts "
            f"(the {heavy.size:,} heaviest plus a random sample)"
        )
    return np.concatenate([rest, heavy, flagged_idx]), note


def volume_vs_score(volume: np.ndarray, scores: np.ndarray, flagged: np.ndarray, threshold: float) -> tuple[str, str]:
    """Scatter of request volume (log) against score, coloured by flag.

    Returns the data URI and a note describing any downsampling (empty if none).

    Example:
        >>> uri, note = volume_vs_score(np.array([5, 5000]), np.array([0.9, 0.1]), np.array([True, False]), 0.8)
    """
    volume = np.asarray(volume, dtype=float)
    scores = np.asarray(scores, dtype=float)
    flagged = np.asarray(flagged, dtype=bool)
    keep = np.isfinite(volume) & np.isfinite(scores)
    volume, scores, flagged = np.maximum(volume[keep], 1.0), scores[keep], flagged[keep]
    with matplotlib.rc_context(_RC):
        fig = _new_figure(7.2, 3.4)
        if volume.size == 0:
            return _empty(fig, "no accounts with a volume"), ""
        idx, note = _downsample_for_scatter(volume, flagged)
        ax = fig.add_subplot()
        shown_flagged = flagged[idx]
        ax.scatter(
            volume[idx][~shown_flagged],
            scores[idx][~shown_flagged],
            s=6,
            color=BENIGN,
            alpha=0.5,
            linewidths=0,
            label="not flagged",
            rasterized=True,
        )
        ax.scatter(
            volume[idx][shown_flagged],
            scores[idx][shown_flagged],
            s=14,
            color=FLAGGED,
            alpha=0.85,
            linewidths=0,
            label="flagged",
        )
        ax.axhline(threshold, color=INK, linestyle="--", linewidth=1)
        ax.annotate(
            f"threshold {threshold:.2f}",
            xy=(1, threshold),
            xycoords=("axes fraction", "data"),
            xytext=(-2, 3),
            textcoords="offset points",
            ha="right",
            color=INK,
        )
        median_volume = float(np.median(volume))
        ax.axvline(median_volume, color=MUTED, linestyle=":", linewidth=1, label=f"median account ({median_volume:,.0f} events)")
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("events in the scan (log scale)")
        ax.set_ylabel("account score")
        ax.grid(color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=3, markerscale=1.5)
        return _to_data_uri(fig), note


def _short(label: str, width: int = 22) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def activity_heatmap(activity: pd.DataFrame, account_order: Sequence[str], flagged_ids: set[str]) -> tuple[str, str]:
    """Timeline (accounts × hours over the scan) and hour-of-day profile for the top accounts.

    ``activity`` has columns ``account_id``, ``hour`` (epoch seconds of the hour
    start) and ``n_events``.  Rows follow ``account_order`` (highest score
    first); accounts in the activity table but not in the order come last.
    Returns the data URI and a note on binning/truncation (empty if none).

    Example:
        >>> df = pd.DataFrame({"account_id": ["a", "a"], "hour": [0.0, 3600.0], "n_events": [3, 5]})
        >>> uri, note = activity_heatmap(df, ["a"], {"a"})
    """
    with matplotlib.rc_context(_RC):
        if activity is None or activity.empty:
            return _empty(_new_figure(7.2, 1.2), "no activity data for the top accounts"), ""
        act = activity[["account_id", "hour", "n_events"]].copy()
        act["account_id"] = act["account_id"].astype(str)
        act = act[np.isfinite(act["hour"].astype(float)) & (act["n_events"] > 0)]
        if act.empty:
            return _empty(_new_figure(7.2, 1.2), "no activity data for the top accounts"), ""
        present = set(act["account_id"])
        order = [a for a in dict.fromkeys(map(str, account_order)) if a in present]
        order += sorted(present - set(order))
        notes = []
        if len(order) > MAX_ACTIVITY_ROWS:
            notes.append(f"top {MAX_ACTIVITY_ROWS} of {len(order)} accounts shown")
            order = order[:MAX_ACTIVITY_ROWS]
        act = act[act["account_id"].isin(order)]
        row_of = {a: i for i, a in enumerate(order)}
        rows = act["account_id"].map(row_of).to_numpy()
        hours = (act["hour"].astype(float).to_numpy() // 3600).astype(np.int64)
        counts = act["n_events"].astype(float).to_numpy()

        # Timeline: one column per hour, coarser bins only when the scan is long.
        first_hour, last_hour = int(hours.min()), int(hours.max())
        span_hours = last_hour - first_hour + 1
        bin_hours = 1
        for candidate in (1, 2, 3, 6, 12, 24, 48, 168):
            bin_hours = candidate
            if span_hours / candidate <= MAX_TIMELINE_COLUMNS:
                break
        if bin_hours > 1:
            notes.append(f"timeline binned to {bin_hours} h")
        n_cols = int(np.ceil(span_hours / bin_hours))
        timeline = np.zeros((len(order), n_cols))
        np.add.at(timeline, (rows, (hours - first_hour) // bin_hours), counts)
        # Hour-of-day profile: share of each account's events per UTC hour.
        profile = np.zeros((len(order), 24))
        np.add.at(profile, (rows, hours % 24), counts)
        profile = profile / np.maximum(profile.sum(axis=1, keepdims=True), 1)

        height = 1.0 + 0.22 * len(order)
        fig = _new_figure(7.6, height)
        grid = fig.add_gridspec(1, 2, width_ratios=[4.2, 1.2])
        ax_time = fig.add_subplot(grid[0, 0])
        ax_hour = fig.add_subplot(grid[0, 1], sharey=ax_time)
        masked = np.ma.masked_less_equal(timeline, 0)
        cmap = ACTIVITY_CMAP.with_extremes(bad="white")  # hours without events stay blank
        start_s, end_s = first_hour * 3600, (first_hour + n_cols * bin_hours) * 3600
        x_edges = (np.arange(n_cols + 1) * bin_hours + first_hour) * 3600 / 86400.0  # days since epoch
        ax_time.pcolormesh(
            x_edges,
            np.arange(len(order) + 1),
            masked,
            cmap=cmap,
            norm=LogNorm(vmin=1, vmax=max(float(timeline.max()), 2.0)),
            rasterized=True,
        )
        ax_time.xaxis_date()  # matplotlib dates are days since 1970-01-01 by default
        ax_time.set_xlim(start_s / 86400.0, end_s / 86400.0)
        locator = matplotlib.dates.AutoDateLocator(maxticks=8)
        ax_time.xaxis.set_major_locator(locator)
        ax_time.xaxis.set_major_formatter(matplotlib.dates.ConciseDateFormatter(locator))
        ax_time.set_yticks(np.arange(len(order)) + 0.5)
        ax_time.set_yticklabels([("● " if a in flagged_ids else "") + _short(a) for a in order], fontsize=7.5)
        ax_time.set_ylim(len(order), 0)
        ax_time.set_title(f"events per {bin_hours} h (UTC, log colour scale)" if bin_hours > 1 else "events per hour (UTC, log colour scale)", loc="left")
        for side in ("top", "right", "left", "bottom"):
            ax_time.spines[side].set_visible(False)
        ax_time.tick_params(axis="y", length=0)

        ax_hour.pcolormesh(np.arange(25), np.arange(len(order) + 1), profile, cmap=ACTIVITY_CMAP, vmin=0, rasterized=True)
        ax_hour.set_xticks([0, 6, 12, 18, 24])
        ax_hour.set_title("share by hour of day", loc="left")
        ax_hour.tick_params(axis="y", labelleft=False, length=0)
        for side in ("top", "right", "left", "bottom"):
            ax_hour.spines[side].set_visible(False)
        return _to_data_uri(fig), "; ".join(notes)
