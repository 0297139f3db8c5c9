"""Unsupervised detector: accounts unlike the population they are scanned with (Isolation Forest).

Fitted on each scan's own population, so "unusual" means unusual among this
provider's accounts this period.  Scores are mapped to [0, 1] by rank.

Example:
    >>> import numpy as np, pandas as pd
    >>> from distillguard.features.account import FEATURE_NAMES
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame(rng.random((50, len(FEATURE_NAMES))), columns=FEATURE_NAMES)
    >>> IsolationDetector().fit(frame).score(frame).shape
    (50,)
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from distillguard.detectors.base import Detector
from distillguard.features.account import FEATURE_BY_NAME, FEATURE_NAMES, feature_matrix
from distillguard.findings import Evidence


class IsolationDetector(Detector):
    """How isolated an account's behaviour is among all accounts scanned."""

    name: ClassVar[str] = "isolation"

    def __init__(self, n_estimators: int = 200, seed: int = 0, features: tuple[str, ...] = FEATURE_NAMES):
        self.n_estimators, self.seed, self.features = n_estimators, seed, features
        self._forest: IsolationForest | None = None
        self._median: np.ndarray | None = None
        self._iqr: np.ndarray | None = None

    def fit(self, frame: pd.DataFrame, labels: np.ndarray | None = None) -> IsolationDetector:
        X = feature_matrix(frame, self.features)
        self._forest = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(X)
        self._median = np.median(X, axis=0)
        q75, q25 = np.percentile(X, [75, 25], axis=0)
        self._iqr = np.where(q75 - q25 > 1e-9, q75 - q25, np.maximum(np.abs(self._median), 1.0))
        return self

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        if self._forest is None:
            raise RuntimeError("IsolationDetector.score called before fit")
        raw = -self._forest.score_samples(feature_matrix(frame, self.features))
        # score_samples lies in (0, 1]; -score in [-1, 0): shift to [0, 1), higher = more isolated
        return np.clip(raw, 0.0, 1.0)

    def explain(self, frame: pd.DataFrame, account_id: str) -> list[Evidence]:
        return self.explain_rows(frame, [frame.index.get_loc(account_id)])[0]

    def explain_rows(self, frame: pd.DataFrame, positions) -> list[list[Evidence]]:
        """:meth:`explain` for the rows at ``positions`` of ``frame``; the forest scores only the rows with evidence, at once."""
        if self._forest is None:
            raise RuntimeError("IsolationDetector.explain called before fit")
        rows = frame.iloc[np.asarray(positions, dtype=np.int64)]
        z = (feature_matrix(rows, self.features) - self._median) / self._iqr
        order = np.argsort(-np.abs(z), axis=1)[:, :3]
        parts_of = []
        for k in range(len(z)):
            zk = z[k]
            parts_of.append([
                f"{self.features[i]} ({'high' if zk[i] > 0 else 'low'}: {FEATURE_BY_NAME[self.features[i]].description})"
                for i in order[k].tolist() if abs(zk[i]) > 2
            ])  # fmt: skip
        with_parts = [k for k, parts in enumerate(parts_of) if parts]
        scores = self.score(rows.iloc[with_parts]) if with_parts else np.zeros(0)
        out: list[list[Evidence]] = [[] for _ in parts_of]
        for k, score in zip(with_parts, scores.tolist(), strict=True):
            out[k] = [Evidence(self.name, "Unlike the population", "Most unusual: " + "; ".join(parts_of[k]) + ".", score)]
        return out
