"""Portable SQL snippets shared by the feature and linking queries (DuckDB and Spark SQL alike).

Example:
    >>> import duckdb
    >>> round(duckdb.sql(f"SELECT {fixed_sum('x')} FROM (VALUES (0.1::DOUBLE), (0.2), (0.3)) t(x)").fetchall()[0][0], 9)
    0.6
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
