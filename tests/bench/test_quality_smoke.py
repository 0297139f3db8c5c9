"""A small end-to-end run of the quality benchmark (a smoke test, not a quality gate)."""

from __future__ import annotations

import json

from distillguard.bench.quality import benchmark_page, run_quality_bench


def test_small_benchmark_writes_results_table_and_plot(tmp_path):
    rows = run_quality_bench(tmp_path, ["naive_bulk"], scale=0.05, corpora="bundled")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["scenario"] for r in saved] == ["naive_bulk"]
    row = rows[0]
    for key in ("distillguard", "volume_z", "rate_limit", "prada", "mmd", "campaign_recall", "hard_negative_fp"):
        assert key in row
    assert 0.0 <= row["distillguard"]["auc"] <= 1.0
    assert "detection" in row and all(0.0 <= d["share"] <= 1.0 for d in row["detection"].values())
    for plot in ("roc.png", "harvested.png"):
        assert (tmp_path / plot).read_bytes()[:4] == b"\x89PNG"
    assert row["peak_tree_rss_mb"] > row["scan_peak_rss_mb"] > 0 and " MB |" in (tmp_path / "results.md").read_text()
    assert "| naive_bulk |" in (tmp_path / "results.md").read_text()
    assert "naive_bulk" in benchmark_page(rows, "distillguard bench quality naive_bulk")
    assert "(bm-harvested.png)" in benchmark_page(rows, "distillguard bench quality naive_bulk", plots="bm")


def test_markdown_page_goes_into_a_new_directory_and_an_unwritable_one_fails_before_the_run(tmp_path):
    from typer.testing import CliRunner

    from distillguard.cli import app

    runner = CliRunner()
    page = tmp_path / "docs" / "new" / "bench.md"
    args = ["bench", "quality", "naive_bulk", "--scale", "0.05", "--corpora", "bundled", "--no-replay", "--workdir", str(tmp_path / "w")]
    res = runner.invoke(app, [*args, "--markdown", str(page)])
    assert res.exit_code == 0, res.output
    assert "| naive_bulk |" in page.read_text()
    assert (page.parent / "bench-roc.png").read_bytes()[:4] == b"\x89PNG"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args[-1] = str(tmp_path / "w2")
    res = runner.invoke(app, [*args, "--markdown", str(blocker / "bench.md")])
    assert res.exit_code != 0 and "cannot write the markdown page" in res.output
    assert not (tmp_path / "w2").exists()  # failed before simulating anything
