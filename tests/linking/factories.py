"""Synthetic stores for linking tests: a partitioned hydra, a corporate NAT, genuine chat users."""

from __future__ import annotations

import random

import pyarrow as pa

from distillguard.schema import ACCOUNT_SCHEMA
from distillguard.store.duckdb import DuckDBStore
from tests.factories import event_row, events_table

T0 = 1_740_000_000.0
CAPS = ("code", "math", "reasoning", "writing", "translation", "extraction")


def hydra_rows(n_accounts: int = 20, per_account: int = 6, prefix: str = "hyd") -> list[dict]:
    """One prompt set partitioned round-robin over light accounts: disjoint prompts, shared templates, 24/7 rhythm."""
    rows = []
    for k in range(n_accounts * per_account):
        acct = f"{prefix}-{k % n_accounts:03d}"
        rows.append(event_row(
            k, acct, T0 + k * 600.0, prompt_hash=10_000_000 + k, conversation_hash=10_000_000 + k,
            template_prefix_hash=777, template_suffix_hash=888,
            minhash_bands=[555_001, 555_002, 555_003, 20_000_000 + k * 8, 20_000_001 + k * 8, 20_000_002 + k * 8, 20_000_003 + k * 8, 20_000_004 + k * 8],
            capability=CAPS[k % 2], max_tokens=1024, completion_tokens=500, prompt_tokens=150,
            reasoning_elicit=False, completion_has_reasoning=False, script="latin",
            ip_hash=4242 + (k % n_accounts) // 5, ip_prefix_hash=31_000 + (k % n_accounts) // 5,
            user_agent_hash=99, temperature=0.7,
        ))  # fmt: skip
    return rows


def chat_rows(account: str, seed: int, *, ip_prefix: int | None = None, n: int = 12) -> list[dict]:
    """A genuine-looking chat user: daytime, conversations with follow-ups, own prompts."""
    rng = random.Random(seed)
    rows, conv = [], seed * 1000
    for i in range(n):
        if i % 3 == 0:
            conv += 1
        day, hour = rng.randrange(20), 9 + rng.randrange(8)
        h = seed * 100_000 + i
        rows.append(event_row(
            h, account, T0 + day * 86400 + hour * 3600 + rng.randrange(3600), prompt_hash=h, conversation_hash=conv,
            n_assistant_turns=i % 3, n_messages=1 + 2 * (i % 3), template_prefix_hash=h + 7, template_suffix_hash=h + 9,
            minhash_bands=[h * 8 + b for b in range(8)], capability=rng.choice(("chat", "writing", "code")),
            completion_tokens=rng.randrange(80, 400), prompt_tokens=rng.randrange(20, 200),
            ip_hash=(ip_prefix or seed) * 10 + rng.randrange(3), ip_prefix_hash=ip_prefix if ip_prefix is not None else 50_000 + seed,
            user_agent_hash=rng.randrange(3), temperature=1.0,
        ))  # fmt: skip
    return rows


def accounts_table(rows: list[dict]) -> pa.Table:
    base = {name: None for name in ACCOUNT_SCHEMA.names}
    return pa.Table.from_pylist([{**base, **r} for r in rows], schema=ACCOUNT_SCHEMA)


def build_store(*, n_hydra: int = 20, n_nat: int = 30, n_chat: int = 40) -> DuckDBStore:
    """Hydra (shared payment, creation burst) + NAT (one /24, genuine chat) + independent chat users."""
    store = DuckDBStore(":memory:")
    rows = hydra_rows(n_hydra) if n_hydra else []
    accounts = [dict(account_id=f"hyd-{i:03d}", payment_hash=123456, created_at=T0 - 86400 + i * 30) for i in range(n_hydra)]
    for i in range(n_nat):
        rows += chat_rows(f"nat-{i:03d}", 1000 + i, ip_prefix=888_888)
        accounts.append(dict(account_id=f"nat-{i:03d}", payment_hash=700 + i, created_at=T0 - 400 * 86400 + i * 86400))
    for i in range(n_chat):
        rows += chat_rows(f"chat-{i:03d}", 2000 + i)
    store.append("events", events_table(rows))
    store.append("accounts", accounts_table(accounts))
    return store
