"""Fitting the supervised detector and the ensemble, from simulated or analyst-labeled traffic.

The shipped model is reproduced by one command::

    distillguard train --scenario training --seed 0 --out src/distillguard/models/default.json

Example:
    >>> model, report = train_model(Path("/tmp/work"), scenario="training", seed=0)   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import orjson
from sklearn.metrics import roc_auc_score

from distillguard.detectors.ensemble import Ensemble
from distillguard.errors import InputError
from distillguard.features.account import compute_account_features
from distillguard.ingest.pipeline import ingest_logs
from distillguard.privacy import Hasher
from distillguard.store.duckdb import DuckDBStore


def read_labels(path: str | Path) -> dict[str, bool]:
    """account_id → is_attack from a labels JSONL (the simulator's, or an analyst's)."""
    labels: dict[str, bool] = {}
    with Path(path).open("rb") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
                labels[str(row["account_id"])] = bool(row["is_attack"])
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise InputError(str(path), f"expected an object with account_id and is_attack ({exc})", line=line_no) from exc
    return labels


def labels_vector(frame: pd.DataFrame, labels: dict[str, bool]) -> np.ndarray:
    """1/0 per row of ``frame`` from an account → is_attack mapping (missing accounts count as benign)."""
    return np.array([1 if labels.get(str(a), False) else 0 for a in frame.index], dtype=int)


def train_model(
    workdir: Path,
    *,
    scenario: str = "training",
    seed: int = 0,
    logs: Sequence[Path] | None = None,
    labels_path: Path | None = None,
    corpora: str | None = None,
    target_fpr: float = 0.001,
    on_stage: Callable[[str], None] | None = None,
) -> tuple[Ensemble, str]:
    """Fit an :class:`Ensemble` and return it with a short training report."""
    stage = on_stage or (lambda _s: None)
    accounts_path = None
    if logs:
        if labels_path is None:
            raise InputError("--labels", "training on your own logs needs --labels (account_id, is_attack per line)")
        paths = list(logs)
    else:
        from distillguard.simulate import run_scenario

        stage(f"simulating scenario {scenario!r} (seed {seed})")
        sim = run_scenario(scenario, workdir / "sim", seed=seed, corpora=corpora or "bundled")
        paths, labels_path, accounts_path = [Path(sim.traffic)], Path(sim.labels), Path(sim.accounts_file)
    stage("ingesting")
    store = DuckDBStore(workdir / "train.duckdb")
    hasher = Hasher.from_config()
    ingest_logs(paths, store, hasher, accounts_path=accounts_path, quarantine_path=workdir / "quarantine.jsonl")
    stage("computing features")
    frame = compute_account_features(store)
    y = labels_vector(frame, read_labels(labels_path))
    if y.sum() == 0 or y.sum() == len(y):
        raise InputError(str(labels_path), "labels need both harvesting and benign accounts among the logged accounts")
    stage("fitting")
    model = Ensemble().fit(frame, y, target_fpr=target_fpr)
    model.metadata.update({"scenario": f"trained on {'analyst labels' if logs else f'simulated scenario {scenario!r}, seed {seed}'}"})
    scores = model.score(frame)
    auc = roc_auc_score(y, scores)
    report = (
        f"trained on {len(y):,} accounts ({int(y.sum()):,} harvesting); in-sample ROC AUC {auc:.4f}; "
        f"threshold {model.threshold:.3f}: recall {np.mean(scores[y == 1] >= model.threshold):.3f}, "
        f"benign FPR {np.mean(scores[y == 0] >= model.threshold):.4f}"
    )
    model.metadata["train_report"] = report
    return model, report
