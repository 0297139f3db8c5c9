import random

import numpy as np

from distillguard.simulate.timing import DAY, SCENARIO_START, closed_loop_times, hour_weights, paced_times, poisson_times, think_time


def test_business_profile_quiet_at_night_and_weekend():
    w = hour_weights(SCENARIO_START, 7, 0, "business")
    assert w[10] > 10 * w[3]  # Monday 10:00 vs 03:00
    assert w[5 * 24 + 10] < 0.2 * w[10]  # Saturday


def test_poisson_times_sorted_and_in_window():
    rng = np.random.default_rng(0)
    ts = poisson_times(rng, SCENARIO_START, hour_weights(SCENARIO_START, 2, 8, "human"), 1000)
    assert 800 < ts.size < 1200 and (np.diff(ts) >= 0).all()
    assert ts.min() >= SCENARIO_START and ts.max() < SCENARIO_START + 2 * DAY


def test_paced_and_closed_loop():
    rng = np.random.default_rng(1)
    ts = paced_times(rng, 0, 1000, 1.0, 0.1)
    assert 900 < ts.size < 1100 and np.std(np.diff(ts)) < 0.2
    cl = closed_loop_times(rng, 0, 100, 4, 1.0)
    assert (np.diff(cl) >= 0).all() and 250 < cl.size < 550


def test_think_time_positive():
    r = random.Random(0)
    assert all(think_time(r, 800, 50) > 3 for _ in range(100))
