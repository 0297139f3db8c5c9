"""Plot functions: valid PNGs, honest notes about downsampling and binning, graceful when empty."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd

from distillguard.report import plots

from .factories import PERIOD_START


def _png(uri: str) -> bytes:
    assert uri.startswith("data:image/png;base64,")
    data = base64.b64decode(uri.split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


def test_score_distribution_handles_empty_and_nan():
    _png(plots.score_distribution(np.array([]), np.array([], dtype=bool), 0.8))
    _png(plots.score_distribution(np.array([0.1, np.nan, 0.9]), np.array([False, False, True]), 0.8))


def test_scatter_keeps_every_flagged_and_the_heaviest_benign():
    rng = np.random.default_rng(1)
    n = 50_000
    volume = rng.lognormal(3, 1.5, n)
    flagged = np.zeros(n, dtype=bool)
    flagged[:25] = True
    idx, note = plots._downsample_for_scatter(volume, flagged)
    assert set(np.flatnonzero(flagged)) <= set(idx)
    assert np.argmax(np.where(flagged, -1, volume)) in idx  # heaviest benign account is drawn
    assert len(idx) <= plots.MAX_BENIGN_POINTS + plots.MAX_HEAVY_BENIGN_POINTS + 25
    assert "all 25 flagged" in note


def test_small_scatter_is_not_downsampled():
    uri, note = plots.volume_vs_score(np.array([3, 4000]), np.array([0.95, 0.05]), np.array([True, False]), 0.8)
    _png(uri)
    assert note == ""


def test_activity_heatmap_bins_long_periods_and_caps_rows():
    hours = PERIOD_START + 3600.0 * np.arange(0, 24 * 365, 5)
    activity = pd.DataFrame(
        {
            "account_id": np.repeat([f"a{i}" for i in range(40)], 1)[np.arange(hours.size) % 40],
            "hour": hours,
            "n_events": 1,
        }
    )
    uri, note = plots.activity_heatmap(activity, ["a3", "a1"], {"a3"})
    _png(uri)
    assert "binned" in note and "top 30 of 40 accounts" in note


def test_activity_heatmap_without_rows():
    uri, note = plots.activity_heatmap(pd.DataFrame(columns=["account_id", "hour", "n_events"]), [], set())
    _png(uri)
    assert note == ""

