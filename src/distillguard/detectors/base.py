"""The detector abstraction: ``fit``, ``score``, ``explain``; higher always means more suspicious.

Detectors take the account feature frame (one row per account, columns from
:data:`distillguard.features.account.FEATURES`), so the batch scan, the
benchmark replay and the gateway feed them the same thing.  Every detector
passes ``tests/detectors/test_conformance.py``.

Example:
    >>> import pandas as pd
    >>> from distillguard.detectors.rules import RuleDetector
    >>> frame = pd.DataFrame({"n_events": [50.0], "reasoning_elicit_share": [0.9]}, index=["a"])
    >>> RuleDetector().fit(frame).score(frame).shape
    (1,)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from distillguard.findings import Evidence


class Detector(ABC):
    """Scores accounts from their features and says why."""

    name: ClassVar[str]

    @abstractmethod
    def fit(self, frame: pd.DataFrame, labels: np.ndarray | None = None) -> Detector:
        """Learn from a population of accounts (``labels``: 1 = harvesting, for supervised detectors)."""

    @abstractmethod
    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """One finite score per row, in [0, 1]; higher = more suspicious."""

    @abstractmethod
    def explain(self, frame: pd.DataFrame, account_id: str) -> list[Evidence]:
        """Readable evidence for one account of ``frame`` (empty when nothing is suspicious)."""

    def explain_rows(self, frame: pd.DataFrame, positions) -> list[list[Evidence]]:
        """:meth:`explain` for the rows at ``positions`` of ``frame`` (detectors override it to batch the work)."""
        return [self.explain(frame, frame.index[int(i)]) for i in positions]

    def to_dict(self) -> dict[str, Any]:
        """Fitted state as plain JSON data (no pickles)."""
        return {}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Detector:
        return cls()
