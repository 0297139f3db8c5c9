"""The proxy against the fake upstream over real sockets: pass-through, recording, and decision application."""

from __future__ import annotations

import orjson
import pytest

from distillguard.bench.fake_upstream import create_fake_upstream
from distillguard.gateway.app import StreamAccumulator, clamp_request, estimate_tokens
from distillguard.gateway.types import Action, Decision
from distillguard.privacy import Hasher
from tests.gateway.factories import SECRET, ScriptedEnforcer, ServerThread, auth, chat, client, gateway


class CapturingUpstream:
    """The fake upstream, remembering the headers and body of each request it got."""

    def __init__(self):
        self.inner = create_fake_upstream()
        self.requests: list[tuple[dict[bytes, bytes], dict]] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        chunks = []

        async def recv():
            msg = await receive()
            chunks.append(msg.get("body", b""))
            return msg

        async def snd(msg):
            if msg["type"] == "http.response.start" and scope["method"] == "POST":
                self.requests.append((dict(scope["headers"]), orjson.loads(b"".join(chunks))))
            await send(msg)

        await self.inner(scope, recv, snd)


@pytest.fixture(scope="module")
def upstream():
    capturing = CapturingUpstream()
    with ServerThread(capturing) as server:
        server.capture = capturing
        yield server


@pytest.fixture
def proxy(upstream):
    enforcer = ScriptedEnforcer()
    with gateway(upstream.url + "/v1", enforcer, upstream_key_env="TEST_UPSTREAM_KEY") as (server, enf, rec):
        yield server, enf, rec, upstream.capture


def sse_events(text: str) -> list[dict]:
    return [orjson.loads(line[5:]) for line in text.splitlines() if line.startswith("data: {")]


def test_chat_is_forwarded_with_the_server_key_and_recorded(proxy, monkeypatch):
    server, enforcer, recorder, capture = proxy
    with client(server) as c:
        r = c.post("/v1/chat/completions", json=chat("What is 2+2?", user="end-user-7", temperature=0.3), headers=auth("sk-bob"))
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "w0 w1 w2 w3"
    headers, body = capture.requests[-1]
    assert b"sk-bob" not in headers.get(b"authorization", b"")  # the client's key never goes upstream
    assert body["messages"][0]["content"] == "What is 2+2?"
    ev, extra = recorder.records[-1]
    assert ev["event_id"] == r.headers["x-distillguard-event"]
    assert ev["account_id"] == "acct-bob" and ev["end_user"] == "end-user-7" and ev["temperature"] == 0.3
    assert ev["api_key"] == str(Hasher(SECRET).hash("sk-bob")) and "sk-bob" not in orjson.dumps(ev).decode()
    assert ev["messages"] == [{"role": "user", "content": "What is 2+2?"}]
    assert ev["completion_text"] == "w0 w1 w2 w3" and ev["completion_tokens"] == 4 and ev["status"] == "success"
    assert ev["source_format"] == "gateway" and ev["ts"] <= ev["end_ts"]
    assert extra == {"endpoint": "/v1/chat/completions", "http_status": 200}
    info = enforcer.requests[-1]
    assert info.account_id == "acct-bob" and info.est_tokens == len("What is 2+2?") // 4 + 4


def test_the_upstream_key_comes_from_the_environment(upstream, monkeypatch):
    monkeypatch.setenv("TEST_UPSTREAM_KEY", "sk-upstream-secret")
    with gateway(upstream.url + "/v1", upstream_key_env="TEST_UPSTREAM_KEY") as (server, _, _):
        with client(server) as c:
            assert c.post("/v1/chat/completions", json=chat(), headers=auth()).status_code == 200
    assert upstream.capture.requests[-1][0][b"authorization"] == b"Bearer sk-upstream-secret"


def test_streamed_chat_is_passed_through_and_recorded_in_full(proxy):
    server, _, recorder, _ = proxy
    with client(server) as c:
        r = c.post("/v1/chat/completions", json=chat(stream=True, max_tokens=5, reasoning_effort="high"), headers=auth())
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.text.rstrip().endswith("data: [DONE]")
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in sse_events(r.text) if e["choices"])
    assert text == "w0 w1 w2 w3 w4"
    ev, extra = recorder.records[-1]
    assert ev["completion_text"] == text and ev["reasoning_text"] == "Let me think. " and ev["stream"] is True
    assert ev["first_token_ts"] is not None and ev["status"] == "success" and "error" not in extra


@pytest.mark.parametrize(
    ("path", "body", "text"),
    [
        ("/v1/completions", {"model": "m", "prompt": "Say hi", "max_tokens": 2}, "w0 w1"),
        ("/v1/responses", {"model": "m", "input": "Say hi", "instructions": "be brief", "max_output_tokens": 3}, "w0 w1 w2"),
        ("/v1/embeddings", {"model": "fake-embed", "input": ["a", "bb"]}, None),
    ],
)
def test_other_endpoints_are_passed_through_and_recorded(proxy, path, body, text):
    server, _, recorder, _ = proxy
    with client(server) as c:
        r = c.post(path, json=body, headers=auth())
    assert r.status_code == 200
    ev, extra = recorder.records[-1]
    assert extra["endpoint"] == path and ev["completion_text"] == text and ev["prompt_tokens"] >= 1
    assert ev["messages"][-1]["content"] in ("Say hi", "bb")
    if path == "/v1/responses":
        assert ev["messages"][0] == {"role": "system", "content": "be brief"} and ev["max_tokens"] == 3


def test_streamed_responses_api_is_recorded_from_its_completed_event(proxy):
    server, _, recorder, _ = proxy
    with client(server) as c:
        r = c.post("/v1/responses", json={"model": "fake-reasoner", "input": "hi", "stream": True, "max_output_tokens": 2}, headers=auth())
    assert "response.completed" in r.text
    ev, _ = recorder.records[-1]
    assert ev["completion_text"] == "w0 w1" and ev["reasoning_text"] == "Let me think." and ev["completion_tokens"] == 2


def test_models_needs_a_key_and_is_passed_through(proxy):
    server, _, recorder, _ = proxy
    n = len(recorder.records)
    with client(server) as c:
        assert c.get("/v1/models").status_code == 401
        r = c.get("/v1/models", headers=auth())
    assert r.status_code == 200 and r.json()["data"][0]["id"] == "fake-model"
    assert len(recorder.records) == n  # a model listing is not an exchange


def test_block_is_refused_with_the_decision_body_and_recorded(proxy):
    server, enforcer, recorder, capture = proxy
    enforcer.scripted["acct-alice"] = Decision(actions=(Action.BLOCK,), reason="harvesting: rule x", status=403,
                                                message="This account is suspended.", policy_rule="block-high")  # fmt: skip
    sent = len(capture.requests)
    with client(server) as c:
        r = c.post("/v1/chat/completions", json=chat(), headers=auth())
    assert r.status_code == 403
    assert r.json()["error"] == {"message": "This account is suspended.", "type": "permission_error", "param": None,
                                 "code": "distillguard_blocked"}  # fmt: skip
    assert len(capture.requests) == sent  # never reached the upstream
    ev, extra = recorder.records[-1]
    assert ev["status"] == "failure" and ev["messages"] and extra["http_status"] == 403
    assert extra["decision"]["actions"] == ["block"] and extra["decision"]["policy_rule"] == "block-high"


def test_throttle_is_429_with_retry_after(proxy):
    server, enforcer, recorder, _ = proxy
    enforcer.scripted["acct-alice"] = Decision(actions=(Action.THROTTLE,), reason="bucket empty", status=429, retry_after_s=2.2)
    with client(server) as c:
        r = c.post("/v1/chat/completions", json=chat(), headers=auth())
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert recorder.records[-1][1]["error"] == "throttled"


def test_strip_and_clamp_change_what_goes_upstream_not_what_is_recorded(proxy):
    server, enforcer, recorder, capture = proxy
    enforcer.scripted["acct-alice"] = Decision(
        actions=(Action.STRIP_LOGPROBS, Action.CLAMP), clamp={"max_tokens": 3, "n": 1}, reason="logprob harvesting"
    )
    with client(server) as c:
        r = c.post("/v1/chat/completions", json=chat(logprobs=True, top_logprobs=5, n=4, max_tokens=50), headers=auth())
    sent = capture.requests[-1][1]
    assert "logprobs" not in sent and "top_logprobs" not in sent and sent["n"] == 1 and sent["max_tokens"] == 3
    answer = r.json()
    assert len(answer["choices"]) == 1 and "logprobs" not in answer["choices"][0]
    assert answer["choices"][0]["message"]["content"] == "w0 w1 w2"
    ev, extra = recorder.records[-1]
    assert ev["logprobs"] is True and ev["top_logprobs"] == 5 and ev["n"] == 4 and ev["max_tokens"] == 50  # what was asked
    assert extra["decision"]["actions"] == ["strip_logprobs", "clamp"]


def test_withhold_reasoning_removes_it_in_json_and_sse(proxy):
    server, enforcer, recorder, _ = proxy
    enforcer.scripted["acct-alice"] = Decision(actions=(Action.WITHHOLD_REASONING,), reason="reasoning coercion")
    with client(server) as c:
        plain = c.post("/v1/chat/completions", json=chat(reasoning_effort="high"), headers=auth())
        streamed = c.post("/v1/chat/completions", json=chat(reasoning_effort="high", stream=True), headers=auth())
        resp = c.post("/v1/responses", json={"model": "fake-reasoner", "input": "hi", "stream": True}, headers=auth())
        other = c.post("/v1/chat/completions", json=chat(reasoning_effort="high"), headers=auth("sk-bob"))
    assert "reasoning_content" not in plain.json()["choices"][0]["message"]
    assert plain.json()["choices"][0]["message"]["content"] == "w0 w1 w2 w3"
    assert "reasoning_content" not in streamed.text and "Let me think" not in streamed.text and "w3" in streamed.text
    assert "Let me think" not in resp.text and '"type":"reasoning"' not in resp.text and "response.completed" in resp.text
    assert "reasoning_content" in other.json()["choices"][0]["message"]  # only the decided account
    assert recorder.records[-4][0]["reasoning_text"] is None  # recorded as the client got it


def test_shadow_decisions_are_recorded_but_not_applied(proxy):
    server, enforcer, recorder, capture = proxy
    enforcer.scripted["acct-alice"] = Decision(
        actions=(Action.BLOCK, Action.STRIP_LOGPROBS, Action.WITHHOLD_REASONING), shadow=True, reason="dry run", status=403
    )
    with client(server) as c:
        r = c.post("/v1/chat/completions", json=chat(logprobs=True, reasoning_effort="low"), headers=auth())
    assert r.status_code == 200
    assert capture.requests[-1][1]["logprobs"] is True
    assert "reasoning_content" in r.json()["choices"][0]["message"]
    decision = recorder.records[-1][1]["decision"]
    assert decision["shadow"] is True and decision["actions"] == ["block", "strip_logprobs", "withhold_reasoning"]
    with client(server) as c:
        metrics = c.get("/metrics").text
    assert 'distillguard_decisions_total{action="block",shadow="true"}' in metrics


def test_clamp_sets_a_cap_when_the_client_set_none():
    body = {"messages": []}
    clamp_request(body, "/v1/responses", {"max_tokens": 64})
    assert body == {"messages": [], "max_output_tokens": 64}
    body = {"max_completion_tokens": 10, "n": 3}
    clamp_request(body, "/v1/chat/completions", {"max_tokens": 64, "n": 2})
    assert body == {"max_completion_tokens": 10, "n": 2}


def test_clamp_caps_top_logprobs_in_each_spelling():
    body = {"messages": [], "logprobs": True, "top_logprobs": 20}
    clamp_request(body, "/v1/chat/completions", {"top_logprobs": 0})
    assert body == {"messages": [], "logprobs": True, "top_logprobs": 0}
    body = {"prompt": "x", "logprobs": 5}  # /v1/completions: logprobs is the number of alternatives
    clamp_request(body, "/v1/completions", {"top_logprobs": 2})
    assert body == {"prompt": "x", "logprobs": 2}
    body = {"input": "x", "top_logprobs": 1}  # already under the cap: unchanged, nothing added
    clamp_request(body, "/v1/responses", {"top_logprobs": 3})
    assert body == {"input": "x", "top_logprobs": 1}


def test_estimate_tokens_counts_prompt_chars_and_max_output():
    assert estimate_tokens({"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 100}) == 200
    assert estimate_tokens({"input": "y" * 40, "max_output_tokens": 10}) == 20
    assert estimate_tokens({"messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 10, "n": 3}) == 40


def test_stream_accumulator_counts_tool_calls_and_usage():
    acc = StreamAccumulator("/v1/chat/completions", withhold=False)
    acc.feed(b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f"}}]}}]}\n\n')
    acc.feed(b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":1}]}}]}\n\n')
    acc.feed(b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}\n\n')
    response = acc.response()
    assert len(response["choices"][0]["message"]["tool_calls"]) == 2 and response["usage"]["prompt_tokens"] == 7
