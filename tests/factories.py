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


# --------------------------------------------------------------------------- shared accounts
# A reseller's genuine customers and a campaign hidden among them at a small share (end users).

T0 = 1_700_000_000.0


def genuine_rows(rng: np.random.Generator, account: str, users: int, n: int, start: int = 0, hours: float = 48.0) -> list[dict]:
    """A reseller's genuine traffic: Zipf-like end users, 40% follow-ups, mostly short answers,
    one-shot instruction-set prompts (some answered at length) among the fresh ones."""
    weights = 1.0 / np.arange(1, users + 1) ** 1.05
    who = rng.choice(users, size=n, p=weights / weights.sum())
    rows = []
    for k, (u, t) in enumerate(zip(who.tolist(), np.sort(rng.uniform(0, hours * 3600, n)).tolist(), strict=True)):
        follow_up = rng.random() < 0.4
        one_shot = not follow_up and rng.random() < 0.3
        long = one_shot and rng.random() < 0.4
        rows.append(event_row(
            start + k, account, T0 + t, end_user_hash=1000 + u,
            n_assistant_turns=int(rng.integers(1, 4)) if follow_up else 0,
            prompt_tokens=int(rng.integers(300, 900)) if follow_up else int(rng.integers(20, 120)),
            completion_tokens=int(rng.integers(400, 900)) if long else int(rng.integers(30, 250)),
            benchmark_name="alpaca_eval" if one_shot and rng.random() < 0.5 else None,
            completion_has_reasoning=bool(rng.random() < 0.05),
        ))  # fmt: skip
    return rows


def harvest_rows(rng: np.random.Generator, account: str, users: list[int], n: int, start: int, hours: float, **shape) -> list[dict]:
    """A campaign's requests, round-robin over its end-user ids: fresh prompts, long answers (by default)."""
    rows = []
    for k, t in enumerate(np.sort(rng.uniform(0, hours * 3600, n)).tolist()):
        row = {"n_assistant_turns": 0, "prompt_tokens": int(rng.integers(30, 90)), "completion_tokens": int(rng.integers(600, 1400))}
        row.update(shape)
        rows.append(event_row(start + k, account, T0 + t, end_user_hash=users[k % len(users)], **row))
    return rows


def chat_account_rows(rng: np.random.Generator, n: int = 12) -> list[dict]:
    """Ordinary single-user accounts, so the account population has more than the resellers in it."""
    rows = []
    for a in range(n):
        for k in range(30):
            rows.append(event_row(k, f"chat-{a}", T0 + float(rng.uniform(0, 48 * 3600)), end_user_hash=None,
                                  n_assistant_turns=int(k % 3), completion_tokens=int(rng.integers(50, 300))))  # fmt: skip
    return rows


#: The end-user ids of the campaign in :func:`small_share_rows`.
CAMPAIGN_END_USERS = [9001, 9002, 9003, 9004]


def small_share_rows(seed: int = 7, hours: float = 48.0) -> list[dict]:
    """Reseller R: 2,000 genuine requests over 300 end users plus 60 campaign requests (3%) over the four
    ``CAMPAIGN_END_USERS`` (15 each); reseller G: genuine only; a dozen ordinary accounts."""
    rng = np.random.default_rng(seed)
    rows = genuine_rows(rng, "R", 300, 2000, hours=hours) + harvest_rows(rng, "R", CAMPAIGN_END_USERS, 60, start=10_000, hours=hours)
    return rows + genuine_rows(rng, "G", 300, 2000, hours=hours) + chat_account_rows(rng)
