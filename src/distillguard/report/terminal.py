"""The terminal side of a scan: a ranked summary table and a progress bar.

Account ids, evidence titles and signal names are printed as
:class:`rich.text.Text`, never parsed as rich markup, because some of them
(end-user ids in particular) can be chosen by the requester.

Example:
    >>> import io
    >>> from rich.console import Console
    >>> from distillguard.findings import AccountFinding, ScanSummary
    >>> console = Console(file=io.StringIO(), record=True, width=100)
    >>> print_summary([AccountFinding("acct-7", 0.97, True, n_events=120)], ScanSummary(120, 1, 1, 0.8), console)
    >>> "acct-7" in console.export_text()
    True
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from distillguard.findings import AccountFinding, ScanSummary
from distillguard.report.wording import fmt_compact, verdict

ALERT = "bold #c2410c"
MUTED = "grey50"




def _top_reasons(finding: AccountFinding, n: int = 2) -> list[str]:
    """The two heaviest evidence titles, else the two most extreme signals."""
    titles = [e.title for e in sorted(finding.evidence, key=lambda e: -float(e.weight))[:n]]
    if titles:
        return titles
    signals = sorted(finding.signals, key=lambda s: -float(s.percentile))[:n]
    return [f"{s.name} (p{float(s.percentile):.1f})" for s in signals]




def print_summary(
    findings: list[AccountFinding],
    summary: ScanSummary,
    console: Console | None = None,
    top: int = 20,
) -> None:
    """Print the top flagged accounts as a ranked table, then a one-line verdict.

    With no flagged account, prints the verdict and the highest score seen.

    Example:
        >>> from rich.console import Console
        >>> console = Console(record=True, width=120)
        >>> f = AccountFinding("acct-7", 0.97, True, n_events=120, est_exchanges=118)
        >>> print_summary([f], ScanSummary(120, 1, 1, 0.8), console)  # doctest: +SKIP
        >>> "acct-7" in console.export_text()  # doctest: +SKIP
        True
    """
    console = console or Console()
    flagged = sorted((f for f in findings if f.flagged), key=lambda f: (-f.score, f.account_id))
    if flagged:
        has_groups = any(f.cluster_id for f in flagged[:top])
        table = Table(
            title=Text(f"Flagged accounts (top {min(top, len(flagged))} of {len(flagged):,})", style="bold"),
            title_justify="left",
            caption="exchanges: estimated harvested; evidence: the two heaviest reasons",
            caption_justify="left",
            caption_style=MUTED,
            header_style="bold",
            show_edge=False,
            pad_edge=False,
        )
        shown = flagged[:top]

        def width(values: list[str], header: str, cap: int = 40) -> int:
            return min(cap, max([len(header), *map(len, values)]))

        # Ids and numbers keep their full width; only the evidence text gives way on a narrow terminal.
        table.add_column("#", justify="right", style=MUTED, no_wrap=True, min_width=len(str(len(shown))))
        table.add_column("account", no_wrap=True, overflow="ellipsis", min_width=width([f.account_id for f in shown], "account", 28))
        table.add_column("score", justify="right", no_wrap=True, min_width=5)
        table.add_column("events", justify="right", no_wrap=True, min_width=width([f"{f.n_events:,}" for f in shown], "events"))
        table.add_column(
            "exchanges", justify="right", no_wrap=True, min_width=width([f"{f.est_exchanges:,}" for f in shown], "exchanges")
        )
        if has_groups:
            groups = [f.cluster_id or "–" for f in shown]
            table.add_column("group", no_wrap=True, overflow="ellipsis", min_width=width(groups, "group", 16))
        # One reason per line, cut to the room left (rich would crop silently rather than add "…").
        used = sum(c.min_width or 0 for c in table.columns) + 3 * len(table.columns)
        room = max(12, console.width - used)
        table.add_column("top evidence", no_wrap=True, max_width=room)
        for rank, f in enumerate(shown, start=1):
            cells = [
                str(rank),
                Text(f.account_id),
                Text(f"{f.score:.3f}", style=ALERT),
                f"{f.n_events:,}",
                f"{f.est_exchanges:,}",
            ]
            if has_groups:
                cells.append(Text(f.cluster_id or "–", style="" if f.cluster_id else MUTED))
            reasons = [Text(r) for r in _top_reasons(f)]
            for reason in reasons:
                reason.truncate(room, overflow="ellipsis")
            cells.append(Text("\n").join(reasons))
            table.add_row(*cells)
        console.print(table)
        if len(flagged) > top:
            console.print(Text(f"… and {len(flagged) - top:,} more flagged accounts (see accounts.jsonl)", style=MUTED))
    elif findings:
        best = max(findings, key=lambda f: f.score)
        console.print(Text(f"Highest score: {best.score:.3f} ({best.account_id})", style=MUTED))
    style = ALERT if summary.n_flagged else "bold green"
    console.print(Text(verdict(findings, summary), style=style))
    if summary.quarantined:
        where = f" → {summary.quarantine_file}" if summary.quarantine_file else ""
        console.print(Text(f"{summary.quarantined:,} input lines quarantined{where}", style="yellow"))


class _EventRateColumn(ProgressColumn):
    """Events per second, e.g. ``48.2k ev/s``."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("– ev/s", style=MUTED)
        return Text(f"{fmt_compact(speed)} ev/s", style="cyan")


class ScanProgress:
    """What :func:`progress_bar` yields: call ``advance(n)`` (or the object itself) as events are processed.

    Counts are kept whether or not a bar is drawn, so ``completed`` and
    ``rate`` are right in CI too.
    """

    def __init__(self, progress: Progress | None, task_id: int | None) -> None:
        self._progress = progress
        self._task_id = task_id
        self._started = time.perf_counter()
        self.completed = 0

    def advance(self, n: int = 1) -> None:
        """Record ``n`` more processed events."""
        self.completed += n
        if self._progress is not None:
            self._progress.advance(self._task_id, n)

    __call__ = advance  # so it can be handed to the engine as a plain callback

    def set_total(self, total: int | None) -> None:
        """Set or correct the total once it is known (e.g. after counting lines)."""
        if self._progress is not None:
            self._progress.update(self._task_id, total=total)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    @property
    def rate(self) -> float:
        """Events per second so far."""
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0


@contextmanager
def progress_bar(total: int | None, description: str, console: Console | None = None) -> Iterator[ScanProgress]:
    """A progress bar with events/s on a terminal; silent (but still counting) when not a TTY.

    ``total=None`` shows an open-ended bar (count, rate, elapsed time).

    Example:
        >>> with progress_bar(1000, "scanning") as bar:
        ...     for _ in range(10):
        ...         bar.advance(100)
        >>> bar.completed
        1000
    """
    console = console or Console(stderr=True)
    if not console.is_terminal or console.is_dumb_terminal:
        # CI logs and pipes: no carriage-return animation, no partial lines.
        yield ScanProgress(None, None)
        return
    columns: list[ProgressColumn] = [SpinnerColumn(), TextColumn("[progress.description]{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn(), _EventRateColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    else:
        columns += [BarColumn(), TextColumn("{task.completed:,} events"), _EventRateColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, speed_estimate_period=10.0) as progress:
        # Escaped: the description may carry a file name.
        task_id = progress.add_task(escape(description), total=total)
        yield ScanProgress(progress, task_id)
