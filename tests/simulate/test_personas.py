"""Every persona yields well-formed, ordered, plausible RawEvents and matching accounts and labels."""

from collections import defaultdict

import pytest

from distillguard.simulate.scenario import ATTACK_PERSONAS, BENIGN_PERSONAS, PERSONAS

INT_FIELDS = ("prompt_tokens", "completion_tokens", "max_tokens", "n", "top_logprobs", "seed", "tools_count", "response_tool_calls", "reasoning_tokens")


def test_every_persona_present(demo_small):
    b, events = demo_small
    personas = {r["persona"] for r in b.labels()}
    assert personas == set(PERSONAS)
    by_acct = {r["account_id"]: r["persona"] for r in b.labels()}
    seen = {by_acct[e["account_id"]] for e in events}
    assert seen == set(PERSONAS)


def test_events_are_valid(demo_small):
    b, events = demo_small
    accounts = {a["account_id"] for a in b.accounts()}
    ids = set()
    for ev in events:
        assert isinstance(ev["event_id"], str) and ev["event_id"] not in ids
        ids.add(ev["event_id"])
        assert isinstance(ev["ts"], float) and ev["end_ts"] >= ev["ts"]
        assert ev["account_id"] in accounts and ev["api_key"] and ev["ip"].count(".") == 3 and ev["user_agent"]
        assert ev["status"] in ("success", "failure") and ev["model"]
        assert ev["messages"] and all(isinstance(m["content"], str) and m["role"] in ("system", "user", "assistant", "tool") for m in ev["messages"])
        assert ev["messages"][-1]["role"] in ("user", "tool")
        for f in INT_FIELDS:
            assert ev[f] is None or (isinstance(ev[f], int) and ev[f] >= 0), f
        for f in ("temperature", "top_p"):
            assert ev[f] is None or 0 <= ev[f] <= 2
        chars = sum(len(m["content"]) for m in ev["messages"])
        assert chars / 8 <= ev["prompt_tokens"] <= chars + 8 * len(ev["messages"]) + 60 * (ev["tools_count"] or 0) + 10
        if ev["status"] == "success":
            assert ev["completion_text"] is not None
            if ev["max_tokens"]:
                # usage counts all n choices; the first is cut at max_tokens
                assert ev["completion_tokens"] <= (ev["max_tokens"] + 30) * (ev["n"] or 1) * 1.15
        else:
            assert ev["completion_tokens"] == 0


def test_global_and_per_account_order(demo_small):
    _, events = demo_small
    ts = [e["ts"] for e in events]
    assert ts == sorted(ts)
    last = defaultdict(float)
    for e in events:
        assert e["ts"] >= last[e["account_id"]]
        last[e["account_id"]] = e["ts"]


def test_labels_cover_accounts_and_match_personas(demo_small):
    b, _ = demo_small
    labels = b.labels()
    assert sorted(r["account_id"] for r in labels) == sorted(a["account_id"] for a in b.accounts())
    attack = {p.name for p in ATTACK_PERSONAS}
    for r in labels:
        cls = PERSONAS[r["persona"]]
        assert r["is_attack"] == (r["persona"] in attack) == cls.is_attack
        assert (r["campaign_id"] is not None) == r["is_attack"]
        assert r["hard_negative"] == cls.hard_negative
    hard = {r["persona"] for r in labels if r["hard_negative"]}
    assert hard == {"corporate_nat", "app_backend", "batch_pipeline", "eval_run", "synthetic_data_dev", "reseller"}
    assert {p.name for p in BENIGN_PERSONAS} - hard == {"chat_user"}


def test_mixed_reseller_share_and_event_labels(demo_small):
    b, events = demo_small
    mixed = [r for r in b.labels() if r["persona"] == "hydra_mixed_reseller"]
    assert mixed and all(0.1 < r["attack_share"] < 0.3 for r in mixed)  # knob 0.2
    ev_labels = list(b.event_labels())
    mixed_ids = {r["account_id"] for r in mixed}
    by_id = {e["event_id"]: e for e in events}
    assert ev_labels and all(by_id[x["event_id"]]["account_id"] in mixed_ids for x in ev_labels)
    n_mixed = sum(1 for e in events if e["account_id"] in mixed_ids)
    assert abs(len(ev_labels) / n_mixed - mixed[0]["attack_share"]) < 1e-3


def test_benign_chat_is_multi_turn_and_attacks_mostly_single_turn(demo_small):
    b, events = demo_small
    persona = {r["account_id"]: r["persona"] for r in b.labels()}
    followups = defaultdict(lambda: [0, 0])
    for e in events:
        c = followups[persona[e["account_id"]]]
        c[0] += 1
        c[1] += any(m["role"] == "assistant" for m in e["messages"])
    share = {p: f / n for p, (n, f) in followups.items()}
    assert share["chat_user"] > 0.2 and share["corporate_nat"] > 0.2
    for p in ("hydra", "naive_bulk", "low_and_slow", "reasoning_coercion", "benchmark_sweep"):
        assert share[p] < 0.05, p


@pytest.mark.parametrize("name", ["logprob_harvest", "multi_sample", "tool_use_harvest", "model_pivot", "reasoning_coercion"])
def test_attack_fingerprints(demo_small, name):
    b, events = demo_small
    accts = {r["account_id"] for r in b.labels() if r["persona"] == name}
    evs = [e for e in events if e["account_id"] in accts]
    assert evs
    if name == "logprob_harvest":
        assert all(e["logprobs"] and 5 <= e["top_logprobs"] <= 20 for e in evs)
        assert sum(e["max_tokens"] <= 16 for e in evs) / len(evs) > 0.5
    elif name == "multi_sample":
        assert all(e["n"] > 1 and e["seed"] is not None for e in evs)
        assert len({e["temperature"] for e in evs}) >= 3
    elif name == "tool_use_harvest":
        assert all(e["tools_count"] >= 5 for e in evs)
        assert any(m["role"] == "tool" for e in evs for m in e["messages"])
    elif name == "model_pivot":
        pivot = next(p.pivot_ts for p in b.personas if p.name == name)
        assert 0 < pivot - b.ctx.models.release_ts <= 24 * 3600  # within a day of the release
        after = [e for e in evs if e["ts"] >= pivot]
        assert all(e["model"] != b.ctx.models.release for e in evs if e["ts"] < b.ctx.models.release_ts)
        assert after and all(e["model"] == b.ctx.models.release for e in after)
    elif name == "reasoning_coercion":
        non_ascii = sum(any(ord(ch) > 127 for ch in e["messages"][-1]["content"]) for e in evs)
        assert non_ascii / len(evs) > 0.3  # several languages
        assert sum(e["completion_tokens"] for e in evs) / len(evs) > 500  # long traces
