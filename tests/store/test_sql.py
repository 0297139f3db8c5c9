"""Portable SQL snippets: fixed-point sums and exact coefficients of variation do not depend on the order of the rows."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from distillguard.store.sql import exact_cv, exact_stddev_samp, exact_sum, fixed_sum


def _sum(expr: str, values: tuple[float, ...]) -> float:
    con = duckdb.connect()
    try:
        con.execute("SET threads=1").fetchall()  # rows are added in the order given
        rows = ", ".join(f"({v!r}::DOUBLE)" for v in values)
        return con.execute(f"SELECT {expr} FROM (VALUES {rows}) t(x)").fetchall()[0][0]
    finally:
        con.close()


def test_fixed_sum_is_the_same_in_any_order_where_a_float_sum_is_not():
    forward, backward = (0.1, 0.2, 0.3), (0.3, 0.2, 0.1)
    assert _sum("sum(x)", forward) != _sum("sum(x)", backward)  # the premise: float addition is not associative
    assert _sum(fixed_sum("x"), forward) == _sum(fixed_sum("x"), backward)
    assert _sum(fixed_sum("x"), forward) == pytest.approx(0.6, abs=1e-9)


def test_exact_cv_is_stddev_over_mean_and_the_same_in_any_order():
    rng = np.random.default_rng(7)
    gaps = tuple(float(g) for g in rng.exponential(30.0, 200).round(6))
    expected = np.std(gaps, ddof=1) / np.mean(gaps)
    float_cv = "stddev_samp(x) / avg(x)"
    assert _sum(float_cv, gaps) != _sum(float_cv, gaps[::-1])  # the premise
    forward, backward = _sum(exact_cv("x"), gaps), _sum(exact_cv("x"), gaps[::-1])
    assert forward == backward
    assert forward == pytest.approx(expected, rel=1e-9)


def test_exact_cv_of_equal_values_is_zero_and_of_too_few_or_zero_mean_is_null():
    # 0.1 s gaps as float differences of timestamps: not all equal as doubles, equal to the microsecond
    ts = [1.7e9 + 0.1 * i for i in range(50)]
    gaps = tuple(b - a for a, b in zip(ts, ts[1:]))
    assert len(set(gaps)) > 1
    assert _sum(exact_cv("x"), gaps) == 0.0
    assert _sum(exact_cv("x"), (5.0,)) is None
    assert _sum(exact_cv("x"), (0.0, 0.0)) is None


def test_exact_cv_holds_year_long_gaps():
    year = 365 * 86400.0
    assert _sum(exact_cv("x"), (year, year, 0.0)) == pytest.approx(np.std([year, year, 0], ddof=1) / (2 * year / 3))


def test_exact_sum_and_stddev_are_the_float_ones_and_the_same_in_any_order():
    values = tuple(float(v) for v in np.exp(np.random.default_rng(3).uniform(0, 4.5, 300)))
    assert _sum("sum(x)", values) != _sum("sum(x)", values[::-1])  # the premise
    assert _sum(exact_sum("x"), values) == _sum(exact_sum("x"), values[::-1]) == pytest.approx(sum(values), rel=1e-12)
    forward = _sum(exact_stddev_samp("x"), values)
    assert forward == _sum(exact_stddev_samp("x"), values[::-1]) == pytest.approx(np.std(values, ddof=1), rel=1e-6)
    assert _sum(exact_stddev_samp("x"), (7.5,)) is None
    assert _sum(exact_stddev_samp("x"), (7.5, 7.5, 7.5)) == 0.0


def test_exact_sum_holds_what_a_64_bit_fixed_sum_cannot():
    big = (float(np.exp(20.0)),) * 3  # 4.9e8 each: over fixed_sum's 2**31 bound
    assert _sum(exact_sum("x"), big) == pytest.approx(3 * np.exp(20.0), rel=1e-12)
    assert _sum(exact_stddev_samp("x"), big + (0.0,)) == pytest.approx(np.std(big + (0.0,), ddof=1), rel=1e-9)
