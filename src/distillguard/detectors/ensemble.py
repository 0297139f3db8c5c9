"""The combined detector: rules + isolation + supervised → one calibrated score in [0, 1].

A small logistic "stacker" (Platt scaling) maps the supervised logit and the
isolation score to a probability, fitted on out-of-fold supervised scores so
it does not trust the supervised model more than it deserves.  The rules are
then combined with that probability by noisy-OR: a rule written from how
harvesting works can flag an account on its own, even one unlike anything in
the training traffic, and a learned model cannot argue it away.  The operating point (``threshold``)
is chosen at training time for a target false-positive rate on benign
accounts and stored with the model; ``--threshold`` overrides it.

The isolation part is population-relative: :meth:`Ensemble.fit_population`
refits it on the accounts being scanned.

Example:
    >>> ens = Ensemble.load()                       # the shipped model  # doctest: +SKIP
    >>> ens.fit_population(frame).score(frame)       # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from distillguard.detectors.base import Detector
from distillguard.detectors.isolation import IsolationDetector
from distillguard.detectors.rules import RuleDetector
from distillguard.detectors.supervised import LogisticDetector
from distillguard.errors import ConfigError
from distillguard.findings import Evidence

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "default.json"
MODEL_FORMAT_VERSION = 2
#: Used when no supervised model is available: the rules decide, isolation adds a little.
_UNSUPERVISED_STACKER = {"coef": [0.0, 3.0], "intercept": -3.0}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class Ensemble(Detector):
    """Calibrated combination of the rule, isolation and supervised detectors."""

    name: ClassVar[str] = "ensemble"

    def __init__(
        self,
        rules: RuleDetector | None = None,
        supervised: LogisticDetector | None = None,
        isolation: IsolationDetector | None = None,
        stacker: dict[str, Any] | None = None,
        threshold: float = 0.5,
        metadata: dict[str, Any] | None = None,
    ):
        self.rules = rules or RuleDetector()
        self.supervised = supervised
        self.isolation = isolation or IsolationDetector()
        self.stacker = stacker or dict(_UNSUPERVISED_STACKER)
        self.threshold = threshold
        self.metadata = metadata or {}
        self._population_fitted = False

    # -- fitting -------------------------------------------------------------------------------
    def fit_population(self, frame: pd.DataFrame) -> Ensemble:
        """Refit the population-relative part (isolation) on the accounts about to be scored."""
        self.isolation.fit(frame)
        self._population_fitted = True
        return self

    @property
    def population_fitted(self) -> bool:
        """True once the isolation part has seen the population it scores against."""
        return self._population_fitted

    def fit(self, frame: pd.DataFrame, labels: np.ndarray | None = None, *, target_fpr: float = 0.001) -> Ensemble:
        self.fit_population(frame)
        if labels is None:
            return self
        labels = np.asarray(labels).astype(int)
        oof = np.zeros(len(frame))
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
        for train, test in folds.split(np.zeros(len(labels)), labels):
            fold_model = LogisticDetector().fit(frame.iloc[train], labels[train])
            oof[test] = fold_model.logit(frame.iloc[test])
        self.supervised = LogisticDetector().fit(frame, labels)
        inputs = np.column_stack([oof, self.isolation.score(frame)])
        stack = LogisticRegression(C=1.0, max_iter=1000).fit(inputs, labels)
        self.stacker = {"coef": stack.coef_[0].tolist(), "intercept": float(stack.intercept_[0])}
        calibrated = self._noisy_or(stack.predict_proba(inputs)[:, 1], self.rules.score(frame))
        benign = np.sort(calibrated[labels == 0])
        # lowest threshold keeping the benign false-positive rate at or under target_fpr
        k = int(np.floor(target_fpr * len(benign)))
        cut = benign[len(benign) - k - 1] if len(benign) > k else 0.5
        self.threshold = float(min(max(cut + 1e-6, 0.5), 0.99))
        self.metadata.update(
            {
                "trained_at": time.time(),
                "n_accounts": int(len(labels)),
                "n_positive": int(labels.sum()),
                "target_fpr": target_fpr,
                "train_recall_at_threshold": float((calibrated[labels == 1] >= self.threshold).mean()) if labels.any() else None,
                "train_fpr_at_threshold": float((calibrated[labels == 0] >= self.threshold).mean()),
            }
        )
        return self

    # -- scoring -------------------------------------------------------------------------------
    def detector_scores(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        if not self._population_fitted:
            self.fit_population(frame)
        scores = {"rules": self.rules.score(frame), "isolation": self.isolation.score(frame)}
        if self.supervised is not None:
            scores["supervised"] = self.supervised.score(frame)
        return scores

    @staticmethod
    def _noisy_or(model_p: np.ndarray, rules: np.ndarray) -> np.ndarray:
        return 1.0 - (1.0 - model_p) * (1.0 - rules)

    def combine(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        sup_logit = _logit(scores["supervised"]) if "supervised" in scores else np.zeros_like(scores["rules"])
        coef, b = np.array(self.stacker["coef"]), self.stacker["intercept"]
        z = coef[0] * sup_logit + coef[1] * scores["isolation"] + b
        return self._noisy_or(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))), scores["rules"])

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.combine(self.detector_scores(frame))

    def explain(self, frame: pd.DataFrame, account_id: str) -> list[Evidence]:
        return self.explain_rows(frame, [frame.index.get_loc(account_id)])[0]

    def explain_rows(self, frame: pd.DataFrame, positions) -> list[list[Evidence]]:
        """:meth:`explain` for the rows at ``positions`` of ``frame``, each detector run once over all of them.

        A scan explains thousands of accounts; one pass per detector instead of one per
        account (the isolation forest especially) is what keeps that from dominating it.

        Example:
            >>> ens = Ensemble.load().fit_population(frame)              # doctest: +SKIP
            >>> evidence = ens.explain_rows(frame, [0, 5])               # doctest: +SKIP
            >>> evidence[0] == ens.explain(frame, frame.index[0])        # doctest: +SKIP
            True
        """
        detectors = [self.rules] + ([self.supervised] if self.supervised is not None else []) + [self.isolation]
        per_detector = [d.explain_rows(frame, positions) for d in detectors]
        return [sorted([e for lists in per_account for e in lists], key=lambda e: -e.weight) for per_account in zip(*per_detector)]

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": MODEL_FORMAT_VERSION,
            "threshold": self.threshold,
            "stacker": self.stacker,
            "supervised": self.supervised.to_dict() if self.supervised else None,
            "metadata": self.metadata,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], rules: RuleDetector | None = None) -> Ensemble:
        if data.get("format_version") != MODEL_FORMAT_VERSION:
            raise ConfigError(f"model format v{data.get('format_version')} is not v{MODEL_FORMAT_VERSION}; retrain with `distillguard train`")
        supervised = LogisticDetector.from_dict(data["supervised"]) if data.get("supervised") else None
        return cls(rules=rules, supervised=supervised, stacker=data["stacker"], threshold=data["threshold"], metadata=data.get("metadata"))

    @classmethod
    def load(cls, path: str | Path | None = None, rules: RuleDetector | None = None) -> Ensemble:
        """The model at ``path``; by default the shipped one, else an unsupervised ensemble."""
        model_path = Path(path) if path else DEFAULT_MODEL_PATH
        if not model_path.is_file():
            if path:
                raise ConfigError(f"model file not found: {model_path}")
            return cls(rules=rules, metadata={"model": "unsupervised (no trained model shipped)"})
        try:
            data = json.loads(model_path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{model_path}: not valid JSON: {exc}") from exc
        ens = cls.from_dict(data, rules=rules)
        ens.metadata.setdefault("model_path", str(model_path))
        return ens
