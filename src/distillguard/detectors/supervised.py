"""Supervised detector: logistic regression on scaled account features, shipped as JSON.

Trained on labeled traffic (the simulator's labels, or an analyst's with
``distillguard train``).  A linear model is deliberately plain: its weights are
readable, its per-feature contributions are its explanation, and it is less
able to memorise one simulator's quirks than a deep ensemble.

Example:
    >>> import numpy as np, pandas as pd
    >>> from distillguard.features.account import FEATURE_NAMES
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame(rng.random((40, len(FEATURE_NAMES))), columns=FEATURE_NAMES)
    >>> labels = (frame["reasoning_elicit_share"] > 0.5).to_numpy().astype(int)
    >>> det = LogisticDetector().fit(frame, labels)
    >>> bool(det.score(frame)[labels == 1].mean() > det.score(frame)[labels == 0].mean())
    True
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from distillguard.detectors.base import Detector
from distillguard.features.account import FEATURE_BY_NAME, FEATURE_NAMES, feature_matrix
from distillguard.findings import Evidence


class LogisticDetector(Detector):
    """P(harvesting | features) from a regularized logistic regression."""

    name: ClassVar[str] = "supervised"

    def __init__(self, C: float = 0.3, features: tuple[str, ...] = FEATURE_NAMES):
        self.C, self.features = C, tuple(features)
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.coef: np.ndarray | None = None
        self.intercept: float = 0.0

    def fit(self, frame: pd.DataFrame, labels: np.ndarray | None = None) -> LogisticDetector:
        if labels is None:
            raise ValueError("LogisticDetector needs labels (1 = harvesting account, 0 = benign)")
        labels = np.asarray(labels).astype(int)
        X = feature_matrix(frame, self.features)
        self.mean = X.mean(axis=0)
        std = X.std(axis=0)
        self.scale = np.where(std > 1e-9, std, 1.0)
        model = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000)
        model.fit((X - self.mean) / self.scale, labels)
        self.coef, self.intercept = model.coef_[0].copy(), float(model.intercept_[0])
        return self

    def _z(self, frame: pd.DataFrame) -> np.ndarray:
        if self.coef is None:
            raise RuntimeError("LogisticDetector used before fit")
        return (feature_matrix(frame, self.features) - self.mean) / self.scale

    def logit(self, frame: pd.DataFrame) -> np.ndarray:
        return self._z(frame) @ self.coef + self.intercept

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(self.logit(frame), -50, 50)))

    def explain(self, frame: pd.DataFrame, account_id: str) -> list[Evidence]:
        return self.explain_rows(frame, [frame.index.get_loc(account_id)])[0]

    def explain_rows(self, frame: pd.DataFrame, positions) -> list[list[Evidence]]:
        """:meth:`explain` for the rows at ``positions`` of ``frame``, with one matrix product for all of them."""
        z = self._z(frame.iloc[np.asarray(positions, dtype=np.int64)])
        contrib = z * self.coef
        order = np.argsort(-contrib, axis=1)[:, :4]
        out: list[list[Evidence]] = []
        for k in range(len(z)):
            top = [i for i in order[k].tolist() if contrib[k, i] > 0.25]
            if not top:
                out.append([])
                continue
            parts = [f"{self.features[i]} ({FEATURE_BY_NAME[self.features[i]].description}; +{contrib[k, i]:.1f})" for i in top]
            # a one-row product per account, as score() on that account alone sums it (to the last bit)
            logit = z[k : k + 1] @ self.coef + self.intercept
            pk = float((1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50))))[0])
            out.append([Evidence(self.name, "Resembles known harvesting", f"Model probability {pk:.2f}; strongest: " + "; ".join(parts) + ".", pk)])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "C": self.C,
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogisticDetector:
        det = cls(C=data["C"], features=tuple(data["features"]))
        det.mean, det.scale = np.array(data["mean"]), np.array(data["scale"])
        det.coef, det.intercept = np.array(data["coef"]), float(data["intercept"])
        return det
