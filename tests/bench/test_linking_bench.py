"""``distillguard bench linking --small``: the synthetic store is linked, campaigns recovered, NATs left alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from distillguard.bench.linking import SMALL, synthetic_tables
from distillguard.cli import app
from distillguard.schema import EVENT_SCHEMA


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("linking-bench")
    res = CliRunner().invoke(app, ["bench", "linking", "--small", "--workdir", str(workdir)])
    assert res.exit_code == 0, res.output
    return res.output, json.loads((workdir / "linking.json").read_text())


def test_small_run_reports_every_stage_with_time_and_memory(small_run):
    output, result = small_run
    assert (result["accounts"], result["events"]) == SMALL
    for stage in ("build", "features", "scoring", "linking"):
        assert result["stages"][stage]["wall_s"] > 0
        assert result["stages"][stage]["peak_rss_mb"] > 50
    assert set(result["linking_substages_s"]) == {"edges", "leiden", "pooled_scoring"}
    assert result["linking_events_per_s"] > 0
    assert "linking" in output and "campaign recall" in output


def test_campaigns_are_recovered_as_flagged_clusters(small_run):
    _, result = small_run
    q = result["quality"]
    assert len(q["campaigns"]) == 4
    assert q["campaign_recall"] == 1.0
    for campaign in q["campaigns"]:
        assert campaign["in_flagged_cluster"] >= 0.95, campaign
        assert campaign["largest_cluster_share"] >= 0.9, campaign  # one campaign, one cluster


def test_nat_and_reseller_users_are_not_linked_into_flagged_clusters(small_run):
    _, result = small_run
    q = result["quality"]
    assert q["nat_accounts"] > 100 and q["reseller_accounts"] > 0
    for role in ("nat", "reseller", "benign"):
        assert q[f"{role}_in_flagged_cluster"] == 0, role
        assert q[f"{role}_lifted"] == 0, role
    assert q["flagged_clusters"] == len(q["campaigns"])


def test_synthetic_tables_are_seeded_and_shaped():
    pop, accounts, chunks = synthetic_tables(500, 20_000, seed=3, chunk=7_000)
    batches = list(chunks)
    assert sum(b.num_rows for b in batches) == 20_000 == pop.n_events.sum()
    assert batches[0].schema == EVENT_SCHEMA and accounts.num_rows == 500
    ts = np.concatenate([b.column("ts").to_numpy() for b in batches])
    assert (np.diff(ts) >= 0).all()  # time-ordered, like a log
    _, _, again = synthetic_tables(500, 20_000, seed=3, chunk=7_000)
    assert next(again).equals(batches[0])
    assert set(np.unique(pop.role)) == {0, 1, 2, 3}
