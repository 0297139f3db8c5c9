"""Small factories shared across test packages: stored event rows and account feature frames."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from distillguard.features.account import FEATURE_NAMES
from distillguard.schema import EVENT_SCHEMA


def event_row(i: int = 0, account: str = "acct-1", ts: float = 1_700_000_000.0, **overrides: Any) -> dict[str, Any]:
    """One stored event row (EVENT_SCHEMA) with plausible defaults."""
    row = {name: None for name in EVENT_SCHEMA.names}
    row.update(
        event_id=f"{account}-{i}", ts=ts, account_id=account, status="success", model="m1",
        prompt_tokens=50, completion_tokens=200, n_messages=1, n_user_turns=1, n_assistant_turns=0,
        has_system=False, prompt_hash=i, template_prefix_hash=1000 + i, template_suffix_hash=2000 + i,
        minhash_bands=[10_000 * i + b for b in range(4)], script="latin", capability="chat",
        reasoning_elicit=False, rubric_grading=False, benchmark_hits=0, completion_has_reasoning=False,
        conversation_hash=i, ip_prefix_hash=7, prompt_chars=200, completion_chars=800,
    )  # fmt: skip
    row.update(overrides)
    return row


def events_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)


def feature_frame(n: int = 60, seed: int = 0, n_attack: int = 10) -> tuple[pd.DataFrame, np.ndarray]:
    """A synthetic account feature frame whose first ``n_attack`` rows look like harvesters."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.random((n, len(FEATURE_NAMES))), columns=FEATURE_NAMES, index=[f"a{i}" for i in range(n)])
    frame["n_events"] = rng.integers(5, 500, n).astype(float)
    labels = np.zeros(n, dtype=int)
    labels[:n_attack] = 1
    frame.loc[frame.index[:n_attack], "reasoning_elicit_share"] = 0.9
    frame.loc[frame.index[:n_attack], "single_turn_share"] = 1.0
    frame.loc[frame.index[n_attack:], "reasoning_elicit_share"] = rng.random(n - n_attack) * 0.1
    frame["first_ts"], frame["last_ts"] = 1.7e9, 1.7e9 + 86400
    return frame, labels
