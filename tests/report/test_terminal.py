"""Terminal summary and progress bar."""

from __future__ import annotations

import io

from rich.console import Console

from distillguard.findings import AccountFinding, ScanSummary
from distillguard.report import print_summary, progress_bar

from .factories import make_finding, make_summary


def _recording_console(width: int = 120) -> Console:
    return Console(record=True, width=width, file=io.StringIO(), color_system=None)


def test_table_lists_top_accounts_in_score_order():
    findings = [make_finding(f"acct-{i:03d}", 0.81 + i * 0.01) for i in range(10)]
    findings.append(make_finding("benign-1", 0.2, flagged=False))
    console = _recording_console()
    print_summary(findings, make_summary(n_flagged=10), console, top=5)
    text = console.export_text()
    shown = [f"acct-{i:03d}" for i in range(9, 4, -1)]
    for account_id in shown:
        assert account_id in text
    assert "acct-004" not in text and "benign-1" not in text
    positions = [text.index(a) for a in shown]
    assert positions == sorted(positions)
    assert "Reasoning-trace coercion" in text
    assert "5 more flagged accounts" in text
    assert "10 of 1,000 accounts flagged at threshold 0.80" in text


def test_table_fits_an_80_column_terminal():
    console = _recording_console(width=80)
    print_summary([make_finding("acct-0001", 0.95)], make_summary(n_flagged=1), console)
    text = console.export_text()
    assert "acct-0001" in text and "0.950" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_falls_back_on_signals_without_evidence():
    console = _recording_console()
    print_summary([make_finding(evidence=[])], make_summary(n_flagged=1), console)
    assert "reasoning_elicit_share (p99.6)" in console.export_text()


def test_account_ids_are_not_parsed_as_markup():
    console = _recording_console()
    print_summary([AccountFinding("[bold]x[/bold]", 0.9, True)], make_summary(n_flagged=1), console)
    assert "[bold]x[/bold]" in console.export_text()


def test_zero_flagged_prints_a_verdict():
    console = _recording_console()
    summary = ScanSummary(500, 40, 0, 0.8)
    print_summary([AccountFinding("acct-9", 0.42, False)], summary, console)
    text = console.export_text()
    assert "No account was flagged at threshold 0.80" in text
    assert "Highest score: 0.420 (acct-9)" in text


def test_progress_bar_is_silent_but_counts_off_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False)
    with progress_bar(1000, "scanning", console=console) as bar:
        for _ in range(10):
            bar.advance(100)
        bar(5)  # usable as a plain callback
    assert out.getvalue() == ""
    assert bar.completed == 1005
    assert bar.rate > 0


def test_progress_bar_renders_on_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with progress_bar(None, "reading [logs].jsonl", console=console) as bar:
        bar.advance(2500)
        bar.set_total(2500)
    text = out.getvalue()
    assert "reading [logs].jsonl" in text
    assert "ev/s" in text
    assert bar.completed == 2500
