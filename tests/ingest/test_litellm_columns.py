"""The compiled LiteLLM column path against the Python reader, its definition.

Every check comes down to one oracle: a line ``litellm_columns`` takes must give
exactly the row ``exchange_table(LiteLLMReader().parse_lines(...))`` gives it
(floats bit for bit), a line the reader quarantines must be left, and every
non-blank line is taken or left, numbered as ``block_lines`` numbers it.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distillguard.errors import Quarantined
from distillguard.ingest.lines import block_lines, iter_line_blocks
from distillguard.ingest.litellm import LiteLLMReader
from distillguard.ingest.litellm_columns import decode_string, litellm_columns, parse_number
from distillguard.normalize import EXCHANGE_SCHEMA, exchange_table

from .factories import litellm_record

SOURCE = "logs/litellm.jsonl"


# --------------------------------------------------------------------------- the oracle


def bits(row: dict[str, Any]) -> dict[str, Any]:
    """A row with floats as their hex text, so -0.0 != 0.0 and every last bit counts."""
    return {k: v.hex() if isinstance(v, float) else v for k, v in row.items()}


def oracle_row(line_no: int, raw: bytes, source_file: str = SOURCE) -> dict[str, Any] | None:
    """The Python reader's row for one line, or None when it quarantines the line."""
    (item,) = LiteLLMReader().parse_lines(Path(source_file), [(line_no, raw)])
    if isinstance(item, Quarantined):
        return None
    (row,) = exchange_table([item]).to_pylist()
    return row


def check_block(block: bytes, first_line_no: int = 1, source_file: str = SOURCE) -> tuple[int, int]:
    """Assert the contract on one block; returns (lines taken, lines left)."""
    table, left = litellm_columns(block, first_line_no, source_file)
    assert table.schema == EXCHANGE_SCHEMA
    table.validate(full=True)  # offsets, bitmaps and UTF-8 of every string
    lines = block_lines(first_line_no, block)
    taken_nos = table.column("source_line").to_pylist()
    left_nos = [n for n, _ in left]
    assert taken_nos == sorted(taken_nos) and left_nos == sorted(left_nos)  # input order
    assert sorted(taken_nos + left_nos) == [n for n, _ in lines]  # each line taken or left, once
    raws = dict(lines)
    assert all(raw == raws[n] for n, raw in left)
    for row in table.to_pylist():
        expected = oracle_row(row["source_line"], raws[row["source_line"]], source_file)
        assert expected is not None, f"took line {row['source_line']}, which the reader quarantines"
        assert bits(row) == bits(expected)
    return len(taken_nos), len(left_nos)


def typical_record(**overrides: Any) -> dict[str, Any]:
    """``litellm_record`` as the common case looks: string contents, the user agent in metadata."""
    record = litellm_record()
    record["messages"] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]
    record["metadata"] = {k: v for k, v in record["metadata"].items() if k != "requester_metadata"}
    record["metadata"]["user_agent"] = "curl/8.5"
    record.update(overrides)
    return record


def dumps(record: Any) -> bytes:
    """JSON as orjson writes it, or as json does for ints beyond 64 bits (orjson refuses to write those)."""
    try:
        return orjson.dumps(record)
    except TypeError:
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


def line(record: Any) -> bytes:
    return dumps(record) + b"\n"


def taken(raw: bytes) -> bool:
    table, left = litellm_columns(raw, 1, SOURCE)
    check_block(raw)
    return table.num_rows == 1


# --------------------------------------------------------------------------- real-looking logs


@pytest.fixture(scope="module")
def simulated_log(tmp_path_factory) -> Path:
    from distillguard.ingest.writers import write_events
    from distillguard.simulate import generate_events

    path = tmp_path_factory.mktemp("sim") / "traffic.litellm.jsonl"
    write_events(itertools.islice(generate_events("demo", seed=3, corpora="bundled", scale=0.05, days=1), 1200), path)
    return path


def test_a_simulated_log_is_taken_and_equals_the_reader(simulated_log):
    n_taken = n_left = 0
    for first_line_no, block in iter_line_blocks(simulated_log, 256 << 10):  # several blocks: line numbers carry on
        t, left = check_block(block, first_line_no, str(simulated_log))
        n_taken, n_left = n_taken + t, n_left + left
    assert n_taken + n_left > 1000
    assert n_taken >= 0.99 * (n_taken + n_left)


def test_the_typical_record_is_taken_and_mapped_field_by_field():
    raw = line(typical_record(end_user="", model_parameters={"max_completion_tokens": 256, "temperature": 0.2,
                                                             "tools": [{}, {}], "stream": True}))  # fmt: skip
    table, left = litellm_columns(raw, 5, "a//b/../x.jsonl")
    assert not left
    (row,) = table.to_pylist()
    assert row["event_id"] == "chatcmpl-abc" and row["source_line"] == 5 and row["source_file"] == "a/b/../x.jsonl"
    assert row["end_user"] == "end-9" and row["user_agent"] == "curl/8.5" and row["org_id"] is None
    assert (row["max_tokens"], row["tools_count"], row["stream"], row["temperature"]) == (256, 2, True, 0.2)
    assert (row["prompt_text"], row["first_user_text"], row["system_text"]) == ("hello", "hello", "Be brief.")
    assert row["completion_text"] == "hi there" and row["n_messages"] == 2
    check_block(raw, 5, "a//b/../x.jsonl")


# --------------------------------------------------------------------------- cases worth naming

EMOJI = "caf\u00e9 \U0001f600 \u2713 \x00\x1f \"q\" \\ /"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(json.dumps(typical_record(model=EMOJI)).encode() + b"\n", id="ascii-escapes-and-surrogate-pairs"),
        pytest.param(json.dumps(typical_record(model=EMOJI), ensure_ascii=False).encode() + b"\r\n", id="utf8-crlf"),
        pytest.param(line(typical_record(startTime=1_700_000_000, endTime=-0.0, completionStartTime=None)), id="ints"),
        pytest.param(b'{"id":"x","startTime":-0,"endTime":-0.0,"model_parameters":{"temperature":-0,"top_p":-0e0}}\n',
                     id="minus-zero-int-is-plus-zero"),  # fmt: skip
        pytest.param(line(typical_record(messages=[
            {"role": "developer", "content": ""}, {"role": "system"}, {"role": "system", "content": "S2"},
            {"role": "user", "content": None}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "u2"},
            {"role": "tool", "content": "t"}])), id="message-roles"),  # fmt: skip
        pytest.param(line(typical_record(response={"choices": [{"message": {"content": None, "tool_calls": [{}]}}, 5],
                                                   "usage": {"completion_tokens_details": {"reasoning_tokens": 7}}})),
                     id="tool-calls-and-reasoning-tokens"),  # fmt: skip
        pytest.param(line(typical_record(response={"choices": []}, messages=None, metadata=None)), id="empty"),
        pytest.param(b' {"id":"x" , "startTime" : 1.5e9,"extra":[{"a":[1,-2.5E-3,true,false,null,{}],"":""}]}\t\r\n',
                     id="whitespace-and-ignored-values"),  # fmt: skip
    ],
)
def test_unusual_but_plain_lines_are_taken_and_equal(raw):
    assert taken(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id":"x","startTime":1.5e9,"model":"\\ud800"}\n',  # lone surrogate
        b'{"id":"x","startTime":1.5e9,"model":"\\udc00\\ud800"}\n',
        b'{"id":"x","startTime":1.5e9,"model":"a\x01"}\n',  # control character
        b'{"id":"x","startTime":1.5e9,"model":"\xc0\x80"}\n',  # overlong UTF-8
        b'{"id":"x","startTime":1.5e9,"model":"\xed\xa0\x80"}\n',  # a surrogate in UTF-8
        b'{"id":"x","startTime":1.5e9,"x":1e400}\n',  # infinite
        b'{"id":"x","startTime":1.5e9,"x":NaN}\n',
        b'{"id":"x","startTime":1.5e9,"x":[1,]}\n',
        b'{"id":"x","startTime":1.5e9,"x":[1}}\n',  # mismatched brackets
        b'{"id":"x","startTime":1.5e9,"x":{"a":[1]]}\n',
        b'{"id":"x","startTime":1.5e9,"x":{"a" 1}}\n',
        b'{"id":"x","startTime":1.5e9,"x":01}\n',
        b'{"id":"x","startTime":1.5e9,}\n',
        b'{"id":"x","startTime":1.5e9}x\n',
        b'\xef\xbb\xbf{"id":"x","startTime":1.5e9}\n',  # byte order mark
        b'\x0b{"id":"x","startTime":1.5e9}\n',  # not JSON whitespace
        b'["id","x"]\n',
        b'{"id":"x","startTime":1.7e12}\n',  # milliseconds
        b'{"id":"x","startTime":"2024-01-01"}\n',
        b'{"id":"x","startTime":1.5e9,"prompt_tokens":2.0}\n',
        b'{"id":"x","startTime":1.5e9,"metadata":"m"}\n',
        b'{"id":"x","startTime":1.5e9,"response":{"choices":{"a":1}}}\n',
        b'{"id":"x","startTime":1.5e9,"response":{"choices":[{"message":{"reasoning_content":1.5}}]}}\n',
        b'{"id":"x","startTime":1.5e9,"response":{"usage":{"completion_tokens_details":[1]}}}\n',
        b'{"id":"x","startTime":1.5e9,"messages":[{"role":5,"content":"c"}]}\n',
        b'{"id":"x","startTime":1.5e9,"model_parameters":{"tools":"t"}}\n',
        b'{"id":"x","startTime":1.5e9,"x":' + b"[" * 70 + b"]" * 70 + b"}\n",  # deeper than followed
    ],
)
def test_lines_the_reader_quarantines_or_that_are_unusual_are_left(raw):
    table, left = litellm_columns(raw, 1, SOURCE)
    assert table.num_rows == 0 and left == [(1, raw)]
    check_block(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id":"x","startTime":1.5e9,"model":"a","model":"b"}\n',  # duplicate keys: orjson keeps the last
        b'{"id":"x","startTime":1.5e9,"metadata":{"user_agent":"a","user_agent":"b"}}\n',
        b'{"id":"x","startTime":1.5e9,"mod\\u0065l":"b"}\n',  # an escaped key
        b'{"startTime":1.5e9}\n',  # no id: the reader hashes the line
        b'{"id":"x","startTime":1.5e9,"metadata":{"headers":{"user-agent":"ua"}}}\n',
        b'{"id":"x","startTime":1.5e9,"messages":"just text"}\n',
        b'{"id":"x","startTime":1.5e9,"response":"just text"}\n',
        b'{"id":"x","startTime":0.12345678901234567890}\n',  # not converted exactly here
    ],
)
def test_lines_the_reader_maps_in_ways_not_followed_here_are_left(raw):
    assert oracle_row(1, raw) is not None
    table, left = litellm_columns(raw, 1, SOURCE)
    assert table.num_rows == 0 and left == [(1, raw)]


def test_blank_lines_are_numbered_but_neither_taken_nor_left():
    good = line(typical_record())
    block = b"\n" + good + b"  \t\r\n\x0b\x0c\n" + b"garbage\n" + good.rstrip(b"\n")  # last line without newline
    table, left = litellm_columns(block, 10, SOURCE)
    assert table.column("source_line").to_pylist() == [11, 15]
    assert left == [(14, b"garbage\n")]
    check_block(block, 10)


def test_a_block_too_large_for_one_pass_is_split_at_line_feeds(monkeypatch):
    import distillguard.ingest.litellm_columns as module

    good = line(typical_record())
    block = good * 3 + b"bad\n" + good + b"\n" + good * 2 + (b"x" * 5000) + b"\n" + good
    whole, whole_left = litellm_columns(block, 3, SOURCE)
    monkeypatch.setattr(module, "_MAX_BLOCK", 2 * len(good))  # Arrow's int32 offsets, scaled down
    parts, parts_left = litellm_columns(block, 3, SOURCE)
    assert parts.to_pylist() == whole.to_pylist() and parts_left == whole_left
    assert parts.num_rows == 7 and [n for n, _ in parts_left] == [6, 11]


def test_an_empty_block():
    table, left = litellm_columns(b"", 1, SOURCE)
    assert table.num_rows == 0 and left == [] and table.schema == EXCHANGE_SCHEMA


# --------------------------------------------------------------------------- property tests

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 1, -1, 2, 10**18 - 1, 10**18, -(10**18), 2**53 + 1, 2**63, 10**30]),
    st.integers(-(10**12), 10**12),
    st.sampled_from([1e5, 2.0, -0.0, 0.0, 0.1, 1.7e9, 1.7e12, 1e11, -1e11, 99999999999.99998, 100_000_000_000, 1e300,
                     5e-324, 1.7976931348623157e308, 123456.789]),  # fmt: skip
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "0", "x", "2024-01-01T00:00:00Z", "1.5", EMOJI, "\U0001f600"]),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)
texts = st.one_of(st.sampled_from(["hi", "", EMOJI, "line\nbreak", "tab\t\"quoted\""]), st.text(max_size=20))


def often(draw, percent: int) -> bool:
    """True about ``percent`` % of the time (hypothesis favours small integers; a weighted list is even-handed)."""
    return draw(st.sampled_from([True] * percent + [False] * (100 - percent)))


def contents(draw) -> Any:
    if often(draw, 85):
        return draw(texts)
    return draw(st.sampled_from([None, [{"type": "text", "text": "part"}], 5, {"text": "x"}]))


def roles(draw) -> Any:
    if often(draw, 92):
        return draw(st.sampled_from(["user", "assistant", "system", "developer", "tool", "", "User"]))
    return draw(json_scalars)


@st.composite
def messages(draw) -> Any:
    if not often(draw, 90):
        return draw(st.one_of(st.none(), texts, json_values))
    out = []
    for _ in range(draw(st.integers(0, 5))):
        message: dict[str, Any] = {}
        if often(draw, 97):
            message["role"] = roles(draw)
        if often(draw, 90):
            message["content"] = contents(draw)
        if not often(draw, 90):
            message["name"] = draw(json_values)
        out.append(message if often(draw, 97) else draw(json_values))
    return out


def maybe(draw, strategy, typical: Any, percent: int = 85) -> Any:
    """The typical value about ``percent`` % of the time, else left out (``...``) or anything."""
    if often(draw, percent):
        return typical
    return ... if draw(st.booleans()) else draw(strategy)


def present(**values: Any) -> dict[str, Any]:
    """A dict of the values that are not ``...`` (absent)."""
    return {k: v for k, v in values.items() if v is not ...}


@st.composite
def responses(draw) -> Any:
    if not often(draw, 90):
        return draw(st.one_of(st.none(), texts, json_values))
    content = draw(texts) if often(draw, 85) else contents(draw)
    message = present(role="assistant", content=maybe(draw, st.none(), content),
                      reasoning_content=maybe(draw, st.one_of(texts, json_scalars), None),
                      tool_calls=maybe(draw, json_values, [{"id": "c"}]))  # fmt: skip
    choice = present(index=0, message=maybe(draw, json_values, message))
    choices = maybe(draw, st.one_of(json_values, st.just([]), st.just([5, choice])), [choice, {"index": 1}])
    details = present(reasoning_tokens=maybe(draw, json_scalars, 12))
    details = maybe(draw, json_values, details)
    usage = maybe(draw, json_values, present(prompt_tokens=3, completion_tokens_details=details))
    return present(id="r", choices=choices, usage=usage)


FIELDS = {  # path: (anything strategy, typical value)
    ("id",): (json_scalars, "chatcmpl-abc"),
    ("startTime",): (json_scalars, 1_700_000_000.5),
    ("endTime",): (json_scalars, 1_700_000_002.0),
    ("completionStartTime",): (json_scalars, None),
    ("model",): (json_scalars, "gpt-teacher"),
    ("status",): (json_scalars, "success"),
    ("prompt_tokens",): (json_scalars, 10),
    ("completion_tokens",): (json_scalars, 20),
    ("end_user",): (json_scalars, ""),
    ("requester_ip_address",): (json_scalars, "198.51.100.7"),
    ("metadata", "user_api_key_user_id"): (json_scalars, "acct-7"),
    ("metadata", "user_api_key_hash"): (json_scalars, "88dc28d0"),
    ("metadata", "user_api_key_team_id"): (json_scalars, ""),
    ("metadata", "user_api_key_org_id"): (json_scalars, None),
    ("metadata", "user_api_key_end_user_id"): (json_scalars, "end-9"),
    ("metadata", "requester_ip_address"): (json_scalars, "203.0.113.1"),
    ("metadata", "user_agent"): (json_scalars, "curl/8.5"),
    ("metadata", "headers"): (st.one_of(json_values, st.just({"user-agent": "h/1", "User-Agent": 5})), ...),
    ("metadata", "requester_metadata"): (st.one_of(json_values, st.just({"headers": {"user_agent": "r/1"}})), ...),
    ("model_parameters", "max_tokens"): (json_scalars, ...),
    ("model_parameters", "max_completion_tokens"): (json_scalars, 256),
    ("model_parameters", "temperature"): (json_scalars, 0.2),
    ("model_parameters", "top_p"): (json_scalars, ...),
    ("model_parameters", "n"): (json_scalars, 1),
    ("model_parameters", "logprobs"): (json_scalars, ...),
    ("model_parameters", "top_logprobs"): (json_scalars, ...),
    ("model_parameters", "seed"): (json_scalars, 42),
    ("model_parameters", "reasoning_effort"): (json_scalars, "high"),
    ("model_parameters", "stream"): (json_scalars, False),
    ("model_parameters", "user"): (json_scalars, ...),
    ("model_parameters", "tools"): (json_values, [{"type": "function"}]),
    ("extra",): (json_values, {"nested": [1, 2.5, {"deep": None}]}),
}


@st.composite
def records(draw) -> Any:
    """A real-shaped record with some fields replaced by anything (or left out), once in a while not an object."""
    if not often(draw, 97):
        return draw(json_values)
    record: dict[str, Any] = {"trace_id": "t", "call_type": "acompletion", "metadata": {}, "model_parameters": {}}
    mutate = draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=3))
    for path, (strategy, typical) in FIELDS.items():
        value = maybe(draw, strategy, typical, percent=30) if path in mutate else typical
        if value is ...:
            continue
        target = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    record["messages"] = draw(messages())
    record["response"] = draw(responses())
    for block in ("metadata", "model_parameters"):
        if not often(draw, 97):
            record[block] = draw(json_values)
    return record


@st.composite
def encoded(draw, record: Any) -> bytes:
    """One record as a JSON line: compact, spaced, or ASCII-only with \\u escapes."""
    style = draw(st.sampled_from(["orjson", "orjson", "orjson", "ascii", "spaced"]))
    if style == "orjson":
        return dumps(record)
    if style == "ascii":
        return json.dumps(record, separators=(",", ":")).encode()
    return json.dumps(record, ensure_ascii=False, indent=None).encode()


def duplicate_a_key(raw: bytes, where: int) -> bytes:
    """The line with one key repeated (orjson keeps the last), in the top object or a block the mapping reads."""
    for opening, duplicate in ((b'"metadata":{', b'"user_agent":"dup",'), (b'"model_parameters":{', b'"n":7,'),
                               (b'"messages":[{', b'"content":"dup",'),
                               (b'"message":{', b'"content":"dup",')):  # fmt: skip
        at = raw.find(opening)
        if where == 0 and at >= 0:
            return raw[: at + len(opening)] + duplicate + raw[at + len(opening) :]
        where -= 1
    return b'{"model":"dup",' + raw[1:] if raw.startswith(b"{") else raw


@st.composite
def corrupted(draw, raw: bytes) -> bytes:
    """A raw line, sometimes damaged as files get damaged."""
    damages = ["truncate", "flip", "invalid-utf8", "garbage", "duplicate", "number"]
    damage = draw(st.sampled_from(["none"] * 12 + damages))
    if damage == "truncate":
        return raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]
    if damage == "flip" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        return raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    if damage == "invalid-utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xc0\x80", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf0\x80\x80\x80",
                                    b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80"]))  # fmt: skip
        at = raw.find(b'"', draw(st.integers(0, max(len(raw) - 1, 0)))) + 1
        return raw[:at] + bad + raw[at:]
    if damage == "garbage":
        return raw + draw(st.sampled_from([b"x", b",", b"}", b" {}", b"\x00", b"\x0c"]))
    if damage == "duplicate":
        return duplicate_a_key(raw, draw(st.integers(0, 4)))
    if damage == "number":  # one number written another valid (or invalid) way
        token = draw(st.one_of(
            st.sampled_from(["-0", "-0.0", "0", "1E2", "2.50", "1700000000.5000", "17e8", "1e11", "-1", "01", "1.",
                             "-"]),
            st.from_regex(r"-?(0|[1-9][0-9]{0,19})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
        ))  # fmt: skip
        keys = [b'"startTime":', b'"endTime":', b'"temperature":', b'"prompt_tokens":', b'"seed":',
                b'"reasoning_tokens":']
        for key in draw(st.permutations(keys)):
            at = raw.find(key)
            if at >= 0:
                start = at + len(key)
                stop = start
                while stop < len(raw) and raw[stop : stop + 1] in b"-+.0123456789eE":
                    stop += 1
                if stop > start:
                    return raw[:start] + token.encode() + raw[stop:]
    return raw


@st.composite
def blocks(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        raw = draw(corrupted(draw(encoded(draw(records())))))
        lines.append(raw + draw(st.sampled_from([b"\n", b"\n", b"\r\n", b" \n"])))
        if not often(draw, 90):
            lines.append(draw(st.sampled_from([b"\n", b"  \n", b"\t\r\n", b"\x0b\n"])))
    if draw(st.booleans()):
        lines[-1] = lines[-1].rstrip(b"\n")  # the last line of a file without its newline
    return b"".join(lines)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(blocks(), st.integers(1, 10**6))
def test_any_block_rows_equal_the_reader_and_quarantined_lines_are_left(block, first_line_no):
    check_block(block, first_line_no)


SAMPLE_VALUES = [None, "", "x", "\u00e9\U0001f600", 0, 7, -3, 2.0, -0.0, 1e5, 0.1, 1e11, -99999999999.5,
                 100_000_000_000, True, False, [], [1, 2], {}, {"a": 1}]  # fmt: skip
STRING_PATHS = {("model",), ("status",), ("end_user",), ("requester_ip_address",), ("model_parameters", "user"),
                ("model_parameters", "reasoning_effort")} | {("metadata", k) for k in (
                    "user_api_key_user_id", "user_api_key_hash", "user_api_key_team_id", "user_api_key_org_id",
                    "user_api_key_end_user_id", "requester_ip_address", "user_agent")}  # fmt: skip
INT_PATHS = {("prompt_tokens",), ("completion_tokens",)} | {
    ("model_parameters", k) for k in ("max_tokens", "max_completion_tokens", "n", "top_logprobs", "seed")}


def should_take(path: tuple[str, ...], value: Any) -> bool:
    """Which values of a field the compiled path takes: exactly the JSON type the reader expects (or null)."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if path == ("id",):
        return isinstance(value, str) and value != ""
    if path == ("startTime",):
        return is_number and abs(value) < 1e11  # epoch seconds
    if path in {("endTime",), ("completionStartTime",)}:
        return value is None or (is_number and abs(value) < 1e11)
    if path in {("model_parameters", "temperature"), ("model_parameters", "top_p")}:
        return value is None or is_number
    if path in STRING_PATHS:
        return value is None or isinstance(value, str)
    if path in INT_PATHS:
        return value is None or type(value) is int
    if path in {("model_parameters", "logprobs"), ("model_parameters", "stream")}:
        return value is None or isinstance(value, bool)
    if path == ("model_parameters", "tools"):
        return value is None or isinstance(value, list)
    return True  # ignored here: metadata.headers and requester_metadata (user_agent is set), extra


def test_each_field_takes_exactly_the_json_types_the_reader_expects():
    """Not hollow: one field varied at a time over values of every JSON type, each line taken exactly when
    its field has the expected type (and then equal to the reader)."""
    variants, expected = [], []
    for path in FIELDS:
        for value in SAMPLE_VALUES:
            record = typical_record()
            target = record
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = value
            variants.append(line(record))
            expected.append(should_take(path, value))
    table, left = litellm_columns(b"".join(variants), 1, SOURCE)
    taken_lines = set(table.column("source_line").to_pylist())
    assert [n in taken_lines for n in range(1, len(variants) + 1)] == expected
    check_block(b"".join(variants))


# --------------------------------------------------------------------------- numbers and strings

number_tokens = st.one_of(
    st.from_regex(r"-?(0|[1-9][0-9]{0,22})(\.[0-9]{1,22})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(min_value=1e9, max_value=2e9).map(lambda x: repr(round(x, 3))),  # timestamps as logs have them
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["01", "1.", ".5", "-", "+1", "1e", "1e+", "--1", "0x1", "1_0", "-0", "-0.0", "0e999", "1e400"]),
)


@settings(max_examples=1000, deadline=None)
@given(number_tokens)
def test_numbers_are_what_orjson_reads_bit_for_bit_or_refused(token):
    try:
        expected = orjson.loads(token)
    except orjson.JSONDecodeError:
        expected = None
    got = parse_number(token.encode())
    if got is None:
        return
    assert expected is not None and type(got) is type(expected)
    assert (got.hex() if isinstance(got, float) else got) == (
        expected.hex() if isinstance(expected, float) else expected
    )


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15))
def test_short_decimals_convert_exactly(x):
    """Not hollow: a float's shortest repr with up to 15 digits and a small exponent is always converted."""
    token = repr(x)
    mantissa, _, exponent = token.lower().partition("e")
    digits = mantissa.lstrip("-").replace(".", "").strip("0")
    if len(digits) <= 15 and abs(int(exponent or 0)) <= 7 and (x == 0 or 1e-7 <= abs(x)):
        assert parse_number(token.encode()).hex() == float(token).hex()


def test_integer_tokens_stay_integers():
    assert parse_number(b"-0") == 0 and type(parse_number(b"-0")) is int
    assert math.copysign(1, parse_number(b"-0.0")) == -1
    assert parse_number(b"123456789012345678") == 123456789012345678
    assert parse_number(b"1234567890123456789") is None  # more than 18 digits: left to orjson


def escape_some(text: str, draw) -> str:
    """``text`` as a JSON string token with some characters escaped as \\uXXXX (surrogate pairs for astral ones)."""
    out = []
    for ch in text:
        if ch in '"\\' or ord(ch) < 0x20 or draw(st.integers(0, 3)) == 0:
            units = ch.encode("utf-16-be")
            hex_case = draw(st.sampled_from([str.lower, str.upper]))
            out.extend("\\u" + hex_case(f"{units[k]:02x}{units[k + 1]:02x}") for k in range(0, len(units), 2))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40), st.data())
def test_strings_unescape_as_orjson_reads_them(text, data):
    tokens = [orjson.dumps(text), json.dumps(text).encode(), escape_some(text, data.draw).encode("utf-8")]
    for token in tokens:
        assert decode_string(token) == orjson.loads(token) == text


string_pieces = st.one_of(
    st.sampled_from([b"a", b'"', b"\\", b"\\n", b"\\u00e9", b"\\ud83d\\ude00", b"\\ud800", b"\\udfff", b"\\q", b"\x01",
                     b"\x1f", b"\x7f", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xed\xa0\x80", b"\xc0\x80",
                     b"\x80", b"\xff", b"abcdefgh", b"0123456789abcdef"]),
    st.binary(max_size=3),
)  # fmt: skip


@settings(max_examples=1000, deadline=None)
@given(st.lists(string_pieces, max_size=24).map(b"".join))
def test_any_bytes_in_a_string_are_read_exactly_as_orjson_reads_them(body):
    """Validation is exact for strings (8 bytes at a time, then byte by byte): what orjson reads is read the same,
    what it refuses is refused."""
    token = b'"' + body + b'"'
    try:
        expected = orjson.loads(token)
    except orjson.JSONDecodeError:
        expected = None
    assert decode_string(token) == expected


@pytest.mark.parametrize(
    "token",
    [b'"\\ud800"', b'"\\udc00"', b'"\\ud800\\u0041"', b'"\\ud800x"', b'"a\x1f"', b'"\\x"', b'"\\u12"', b'"\xff"',
     b'"\xc3"', b'"\xe0\x80\x80"', b'"\xf0\x80\x80\x80"', b'"\xf4\x90\x80\x80"', b'"abc', b'"\\'],
)  # fmt: skip
def test_strings_orjson_refuses_are_refused(token):
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(token)
    assert decode_string(token) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_ignored_json_value_is_validated_not_refused(value):
    """Arbitrary JSON under a key the mapping ignores: the line is still taken, unless it holds a number
    left to orjson (ints beyond 18 digits, magnitudes near the double's limit)."""
    record = typical_record(extra=copy.deepcopy(value))
    raw = line(record)
    numbers = [v for v in _leaves(value) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    unusual = any(abs(v) >= 10**18 if isinstance(v, int) else abs(v) >= 1e300 for v in numbers)
    assert taken(raw) or unusual


def _leaves(value: Any):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value
