"""Errors and quarantine records.  Bad input is named precisely, never lost.

A reader that meets a line it cannot use yields a :class:`Quarantined` instead
of raising: the pipeline counts it, reports it and writes it to the
quarantine file, and the run goes on.  Problems that make a whole input
unusable (unknown format, empty file, bad mapping) raise :class:`InputError`,
which the CLI prints as one clear line and turns into exit code 2.

Example:
    >>> q = Quarantined("logs.jsonl", 7, "startTime", "expected a number, got 'abc'", '{"startTime": "abc"}')
    >>> q.explain()
    "logs.jsonl:7: field 'startTime': expected a number, got 'abc'"
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


class DistillguardError(Exception):
    """Base class of every error distillguard raises on purpose."""


class InputError(DistillguardError):
    """An input that cannot be read at all, with the file (and line, field) named."""

    def __init__(self, path: str, reason: str, line: int | None = None, field: str | None = None):
        self.path, self.reason, self.line, self.field = str(path), reason, line, field
        super().__init__(self.explain())

    def explain(self) -> str:
        where = self.path + (f":{self.line}" if self.line is not None else "")
        what = f"field '{self.field}': " if self.field else ""
        return f"{where}: {what}{self.reason}"


class ConfigError(DistillguardError):
    """A configuration value (mapping, rule file, policy) that is wrong."""


@dataclass(frozen=True)
class Quarantined:
    """One input line set aside, with where it was and why."""

    file: str
    line: int
    field: str | None
    reason: str
    raw: str  # the line as read (truncated to 64 KiB by the reader)

    def explain(self) -> str:
        what = f"field '{self.field}': " if self.field else ""
        return f"{self.file}:{self.line}: {what}{self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
