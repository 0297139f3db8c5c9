"""The HTML report: self-contained, complete for flagged accounts, safe with hostile text, bounded in size."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from distillguard.findings import AccountFinding, Evidence, ScanSummary
from distillguard.report import render_html, write_html
from distillguard.report.html import MAX_CARDS, fmt_compact, fmt_duration, fmt_time, verdict

from .factories import HOSTILE_PROMPT, build_scan, make_finding, make_summary

EMPTY = pd.DataFrame()


@pytest.fixture(scope="module")
def scan() -> dict:
    return build_scan(n_accounts=600, n_flagged=6, n_activity=10)


@pytest.fixture(scope="module")
def page(scan) -> str:
    return render_html(**scan)


class _Resources(HTMLParser):
    """Collects what a browser would act on: tag names, URL-bearing attributes, CSS url()/@import."""

    URL_ATTRIBUTES = {"src", "href", "srcset", "action", "formaction", "poster", "data", "background", "xlink:href"}

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.urls: list[str] = []
        self.event_handlers: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in self.URL_ATTRIBUTES and value:
                self.urls.append(value)
            if name.startswith("on"):
                self.event_handlers.append(name)
            if name == "style" and value:
                self.urls += re.findall(r"url\(\s*['\"]?([^)'\"]+)", value)

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.urls += re.findall(r"url\(\s*['\"]?([^)'\"]+)", data)
            self.urls += re.findall(r"@import\s+['\"]?([^'\";]+)", data)


def _parse(html: str) -> _Resources:
    parser = _Resources()
    parser.feed(html)
    return parser


def _external_references(html: str) -> list[str]:
    """Every URL the page would load or navigate to, other than in-page anchors and our inline PNGs."""
    return [u for u in _parse(html).urls if not u.startswith(("#", "data:image/png;base64,"))]


def test_page_is_self_contained(page):
    assert _external_references(page) == []
    parsed = _parse(page)
    assert not parsed.tags & {"script", "link", "iframe", "object", "embed", "base"}
    assert parsed.event_handlers == []
    assert "Content-Security-Policy" in page


def test_plots_are_inline_pngs(page):
    images = re.findall(r'<img[^>]+src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    # score histogram, volume scatter, activity heatmap at least (cards draw their percentile bars in CSS)
    assert len(images) >= 3
    for encoded in images:
        assert base64.b64decode(encoded)[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_flagged_account_is_listed_with_a_card(scan, page):
    for finding in scan["findings"]:
        assert finding.account_id in page
    assert page.count('class="card"') == len(scan["findings"])
    assert "Reasoning-trace coercion" in page
    assert "p99.6" in page  # a signal percentile
    assert 'class="pct-bar pct-' in page and 'style="width: 99.6%"' in page  # drawn as a bar
    assert "2026-01-01 03:00 UTC" in page  # first seen, in UTC


def test_summary_header_shows_the_scan(scan, page):
    s = scan["summary"]
    assert f"{s.n_events:,}" in page
    assert f"{s.n_accounts:,}" in page
    assert "out/quarantine.jsonl" in page
    assert "default-2026.02" in page
    assert "2026-01-01 00:00 UTC → 2026-02-11 00:00 UTC" in page
    assert "How to read this report" in page
    assert "ingest 12.4 s" in page


def test_sub_stage_timings_are_not_double_counted():
    summary = make_summary(n_events=10_000, timings_s={"ingest": 4.0, "ingest.read": 3.0, "features": 1.0})
    page = render_html([], summary, EMPTY, EMPTY)
    assert "2,000 events/s" in page  # 10,000 events over 4 s + 1 s, not 8 s
    assert "ingest.read 3.0 s" in page


def test_clusters_section_appears_only_when_given(scan, page):
    assert 'id="campaigns"' in page
    assert "template (40)" in page and "ip_prefix (12)" in page
    assert "7 of 8 accounts share prompt templates" in page and "best member alone 0.410" in page
    without = render_html(scan["findings"][:1], scan["summary"], EMPTY, EMPTY, clusters=None)
    assert 'id="campaigns"' not in without


def test_hostile_text_is_escaped_everywhere():
    hostile_id = '<script>alert("id")</script>'
    findings = [
        make_finding(
            hostile_id,
            0.99,
            sample_prompts=[HOSTILE_PROMPT, "x" * 50_000],
            cluster_id='"><script>alert(2)</script>',
            evidence=[Evidence("rules", "<b>title</b>", "detail <iframe src=x>", 0.5)],
        )
    ]
    clusters = [
        {
            "cluster_id": "c<script>",
            "score": 0.9,
            "n_accounts": 1,
            "account_ids": [hostile_id],
            "edge_types": ["<svg onload=alert(3)>"],
            "est_exchanges": 10,
            "sample_prompts": [HOSTILE_PROMPT],
        }
    ]
    page = render_html(findings, make_summary(n_flagged=1), EMPTY, EMPTY, clusters)
    parsed = _parse(page)
    assert not parsed.tags & {"script", "iframe", "svg", "b"}
    assert parsed.event_handlers == []
    assert _external_references(page) == []  # the prompt's <img src="https://evil..."> is text, not a tag
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(&#34;id&#34;)&lt;/script&gt;" in page
    # A 50,000-character prompt is cut, not pasted whole.
    assert "x" * 600 not in page and "x" * 500 in page


def test_zero_flagged_accounts():
    scan = build_scan(n_accounts=400, n_flagged=0, n_activity=5)
    page = render_html(**scan)
    assert "No account was flagged at threshold 0.80" in page
    assert 'class="card"' not in page
    assert 'id="details"' not in page
    assert _external_references(page) == []


def test_no_population_no_activity_no_findings():
    page = render_html([], ScanSummary(0, 0, 0, 0.5), EMPTY, EMPTY)
    assert "No account was flagged at threshold 0.50" in page
    assert _external_references(page) == []


def test_population_with_open_ended_columns_and_no_volume():
    population = pd.DataFrame(
        {"account_id": ["a", "b", "c"], "score": [0.1, 0.2, 0.95], "tool_trace_share": [0.0, 0.1, 0.9]}
    )
    finding = AccountFinding("c", 0.95, True, n_events=12)
    page = render_html([finding], make_summary(n_flagged=1), population, EMPTY)
    assert "tool_trace_share" in page  # feature reference lists whatever columns come in
    assert "Volume against score" not in page  # no n_events column, so no scatter


def test_large_population_stays_small_and_lists_only_flagged():
    scan = build_scan(n_accounts=20_000, n_flagged=60, n_activity=50)
    page = render_html(**scan)
    assert len(page.encode("utf-8")) < 3_000_000
    assert page.count('class="card"') == MAX_CARDS
    assert page.count('<td class="num muted">') == 60  # ranked table rows: flagged only, not 20,000
    assert "user-000123" not in page  # benign accounts appear only in aggregate
    assert all(f.account_id in page for f in scan["findings"])
    assert "heaviest plus a random sample" in page  # the scatter says it was downsampled


def test_write_html(tmp_path):
    path = write_html(tmp_path / "out" / "report.html", [], ScanSummary(0, 0, 0, 0.8), EMPTY, EMPTY)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not list(path.parent.glob("*.tmp"))


def test_formatting_helpers():
    assert fmt_compact(1_730_000) == "1.73M"
    assert fmt_compact(950) == "950"
    assert fmt_duration(41 * 86400) == "41.0 days"
    assert fmt_time(1_767_225_600) == "2026-01-01 00:00 UTC"
    assert fmt_time(None) == "–"
    assert verdict([], ScanSummary(10, 2, 0, 0.8)).startswith("No account was flagged")
