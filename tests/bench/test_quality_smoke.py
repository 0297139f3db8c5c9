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
