"""Portable SQL snippets shared by the feature and linking queries (DuckDB and Spark SQL alike).

Example:
    >>> import duckdb
    >>> round(duckdb.sql(f"SELECT {fixed_sum('x')} FROM (VALUES (0.1::DOUBLE), (0.2), (0.3)) t(x)").fetchall()[0][0], 9)
    0.6
    >>> duckdb.sql(f"SELECT {exact_cv('x')} FROM (VALUES (2.0::DOUBLE), (2.0), (2.0)) t(x)").fetchall()[0][0]
    0.0
    >>> duckdb.sql(f"SELECT {exact_sum('x')}, {exact_stddev_samp('x')} FROM (VALUES (1.0::DOUBLE), (3.0)) t(x)").fetchall()[0]
    (4.0, 1.4142135623730951)
"""

from __future__ import annotations

#: Steps of a fixed-point sum: 2**-32, far below anything a threshold or a model can tell apart.
FIXED_POINT = 2**32


def fixed_sum(expr: str) -> str:
    """SQL of ``sum(expr)`` taken in fixed point: the same double whatever order the rows are added in.

    A parallel aggregate adds a group's rows in an order that varies from run to run, so a float
    ``sum`` can differ by an ulp between two runs over the same rows; fed to Leiden or to a rank, an
    ulp can change a finding.  Integer sums are exact.  ``|expr|`` times the rows of a group must
    stay under 2**31 (BIGINT terms of 2**32 steps).
    """
    return f"(sum(CAST(round(({expr}) * {FIXED_POINT}) AS BIGINT)) / {float(FIXED_POINT)!r})"


#: Steps of ``exact_cv``'s integer sums: a microsecond when the values are seconds.
CV_STEPS = 10**6

_EXACT = "DECIMAL(38,0)"  # 128-bit integers in DuckDB and Spark alike


def _exact_moments(expr: str, steps: int) -> tuple[str, str, str]:
    """SQL of the count of ``expr`` and of the 128-bit sums of it and of its square, in ``1 / steps`` steps."""
    step = f"CAST(round(({expr}) * {steps}) AS {_EXACT})"
    return f"count({expr})", f"sum({step})", f"sum({step} * {step})"


def exact_cv(expr: str) -> str:
    """SQL of the sample coefficient of variation of ``expr`` (``stddev_samp / avg``) from exact sums.

    ``expr`` is rounded to ``1 / CV_STEPS`` and the count, the sum and the sum of squares are taken
    as 128-bit integers, so the result is the same double in any row order (``stddev_samp`` is a
    float aggregate whose last bit follows the order a parallel plan adds rows in), and equal values
    give exactly 0.  NULL with fewer than two values or a zero mean.  ``expr`` must be non-negative
    (gaps between ordered timestamps): the sum of squares is then at most the squared sum, and
    rows times squared sum stays in 128 bits (~10**38) for a billion gaps over ten years in seconds.
    """
    n, s1, s2 = _exact_moments(expr, CV_STEPS)
    spread = f"CAST({n} * {s2} - {s1} * {s1} AS DOUBLE)"
    return f"(sqrt({spread} * {n} / nullif({n} - 1, 0)) / nullif(CAST({s1} AS DOUBLE), 0))"


#: Steps of ``exact_stddev_samp``'s sum of squares: coarser than ``FIXED_POINT`` so that squares of
#: large values (``exp`` of a score) times many rows stay in 128 bits.
STDDEV_STEPS = 2**16


def exact_sum(expr: str, steps: int = FIXED_POINT) -> str:
    """SQL of ``sum(expr)`` in fixed point with 128-bit accumulators: the same double in any row order.

    Like :func:`fixed_sum` (``1 / steps`` steps), without its 64-bit bound: ``|expr|`` times the
    rows may reach ~10**28 (``exp`` of any plausible score over a billion rows).
    """
    return f"(CAST(sum(CAST(round(({expr}) * {steps}) AS {_EXACT})) AS DOUBLE) / {float(steps)!r})"


def exact_stddev_samp(expr: str) -> str:
    """SQL of ``stddev_samp(expr)`` from 128-bit sums of ``expr`` in ``1 / STDDEV_STEPS`` steps: the same
    double in any row order; NULL with fewer than two rows.

    The sums are exact; the variance is formed from them in double precision (``(S2 - S1**2 / n) /
    (n - 1)``, floored at 0), which loses digits when the spread is tiny beside the mean, and
    is deterministic because its inputs are.  For an upper confidence bound, not a test statistic.
    The sum of squares must stay in 128 bits: ``sum((expr * 2**16)**2) < 1.7e38``, e.g. ``exp`` of
    scores up to 20 over ten million rows (the shipped harvest profiles score at most 4.5).
    """
    n, s1, s2 = _exact_moments(expr, STDDEV_STEPS)
    s1, s2 = f"CAST({s1} AS DOUBLE)", f"CAST({s2} AS DOUBLE)"
    variance = f"greatest(({s2} - {s1} * {s1} / {n}) / ({n} - 1), 0.0)"
    return f"(CASE WHEN {n} > 1 THEN sqrt({variance}) / {float(STDDEV_STEPS)!r} END)"
