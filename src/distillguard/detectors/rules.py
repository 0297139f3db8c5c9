"""Detection rules as code: YAML data (conditions, thresholds, evidence text, test cases) + pure functions.

A rule fires for an account when all of its ``when`` conditions hold on the
account's features.  The detector's score is the noisy-OR of the severities
of the rules that fired, so two independent rules firing is stronger than one.
Rules ship in ``detectors/rules/*.yml``; ``--rules DIR`` adds a user's own.

Example:
    >>> import pandas as pd
    >>> rule = Rule.from_dict({"id": "r", "title": "T", "severity": 0.5, "evidence": "{x:.0%} x",
    ...     "when": [{"feature": "x", "op": ">=", "value": 0.5}]})
    >>> frame = pd.DataFrame({"x": [0.9, 0.1]}, index=["a", "b"])
    >>> rule.fires(frame).tolist()
    [True, False]
    >>> rule.evidence_text(frame.loc["a"])
    '90% x'
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import yaml
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from distillguard.detectors.base import Detector
from distillguard.errors import ConfigError
from distillguard.findings import Evidence

BUILTIN_RULES_DIR = Path(__file__).parent / "rules"
OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "!=": operator.ne}


@dataclass(frozen=True)
class Condition:
    feature: str
    op: str
    value: float

    def holds(self, frame: pd.DataFrame) -> np.ndarray:
        if self.feature not in frame.columns:
            return np.zeros(len(frame), dtype=bool)
        return OPERATORS[self.op](frame[self.feature].to_numpy(dtype="float64"), self.value)


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: float
    when: tuple[Condition, ...]
    evidence: str
    description: str = ""
    tests: tuple[dict, ...] = field(default_factory=tuple)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<rule>") -> Rule:
        try:
            when = tuple(Condition(c["feature"], c["op"], float(c["value"])) for c in data["when"])
            rule = cls(
                id=str(data["id"]),
                title=str(data["title"]),
                severity=float(data["severity"]),
                when=when,
                evidence=str(data["evidence"]),
                description=" ".join(str(data.get("description", "")).split()),
                tests=tuple(data.get("tests") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: invalid rule: {exc!r}") from exc
        for c in when:
            if c.op not in OPERATORS:
                raise ConfigError(f"{source}: rule {rule.id}: unknown operator {c.op!r}")
        if not 0.0 < rule.severity <= 1.0:
            raise ConfigError(f"{source}: rule {rule.id}: severity must be in (0, 1]")
        return rule

    def fires(self, frame: pd.DataFrame) -> np.ndarray:
        mask = np.ones(len(frame), dtype=bool)
        for condition in self.when:
            mask &= condition.holds(frame)
        return mask

    def evidence_text(self, row: pd.Series) -> str:
        values = {k: float(v) for k, v in row.items() if isinstance(v, (int, float, np.floating, np.integer))}
        return self.format_evidence(values)

    def format_evidence(self, values: dict[str, float]) -> str:
        """The evidence template filled from an account's numeric features (the description if it cannot be)."""
        try:
            return self.evidence.format(**values)
        except (KeyError, ValueError, IndexError):
            return self.description

    def run_tests(self) -> list[str]:
        """Run the inline test cases; returns a failure message per failing case."""
        failures = []
        for i, case in enumerate(self.tests):
            frame = pd.DataFrame([case["features"]], index=["t"], dtype="float64")
            got = bool(self.fires(frame)[0])
            if got != bool(case["expect"]):
                failures.append(f"rule {self.id} test {i}: expected {case['expect']}, got {got}")
        return failures


def load_rules(*dirs: str | Path) -> list[Rule]:
    """Rules from the built-in directory and any others given (a later rule id replaces an earlier one)."""
    rules: dict[str, Rule] = {}
    for directory in (BUILTIN_RULES_DIR, *dirs):
        path = Path(directory)
        if not path.is_dir():
            raise ConfigError(f"rules directory not found: {path}")
        for file in sorted(path.glob("*.yml")) + sorted(path.glob("*.yaml")):
            try:
                data = yaml.safe_load(file.read_text())
            except yaml.YAMLError as exc:
                raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
            rule = Rule.from_dict(data, source=str(file))
            rules[rule.id] = rule
    return list(rules.values())


class RuleDetector(Detector):
    """Noisy-OR of the severities of the rules an account triggers."""

    name: ClassVar[str] = "rules"

    def __init__(self, rules: list[Rule] | None = None):
        self.rules = rules if rules is not None else load_rules()

    def fit(self, frame: pd.DataFrame, labels: np.ndarray | None = None) -> RuleDetector:
        return self  # thresholds live in the rule files, not in data

    def fired(self, frame: pd.DataFrame) -> np.ndarray:
        """Boolean matrix (accounts × rules)."""
        if not self.rules:
            return np.zeros((len(frame), 0), dtype=bool)
        return np.column_stack([rule.fires(frame) for rule in self.rules])

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        fired = self.fired(frame)
        severities = np.array([r.severity for r in self.rules])
        return 1.0 - np.prod(np.where(fired, 1.0 - severities, 1.0), axis=1) if self.rules else np.zeros(len(frame))

    def explain(self, frame: pd.DataFrame, account_id: str) -> list[Evidence]:
        return self.explain_rows(frame, [frame.index.get_loc(account_id)])[0]

    def explain_rows(self, frame: pd.DataFrame, positions) -> list[list[Evidence]]:
        """:meth:`explain` for the rows at ``positions`` of ``frame``: every rule evaluated once over them.

        Example:
            >>> frame = pd.DataFrame({"n_events": [50.0, 5.0], "reasoning_elicit_share": [0.9, 0.0]}, index=["a", "b"])
            >>> [len(e) for e in RuleDetector().explain_rows(frame, [0, 1])]
            [1, 0]
        """
        rows = frame.iloc[np.asarray(positions, dtype=np.int64)]
        fired = self.fired(rows)
        # the values a rule's evidence template may name: the numeric columns, as floats
        numeric = [c for c in rows.columns if is_numeric_dtype(rows[c]) and not is_bool_dtype(rows[c])]
        values = rows[numeric].to_numpy(dtype="float64")
        out: list[list[Evidence]] = []
        for i in range(len(rows)):
            hits = np.flatnonzero(fired[i]).tolist()
            if not hits:
                out.append([])
                continue
            row = dict(zip(numeric, values[i].tolist(), strict=True))
            out.append([
                Evidence("rules", rule.title, rule.format_evidence(row), rule.severity, rule_id=rule.id)
                for rule in (self.rules[j] for j in hits)
            ])  # fmt: skip
        return out
