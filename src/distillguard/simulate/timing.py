"""When requests happen: diurnal and weekly cycles, sessions, think time, machine pacing.

All timestamps are epoch seconds (UTC).  Profiles are 24 weights over *local*
hours; :func:`hour_weights` lays a profile over the scenario's UTC hours for a
given timezone, and :func:`poisson_times` draws a non-homogeneous Poisson
process from those weights (vectorized, so a persona with 100k events costs
milliseconds).

Example:
    >>> import numpy as np
    >>> w = hour_weights(SCENARIO_START, 7, tz=-5, profile="human")
    >>> ts = poisson_times(np.random.default_rng(0), SCENARIO_START, w, expected=100)
    >>> bool((np.diff(ts) >= 0).all())
    True
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timezone

import numpy as np

#: Monday 2025-03-03 00:00 UTC: default scenario start.
SCENARIO_START = datetime(2025, 3, 3, tzinfo=timezone.utc).timestamp()
DAY = 86400.0
HOUR = 3600.0

#: Relative activity per local hour 0..23.
PROFILES: dict[str, np.ndarray] = {
    # people chatting: low at night, morning ramp, afternoon plateau, evening peak
    "human": np.array([0.25, 0.12, 0.06, 0.04, 0.04, 0.06, 0.15, 0.35, 0.6, 0.8, 0.95, 1.0,
                       0.9, 0.95, 1.0, 0.95, 0.9, 0.85, 0.8, 0.85, 0.9, 0.85, 0.65, 0.45]),
    # office use: 9-18 with a lunch dip
    "business": np.array([0.02, 0.01, 0.01, 0.01, 0.01, 0.02, 0.05, 0.2, 0.6, 0.95, 1.0, 1.0,
                          0.75, 0.9, 1.0, 1.0, 0.9, 0.7, 0.35, 0.2, 0.12, 0.08, 0.05, 0.03]),
    # hobby / student use: evenings and late night
    "evening": np.array([0.55, 0.35, 0.15, 0.07, 0.04, 0.04, 0.06, 0.12, 0.2, 0.3, 0.35, 0.4,
                         0.45, 0.45, 0.45, 0.5, 0.55, 0.65, 0.8, 0.95, 1.0, 1.0, 0.9, 0.75]),
    # consumer app with a global audience: softer cycle
    "consumer": np.array([0.45, 0.35, 0.3, 0.28, 0.3, 0.35, 0.45, 0.6, 0.75, 0.85, 0.9, 0.95,
                          0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 1.0, 1.0, 0.95, 0.8, 0.6]),
    "flat": np.ones(24),
}

#: Weekend multiplier per profile (Saturday and Sunday, local).
WEEKEND: dict[str, float] = {"human": 0.8, "business": 0.12, "evening": 1.15, "consumer": 1.05, "flat": 1.0}


def hour_weights(start_ts: float, days: float, tz: float, profile: str = "human", weekend: float | None = None) -> np.ndarray:
    """Relative activity for each UTC hour of the window ``[start_ts, start_ts + days)``.

    Example:
        >>> hour_weights(SCENARIO_START, 1, 0, "flat").shape
        (24,)
    """
    n = max(1, int(math.ceil(days * 24)))
    hours = start_ts / HOUR + np.arange(n) + tz
    local_hour = np.floor(hours).astype(np.int64) % 24
    # epoch day 0 (1970-01-01) was a Thursday: weekday index Mon=0 is (day + 3) % 7
    local_day = (np.floor(hours / 24).astype(np.int64) + 3) % 7
    w = PROFILES[profile][local_hour].copy()
    w[local_day >= 5] *= WEEKEND[profile] if weekend is None else weekend
    return w


def poisson_times(np_rng: np.random.Generator, start_ts: float, weights: np.ndarray, expected: float) -> np.ndarray:
    """Sorted event times of a Poisson process whose hourly rate follows ``weights``, ``expected`` events in total."""
    total = float(weights.sum())
    if expected <= 0 or total <= 0:
        return np.empty(0)
    counts = np_rng.poisson(weights * (expected / total))
    base = start_ts + np.repeat(np.arange(len(weights)) * HOUR, counts)
    ts = base + np_rng.random(base.size) * HOUR
    ts.sort()
    return ts


def paced_times(np_rng: np.random.Generator, start_ts: float, end_ts: float, rate_per_s: float, jitter: float = 0.1) -> np.ndarray:
    """A dispatcher sending at a steady rate: gaps of 1/rate scaled by (1 +- jitter) noise.

    This is the rhythm of a load-balancing harvester (and of a well-behaved batch job).
    """
    if rate_per_s <= 0 or end_ts <= start_ts:
        return np.empty(0)
    n = int((end_ts - start_ts) * rate_per_s * 1.2) + 16
    gaps = (1.0 / rate_per_s) * np.clip(1.0 + jitter * np_rng.standard_normal(n), 0.05, None)
    ts = start_ts + np.cumsum(gaps)
    return ts[ts < end_ts]


def closed_loop_times(np_rng: np.random.Generator, start_ts: float, end_ts: float, workers: int, mean_latency: float, sigma: float = 0.5,
                      limit: int | None = None) -> np.ndarray:
    """Request times of ``workers`` clients that each send the next request when the last one returns.

    ``limit`` caps the total (a job with a known backlog), which also bounds memory.
    """
    out = []
    span = max(0.0, end_ts - start_ts)
    workers = max(1, workers)
    for _ in range(workers):
        n = int(span / mean_latency * 1.5) + 8
        if limit is not None:
            n = min(n, int(limit / workers * 1.5) + 16)
        gaps = np_rng.lognormal(math.log(mean_latency) - sigma**2 / 2, sigma, n) + 0.02
        ts = start_ts + np_rng.random() * mean_latency + np.cumsum(gaps)
        out.append(ts[ts < end_ts])
    ts = np.concatenate(out) if out else np.empty(0)
    ts.sort()
    return ts[:limit] if limit is not None else ts


def think_time(rng: random.Random, reply_chars: int, next_prompt_chars: int) -> float:
    """Seconds a person takes between getting a reply and sending the next message.

    Reading (skimming ~30 chars/s, capped) plus typing (~4 chars/s; pasted text is fast) with lognormal
    noise; people also get distracted, so a tail reaches tens of minutes.
    """
    read = min(reply_chars / 30.0, 240.0)
    typed = next_prompt_chars / 4.0 if next_prompt_chars < 400 else 20.0 + next_prompt_chars / 200.0
    base = 4.0 + read * rng.uniform(0.2, 1.0) + min(typed, 300.0)
    t = base * rng.lognormvariate(0.0, 0.6)
    if rng.random() < 0.08:
        t += rng.expovariate(1 / 600.0)  # went away and came back
    return t


def generation_latency(rng: random.Random, completion_tokens: int, tokens_per_s: float = 70.0) -> tuple[float, float]:
    """(time to first token, total latency) in seconds for a reply of ``completion_tokens``."""
    ttft = rng.lognormvariate(math.log(0.6), 0.45)
    total = ttft + completion_tokens / (tokens_per_s * rng.uniform(0.7, 1.3))
    return ttft, total
