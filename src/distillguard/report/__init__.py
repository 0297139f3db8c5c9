"""Human-facing output of a scan: the self-contained HTML report and the terminal summary.

``render_html`` / ``write_html`` are imported lazily, so that a CLI that only
wants the progress bar or the terminal table does not pay for matplotlib.

Example:
    >>> from distillguard.report import write_html, print_summary, progress_bar  # doctest: +SKIP
    >>> write_html("out/report.html", findings, summary, population, activity)  # doctest: +SKIP
    >>> print_summary(findings, summary)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from distillguard.report.terminal import print_summary, progress_bar

__all__ = ["print_summary", "progress_bar", "render_html", "write_html"]


def __getattr__(name: str) -> Any:
    if name in ("render_html", "write_html"):
        from distillguard.report import html

        return getattr(html, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
