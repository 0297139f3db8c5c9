"""The LiteLLM plugin against the real litellm package: the SDK with the logger as a
callback, and the real LiteLLM proxy (a subprocess) with the guardrail configured."""

from __future__ import annotations

import os

# Before litellm is imported: no model-cost-map download, no telemetry (no network in tests).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_TELEMETRY", "False")

import asyncio  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402
import litellm  # noqa: E402 - a test dependency: missing it fails the run, never skips it
import pytest  # noqa: E402
from litellm.proxy._types import UserAPIKeyAuth  # noqa: E402

from distillguard.gateway import litellm_plugin as lp  # noqa: E402
from distillguard.gateway.types import Action, Decision  # noqa: E402
from distillguard.normalize import account_key  # noqa: E402
from distillguard.privacy import Hasher  # noqa: E402

from .litellm_fakes import EndUserEnforcer, ListRecorder, ServerThread, echo_upstream, free_port, wait_for  # noqa: E402

HASHER = Hasher(b"test-secret")


@pytest.fixture
def runtime():
    rt = lp.PluginRuntime(enforcer=EndUserEnforcer(), recorder=ListRecorder(), hasher=HASHER)
    lp.configure(rt)
    yield rt
    lp.configure(None)


# --- in-process: the SDK with the logger registered --------------------------------------------


def test_acompletion_records_the_exchange_as_a_raw_event(runtime):
    logger = lp.DistillguardLogger()
    with ServerThread(echo_upstream()) as upstream:
        old = litellm.callbacks
        litellm.callbacks = [logger]
        try:

            async def call():
                await litellm.acompletion(
                    model="openai/fake-model", api_base=upstream.base_url, api_key="sk-upstream",
                    messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}],
                    temperature=0.3, n=2, logprobs=True, top_logprobs=5, max_tokens=77, seed=11, user="end-user-1",
                    metadata={"user_api_key_user_id": "acct-1", "user_api_key_hash": "hashed-key-1", "user_api_key_team_id": "team-a"},
                )  # fmt: skip
                stream = await litellm.acompletion(
                    model="openai/fake-model", api_base=upstream.base_url, api_key="sk-upstream",
                    messages=[{"role": "user", "content": "stream please"}], stream=True, user="end-user-2",
                )  # fmt: skip
                async for _ in stream:  # logged once the stream is consumed
                    pass
                await wait_for(lambda: len(runtime.recorder.records) >= 2)

            asyncio.run(call())
        finally:
            litellm.callbacks = old
    (ev, extra), (stream_ev, _) = sorted(runtime.recorder.records, key=lambda r: r[0]["ts"])
    assert ev["event_id"].startswith("chatcmpl-") and ev["status"] == "success"
    assert (ev["account_id"], ev["api_key"], ev["team_id"], ev["end_user"]) == ("acct-1", "hashed-key-1", "team-a", "end-user-1")
    assert ev["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]
    assert (ev["temperature"], ev["n"], ev["logprobs"], ev["top_logprobs"], ev["max_tokens"], ev["seed"]) == (0.3, 2, True, 5, 77, 11)
    assert ev["completion_text"] == "hello" and ev["reasoning_text"] == "let me think"
    assert (ev["prompt_tokens"], ev["completion_tokens"]) == (5, 2)
    assert ev["end_ts"] >= ev["ts"] > time.time() - 60 and ev["source_format"] == "litellm"
    assert extra["endpoint"] == "/v1/chat/completions" and extra["http_status"] == 200 and extra["decision"] is None
    assert stream_ev["stream"] is True and stream_ev["completion_text"] == "hello" and stream_ev["end_user"] == "end-user-2"


def test_logger_records_a_failure_once(runtime):
    logger = lp.DistillguardLogger()
    payload = {"id": "call-1", "litellm_call_id": "call-1", "startTime": 1.7e9, "status": "failure", "call_type": "acompletion",
               "error_str": "boom", "error_information": {"error_code": "502"}, "metadata": {"user_api_key_user_id": "acct-9"}}  # fmt: skip
    for _ in range(2):  # LiteLLM's proxy logs some failures twice
        logger.log_failure_event({"standard_logging_object": payload}, None, None, None)
    ((ev, extra),) = runtime.recorder.records
    assert ev["status"] == "failure" and ev["account_id"] == "acct-9"
    assert extra["http_status"] == 502 and extra["error"] == "boom"


def test_logger_never_raises_on_a_bad_payload(runtime):
    lp.DistillguardLogger().log_success_event({"standard_logging_object": {"id": "x", "startTime": "not-a-time"}}, None, None, None)
    assert runtime.recorder.records == []


# --- the pieces of the guardrail --------------------------------------------------------------


def test_account_identity_matches_the_recorded_events_account():
    body = {"model": "m", "messages": [{"role": "user", "content": "abcd" * 20}], "max_tokens": 10, "user": "eu-1"}
    by_user = lp.request_info(UserAPIKeyAuth(user_id="u-1", api_key="hk", team_id="t"), body, "acompletion", HASHER)
    assert by_user.account_id == "u-1" and by_user.api_key_hash == HASHER.hash("hk") and by_user.end_user == "eu-1"
    assert by_user.est_tokens == 20 + 10 and "metadata" not in by_user.body
    by_key = lp.request_info(UserAPIKeyAuth(api_key="hk"), body, "aembedding", HASHER)
    assert by_key.account_id == account_key(None, HASHER.hash("hk"), None) and by_key.endpoint == "/v1/embeddings"
    by_end_user = lp.request_info(UserAPIKeyAuth(), body, "aresponses", HASHER)
    assert by_end_user.account_id == account_key(None, None, HASHER.hash("eu-1")) and by_end_user.endpoint == "/v1/responses"


def test_apply_to_request_strips_and_clamps():
    shaping = Decision(actions=(Action.STRIP_LOGPROBS, Action.CLAMP), clamp={"n": 1, "max_tokens": 100})
    data = {"logprobs": True, "top_logprobs": 20, "n": 8, "max_completion_tokens": 4000}
    lp.apply_to_request(shaping, data, "/v1/chat/completions")
    assert data == {"n": 1, "max_completion_tokens": 100}
    unbounded = {"messages": []}
    lp.apply_to_request(shaping, unbounded, "/v1/chat/completions")
    assert unbounded["max_completion_tokens"] == 100  # no cap asked for: the clamp is the cap
    small = {"max_tokens": 10, "n": 1}
    lp.apply_to_request(shaping, small, "/v1/chat/completions")
    assert small == {"max_tokens": 10, "n": 1}


def test_withhold_reasoning_on_responses_and_chunks():
    from litellm.types.utils import ModelResponse, ModelResponseStream

    resp = ModelResponse(choices=[{"index": 0, "message": {"role": "assistant", "content": "x", "reasoning_content": "secret"}}])
    lp.withhold_reasoning(resp)
    assert "secret" not in resp.model_dump_json() and resp.choices[0].message.content == "x"
    chunk = ModelResponseStream(choices=[{"index": 0, "delta": {"reasoning_content": "secret"}}])
    assert "secret" not in lp.withhold_reasoning(chunk).model_dump_json()
    responses_api = {"output": [{"type": "reasoning", "summary": ["secret"]}, {"type": "message", "content": "x"}]}
    assert lp.withhold_reasoning(responses_api)["output"] == [{"type": "message", "content": "x"}]


def test_refusal_is_openai_shaped():
    exc = lp.refusal(Decision(actions=(Action.BLOCK,), reason="no", status=403))
    assert exc.status_code == 403 and exc.detail["error"]["type"] == "permission_error" and exc.headers is None


def test_missing_config_is_a_clear_error(monkeypatch):
    from distillguard.errors import ConfigError

    lp.configure(None)
    monkeypatch.delenv(lp.CONFIG_ENV, raising=False)
    with pytest.raises(ConfigError, match=lp.CONFIG_ENV):
        lp.current_runtime()


# --- the real LiteLLM proxy with the guardrail and the logger configured -----------------------
# The production path: $DISTILLGUARD_LITELLM_CONFIG names a distillguard gateway config; its policy
# and the real enforcer decide, the WAL recorder stores into DuckDB.  The policy conditions on
# request parameters so that each test can pick its outcome (the master key is one account).

POLICY = """
version: 1
mode: enforce
rules:
  - name: block-many-samples
    when: {n_gt: 7}
    actions: [block]
  - name: would-block-very-long
    when: {max_tokens_gt: 3000}
    actions: [block]
    shadow: true
  - name: throttle-long
    when: {max_tokens_gt: 1000}
    actions: [throttle]
    throttle: {unit: requests, account: {rate: 0.001, burst: 1}}
  - name: shape-logprob-requests
    when: {logprobs: true}
    actions: [strip_logprobs, clamp, withhold_reasoning]
    clamp: {n: 1, max_tokens: 64}
"""

GATEWAY_CONFIG = """
policy_path: {dir}/policy.yml
store_path: {dir}/store.duckdb
wal_dir: {dir}/wal
flush_interval_s: 0.05
"""

PROXY_CONFIG = """
model_list:
  - model_name: fake-model
    litellm_params:
      model: openai/fake-model
      api_base: {upstream}
      api_key: sk-upstream
general_settings:
  master_key: sk-master
litellm_settings:
  callbacks: distillguard.gateway.litellm_plugin.recorder_callback
guardrails:
  - guardrail_name: distillguard
    litellm_params:
      guardrail: distillguard.gateway.litellm_plugin.DistillguardGuardrail
      mode: [pre_call, post_call]
      default_on: true
"""


def litellm_env(**extra: str) -> dict[str, str]:
    """Environment for a LiteLLM proxy subprocess: offline, quiet, no provider keys."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(
        LITELLM_TELEMETRY="False", LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR",
        NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", **extra,
    )  # fmt: skip
    return env


class ProxyProcess:
    """``litellm --config ...`` in a subprocess, waited for until it answers its liveness probe."""

    def __init__(self, config: Path, env: dict[str, str], cwd: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / "proxy.log"
        self._log = open(self.log_path, "wb")
        cmd = [str(Path(sys.executable).parent / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"LiteLLM proxy did not start: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.base + "/health/liveliness", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # graceful: the plugin's atexit flushes the recorder
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("litellm-proxy")
    with ServerThread(echo_upstream()) as upstream:
        (tmp / "policy.yml").write_text(POLICY)
        (tmp / "gateway.yml").write_text(GATEWAY_CONFIG.format(dir=tmp))
        (tmp / "config.yaml").write_text(PROXY_CONFIG.format(upstream=upstream.base_url))
        env = litellm_env(**{lp.CONFIG_ENV: str(tmp / "gateway.yml"), "DISTILLGUARD_SECRET": "test-secret"})
        process = ProxyProcess(tmp / "config.yaml", env, tmp)
        try:
            yield {"base": process.base, "upstream": upstream, "process": process, "store": tmp / "store.duckdb"}
        finally:
            process.stop()


def chat(proxy, user: str, **params):
    body = {"model": "fake-model", "messages": [{"role": "user", "content": f"hi from {user}"}], "user": user, **params}
    return httpx.post(proxy["base"] + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-master"}, timeout=30)


def received_by_upstream(proxy, user: str) -> list[dict]:
    # LiteLLM does not forward `user` to this provider: match on the message instead
    return [b for b in proxy["upstream"].server.config.app.state.received if b["messages"][-1]["content"] == f"hi from {user}"]


def test_proxy_allows(proxy):
    r = chat(proxy, "alice", max_tokens=10)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "hello"
    assert r.json()["choices"][0]["message"]["reasoning_content"] == "let me think"
    (sent,) = received_by_upstream(proxy, "alice")
    assert sent["max_tokens"] == 10


def test_proxy_blocks_with_403_openai_error(proxy):
    r = chat(proxy, "bob", n=8)
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["type"] == "permission_error" and "usage policy" in error["message"]
    assert {"param", "code"} <= set(error)
    assert received_by_upstream(proxy, "bob") == []


def test_proxy_throttles_with_429_and_retry_after(proxy):
    assert chat(proxy, "carol", max_tokens=2000).status_code == 200  # the bucket holds one request
    r = chat(proxy, "carol", max_tokens=2000)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert len(received_by_upstream(proxy, "carol")) == 1


def test_proxy_strips_logprobs_clamps_and_withholds_reasoning(proxy):
    r = chat(proxy, "dave", logprobs=True, top_logprobs=20, n=4, max_tokens=900)
    assert r.status_code == 200
    assert "reasoning_content" not in r.json()["choices"][0]["message"]
    (sent,) = received_by_upstream(proxy, "dave")
    assert "logprobs" not in sent and "top_logprobs" not in sent and sent["n"] == 1 and sent["max_tokens"] == 64


def test_proxy_withholds_reasoning_from_a_stream(proxy):
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi from erin"}], "user": "erin", "stream": True, "logprobs": True}
    with httpx.stream("POST", proxy["base"] + "/v1/chat/completions", json=body,
                      headers={"Authorization": "Bearer sk-master"}, timeout=30) as r:  # fmt: skip
        assert r.status_code == 200
        text = r.read().decode()
    assert "hel" in text and "lo" in text and "let me think" not in text and "reasoning_content" not in text


def test_proxy_shadow_mode_only_logs(proxy):
    r = chat(proxy, "frank", max_tokens=4000)
    assert r.status_code == 200
    (sent,) = received_by_upstream(proxy, "frank")
    assert sent["max_tokens"] == 4000


def open_store_when_released(path, timeout_s: float = 60.0):
    """The store, read-only, once the recording worker has let it go."""
    import duckdb

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_proxy_exchanges_land_in_the_store(proxy):
    """Last: stops the proxy and reads the store.  uvicorn ends the proxy by re-raising SIGTERM, so no
    exit hook runs: the recording worker sees its pipe close, stores what the WAL holds and exits."""
    proxy["process"].stop()
    con = open_store_when_released(proxy["store"])
    rows = con.execute(
        "SELECT l.http_status, l.actions, l.shadow, l.policy_rule, e.status, e.logprobs, e.n, e.max_tokens, e.account_id "
        "FROM gateway_log l JOIN events e USING (event_id) ORDER BY e.ts"
    ).fetchall()
    by_rule = {(r[3], r[0]): r for r in rows}
    assert len(rows) == 7  # alice, bob, carol x2, dave, erin, frank: every exchange, refused ones included, once
    assert {r[8] for r in rows} == {"default_user_id"}  # the master key's UserAPIKeyAuth.user_id
    assert by_rule[("block-many-samples", 403)][1] == "block" and by_rule[("block-many-samples", 403)][4] == "failure"
    assert by_rule[("throttle-long", 429)][1] == "throttle"
    assert by_rule[("would-block-very-long", 200)][2] is True
    shaped = [r for r in rows if r[3] == "shape-logprob-requests" and r[6] == 4]
    # online scoring sees what the client asked for, not what was forwarded
    assert shaped and shaped[0][5:8] == (True, 4, 900)
