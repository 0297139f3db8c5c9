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
        z = self._z(frame.loc[[account_id]])[0]
        contrib = z * self.coef
        top = [i for i in np.argsort(-contrib)[:4] if contrib[i] > 0.25]
        if not top:
            return []
        p = float(self.score(frame.loc[[account_id]])[0])
        parts = [f"{self.features[i]} ({FEATURE_BY_NAME[self.features[i]].description}; +{contrib[i]:.1f})" for i in top]
        return [Evidence(self.name, "Resembles known harvesting", f"Model probability {p:.2f}; strongest: " + "; ".join(parts) + ".", p)]

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
