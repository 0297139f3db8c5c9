"""Writers are the exact inverse of the readers: write, read back, get the same RawEvent fields."""

from __future__ import annotations

import gzip

import orjson
import pytest

from distillguard.errors import Quarantined
from distillguard.ingest import read_file
from distillguard.ingest.accounts import read_accounts_table
from distillguard.ingest.lines import RAW_EVENT_FIELDS
from distillguard.ingest.writers import OTLP_BATCH_SPANS, to_litellm, to_openai, write_accounts, write_batch_pair, write_events

from .factories import comparable, make_account, make_event

#: Formats whose timestamps pass through a unit conversion: compared to the microsecond.
TIME_FIELDS = ("ts", "end_ts", "first_token_ts")


def assert_same_events(written, read, approx_times=False):
    assert len(read) == len(written)
    for expected, got in zip(written, read):
        assert not isinstance(got, Quarantined), got
        assert set(got) == set(RAW_EVENT_FIELDS)  # every reader fills every field
        got = comparable(got)
        if approx_times:
            for key in TIME_FIELDS:
                assert got.pop(key) == pytest.approx(expected[key], abs=1e-6), key
            expected = {k: v for k, v in expected.items() if k not in TIME_FIELDS}
        assert got == expected


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_litellm_roundtrip_is_exact(tmp_path, suffix):
    events = [make_event(i) for i in range(5)]
    path = tmp_path / f"litellm{suffix}"
    assert write_events(events, path, fmt="litellm") == 5
    assert_same_events(events, list(read_file(path)))


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_openai_roundtrip(tmp_path, suffix):
    events = [make_event(i) for i in range(5)]
    path = tmp_path / f"exchanges{suffix}"
    write_events(events, path, fmt="openai")
    assert_same_events(events, list(read_file(path)), approx_times=True)


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_otlp_roundtrip_batches_spans_into_documents(tmp_path, suffix):
    events = [make_event(i) for i in range(OTLP_BATCH_SPANS + 3)]
    path = tmp_path / f"traces{suffix}"
    write_events(events, path, fmt="otlp")
    opener = gzip.open if suffix.endswith(".gz") else open
    with opener(path, "rb") as f:
        documents = [orjson.loads(line) for line in f]
    assert [len(d["resourceSpans"][0]["scopeSpans"][0]["spans"]) for d in documents] == [OTLP_BATCH_SPANS, 3]
    assert_same_events(events, list(read_file(path)), approx_times=True)


def test_batch_pair_roundtrip_keeps_request_and_response(tmp_path):
    events = [make_event(i, ts=1_700_000_000.0 + i, end_ts=None, first_token_ts=None) for i in range(3)]
    write_batch_pair(events, tmp_path / "b_input.jsonl", tmp_path / "b_output.jsonl")
    identity = {"account_id": "acct-0", "api_key": "sk-hash-0", "team_id": "team-a", "org_id": "org-1",
                "ip": "203.0.113.0", "user_agent": "python-httpx/0.27"}
    read = list(read_file(tmp_path / "b_input.jsonl", **identity))
    # A batch has one caller: identity comes from the options, not per line.
    expected = [{**e, **identity} for e in events]
    assert_same_events(expected, read)


def test_sparse_event_roundtrips_with_nones(tmp_path):
    sparse = {"event_id": "e1", "ts": 1_700_000_000.0, "messages": [], "model": None}
    path = tmp_path / "sparse.jsonl"
    write_events([sparse], path, fmt="litellm")
    (got,) = read_file(path)
    assert got["event_id"] == "e1" and got["ts"] == 1_700_000_000.0
    assert got["account_id"] is None and got["completion_text"] is None and got["messages"] == []


def test_writers_are_pure_and_shaped_like_the_source_formats():
    ev = make_event(1)
    record = to_litellm(ev)
    assert record["metadata"]["user_api_key_user_id"] == "acct-1"
    assert record["response"]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 100
    assert len(record["model_parameters"]["tools"]) == 2
    line = to_openai(ev)
    assert line["request"]["user"] == "user-1" and line["status_code"] == 200
    assert line["latency_ms"] == pytest.approx(2500.0)
    assert ev == make_event(1)  # inputs untouched


def test_gzip_output_is_reproducible(tmp_path):
    events = [make_event(i) for i in range(3)]
    path = tmp_path / "a.jsonl.gz"
    write_events(events, path)
    first = path.read_bytes()
    write_events(events, path)
    assert path.read_bytes() == first


def test_write_events_streams_a_generator(tmp_path):
    count = write_events((make_event(i) for i in range(2500)), tmp_path / "big.jsonl")
    assert count == 2500
    assert sum(1 for _ in read_file(tmp_path / "big.jsonl")) == 2500


def test_unknown_output_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown output format 'parquet'"):
        write_events([make_event()], tmp_path / "x", fmt="parquet")


@pytest.mark.parametrize("name", ["accounts.csv", "accounts.csv.gz", "accounts.jsonl"])
def test_accounts_roundtrip(tmp_path, name):
    accounts = [make_account(i) for i in range(3)] + [make_account(3, email=None, created_at=None)]
    assert write_accounts(accounts, tmp_path / name) == 4
    assert list(read_accounts_table(tmp_path / name)) == accounts
