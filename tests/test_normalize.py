"""normalize_batch: identifier hashes and conversation columns, checked against a plain per-event reading."""

from __future__ import annotations

from distillguard.normalize import account_key, message_text, normalize_batch
from distillguard.privacy import Hasher
from distillguard.schema import EVENT_SCHEMA, TEXT_SCHEMA

HASHER = Hasher(b"normalize-tests")
LONG = "word " * 700  # longer than both the 500-char conversation and 2,000-char system prefixes


def _events():
    base = {"event_id": "e0", "ts": 100.0, "account_id": "acct", "ip": "10.1.2.3", "user_agent": "ua"}
    messages = [
        [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}],
        [{"role": "developer", "content": LONG + "a"}, {"role": "user", "content": LONG + "x"},
         {"role": "assistant", "content": "ok"},
         {"role": "user", "content": [{"type": "text", "text": "part"}, "raw"]}],
        [{"role": "system", "content": LONG + "b"}, {"role": "user", "content": LONG + "y"}],  # same 500-char start
        [{"role": "user", "content": ""}],
        [{"role": "assistant", "content": "alone"}, {"role": "system", "content": ""},
         {"role": "system", "content": "2nd"}],
        [],
    ]  # fmt: skip
    events = [dict(base, event_id=f"e{i}", messages=m, end_ts=101.5 if i % 2 else None) for i, m in enumerate(messages)]
    events[3].update(account_id=None, api_key="key-1", ip="2001:db8::7", first_token_ts=100.25, end_ts=103.0)
    events[4].update(account_id="", api_key=None, end_user="u-1", ip=None, ts=None)
    events.append({"event_id": "sparse", "ts": 5.0})  # a caller (gateway, tests) leaving fields out
    return events


def _expected(ev):
    """What normalize_batch stores for one event, field by field."""
    messages = ev.get("messages") or []
    users = [message_text(m["content"]) for m in messages if m["role"] == "user"]
    systems = [message_text(m["content"]) for m in messages if m["role"] in ("system", "developer")]
    system = next((s for s in systems if s), "")
    api_key, end_user = HASHER.hash(ev.get("api_key")), HASHER.hash(ev.get("end_user"))
    ts, end, first = ev.get("ts"), ev.get("end_ts"), ev.get("first_token_ts")
    return {
        "account_id": ev.get("account_id") or account_key(None, api_key, end_user),
        "api_key_hash": api_key,
        "end_user_hash": end_user,
        "ip_hash": HASHER.hash(ev.get("ip")),
        "ip_prefix_hash": HASHER.ip_prefix_hash(ev.get("ip")),
        "user_agent_hash": HASHER.hash(ev.get("user_agent")),
        "latency_s": end - ts if end is not None and ts is not None else None,
        "ttft_s": first - ts if first is not None and ts is not None else None,
        "n_messages": len(messages),
        "n_user_turns": len(users),
        "n_assistant_turns": sum(m["role"] == "assistant" for m in messages),
        "has_system": bool(system),
        "system_hash": HASHER.hash_text(system[:2000], "sys") if system else None,
        "conversation_hash": HASHER.hash_text(users[0][:500], "conv") if users else None,
    }


def test_columns_match_a_plain_reading_of_each_event():
    events = _events()
    rows = normalize_batch(events, HASHER).events.to_pylist()
    for ev, row in zip(events, rows, strict=True):
        expected = _expected(ev)
        assert {k: row[k] for k in expected} == expected, ev["event_id"]
    # texts that differ only past the hashed prefix hash alike: one conversation, one system prompt
    assert rows[1]["conversation_hash"] == rows[2]["conversation_hash"] is not None
    assert rows[1]["system_hash"] == rows[2]["system_hash"] != rows[0]["system_hash"]
    assert rows[3]["conversation_hash"] is not None  # an empty first user message still starts a conversation


def test_texts_and_excerpts_follow_the_events():
    events = _events()
    batch = normalize_batch(events, HASHER, keep_text=True)
    texts = batch.texts.to_pylist()
    assert [t["prompt_text"] for t in texts][:3] == ["hi", "part\nraw", LONG + "y"]
    assert texts[4]["system_text"] == "2nd" and texts[5] == {"event_id": "e5", "prompt_text": "", "system_text": "",
                                                             "completion_text": None}  # fmt: skip
    assert [e[:2] for e in batch.excerpts] == [(r["account_id"], r["event_id"]) for r in batch.events.to_pylist()]


def test_empty_batch_gives_empty_tables():
    batch = normalize_batch([], HASHER, keep_text=True)
    assert batch.events.num_rows == 0 and batch.events.schema == EVENT_SCHEMA
    assert batch.texts.num_rows == 0 and batch.texts.schema == TEXT_SCHEMA
    assert batch.excerpts == []
