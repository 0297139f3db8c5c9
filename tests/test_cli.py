"""The command as a user runs it: exit codes, outputs, and clear errors for bad input."""

from __future__ import annotations

import gzip
import subprocess
import sys

import orjson
import pytest
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.errors import InputError
from distillguard.findings import FINDINGS_SCHEMA_VERSION
from distillguard.privacy import Hasher
from distillguard.simulate import run_scenario
from distillguard.store.duckdb import DuckDBStore

runner = CliRunner()


@pytest.fixture(scope="module")
def small_sim(tmp_path_factory):
    return run_scenario("demo", tmp_path_factory.mktemp("sim"), seed=3, corpora="bundled", scale=0.08)


def test_scan_writes_findings_and_flags_planted_campaigns(small_sim, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["scan", str(small_sim.traffic), "--accounts", str(small_sim.accounts_file), "--out", str(out)])
    assert res.exit_code == 0, res.output
    accounts = [orjson.loads(line) for line in (out / "accounts.jsonl").read_bytes().splitlines()]
    labels = {r["account_id"]: r for r in map(orjson.loads, small_sim.labels.read_bytes().splitlines())}
    assert {a["account_id"] for a in accounts} == set(labels)
    flagged = [a for a in accounts if a["flagged"]]
    attack_flagged = [a for a in flagged if labels[a["account_id"]]["is_attack"]]
    assert attack_flagged, "at least one planted harvesting account is flagged"
    assert all(a["evidence"] and a["signals"] for a in flagged)
    assert len(attack_flagged) >= 0.8 * len(flagged)
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["n_accounts"] == len(accounts) and summary["schema_version"] == FINDINGS_SCHEMA_VERSION == 3
    assert summary["secret_fingerprint"] == Hasher.from_config().fingerprint  # what a gateway checks its secret against
    assert "<html" in (out / "report.html").read_text().lower()


def test_the_scan_closes_its_store_for_other_processes_and_reports_a_failed_close(small_sim, tmp_path, monkeypatch):
    out = tmp_path / "out"
    res = runner.invoke(app, ["scan", str(small_sim.traffic), "--out", str(out)])
    assert res.exit_code == 0, res.output
    # closed and checkpointed: another process opens the file and finds every event
    count = subprocess.run(
        [sys.executable, "-c", f"import duckdb; print(duckdb.connect({str(out / 'distillguard.duckdb')!r}, read_only=True)"
                               ".execute('SELECT count(*) FROM events').fetchall()[0][0])"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert int(count.stdout) == small_sim.events

    def fail(self):
        raise InputError(self.path, "disk full")

    monkeypatch.setattr(DuckDBStore, "close", fail)
    res = runner.invoke(app, ["scan", str(small_sim.traffic), "--out", str(tmp_path / "again")])
    assert res.exit_code != 0 and "disk full" in res.output
    assert (tmp_path / "again" / "report.html").exists()  # the report was drawn while the store closed


def test_rescanning_the_same_file_adds_no_events(small_sim, tmp_path):
    out = tmp_path / "out"
    for _ in range(2):
        res = runner.invoke(app, ["scan", str(small_sim.traffic), "--out", str(out), "--no-report"])
        assert res.exit_code == 0, res.output
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["n_events"] == small_sim.events and summary["duplicates_skipped"] == small_sim.events


def test_two_scans_of_the_same_log_write_the_same_findings(small_sim, tmp_path):
    """Ties are ordered by account id and linking sums are order-free: an analyst can re-run a scan."""
    written = []
    for name in ("one", "two"):
        out = tmp_path / name
        res = runner.invoke(app, ["scan", str(small_sim.traffic), "--out", str(out), "--no-report"])
        assert res.exit_code == 0, res.output
        written.append({f: (out / f).read_bytes() for f in ("accounts.jsonl", "clusters.jsonl")})
    assert written[0] == written[1]
    scores = [orjson.loads(line)["score"] for line in written[0]["accounts.jsonl"].splitlines()]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) < len(scores)  # ties exist and were ordered


def test_malformed_lines_are_quarantined_not_fatal(small_sim, tmp_path):
    good = gzip.decompress(small_sim.traffic.read_bytes()).splitlines()[:200]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b"\n".join(good[:100] + [b"{not json", b'{"id": "x", "startTime": "yesterday"}'] + good[100:]) + b"\n")
    out = tmp_path / "out"
    res = runner.invoke(app, ["scan", str(mixed), "--out", str(out), "--no-report"])
    assert res.exit_code == 0, res.output
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["quarantined"] == 2 and summary["n_events"] == 200
    lines = [orjson.loads(x) for x in (out / "quarantine.jsonl").read_bytes().splitlines()]
    assert [q["line"] for q in lines] == [101, 102]
    assert lines[1]["field"] == "startTime"


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"hello,world\n1,2\n", "mapping"), (b'{"foo": 1}\n', "format")],
)
def test_unusable_inputs_exit_2_naming_the_file(tmp_path, content, message):
    bad = tmp_path / ("bad.csv" if b"," in content else "bad.jsonl")
    bad.write_bytes(content)
    res = runner.invoke(app, ["scan", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert str(bad.name) in res.output and message in res.output.lower()


def test_missing_file_and_rules_test_command(tmp_path):
    res = runner.invoke(app, ["scan", str(tmp_path / "nope.jsonl")])
    assert res.exit_code == 2 and "not found" in res.output
    res = runner.invoke(app, ["rules", "test"])
    assert res.exit_code == 0 and "0 failed" in res.output


def test_scan_links_campaign_accounts_into_clusters(small_sim, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["scan", str(small_sim.traffic), "--accounts", str(small_sim.accounts_file), "--out", str(out)])
    assert res.exit_code == 0, res.output
    labels = {r["account_id"]: r for r in map(orjson.loads, small_sim.labels.read_bytes().splitlines())}
    clusters = [orjson.loads(line) for line in (out / "clusters.jsonl").read_bytes().splitlines()]
    flagged = [c for c in clusters if c["flagged"]]
    assert flagged, "the planted campaigns form at least one flagged cluster"
    for c in flagged:
        assert c["bound"] and c["evidence"]
        attack = sum(labels[a]["is_attack"] for a in c["account_ids"])
        assert attack >= 0.8 * c["n_accounts"]
    accounts = {a["account_id"]: a for a in map(orjson.loads, (out / "accounts.jsonl").read_bytes().splitlines())}
    member = flagged[0]["account_ids"][0]
    assert accounts[member]["cluster_id"] == flagged[0]["cluster_id"]
    graph = orjson.loads((out / "graph.json").read_bytes())
    assert graph["nodes"] and graph["edges"]


def test_ingest_command_loads_logs_and_accounts_once(small_sim, tmp_path):
    from distillguard.store.duckdb import DuckDBStore

    db = tmp_path / "s.duckdb"
    args = ["ingest", str(small_sim.traffic), "--store", str(db), "--accounts", str(small_sim.accounts_file), "--parquet", str(tmp_path / "pq")]
    for _ in range(2):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
    assert f"{small_sim.events:,} already stored" in res.output
    store = DuckDBStore(db)
    assert store.query("SELECT count(*) FROM events").column(0)[0].as_py() == small_sim.events
    assert store.query("SELECT count(*) FROM accounts").column(0)[0].as_py() == small_sim.accounts
    assert (tmp_path / "pq" / "events.parquet").exists()
