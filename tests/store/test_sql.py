"""Portable SQL snippets: a fixed-point sum does not depend on the order of the rows."""

from __future__ import annotations

import duckdb
import pytest

from distillguard.store.sql import fixed_sum


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
