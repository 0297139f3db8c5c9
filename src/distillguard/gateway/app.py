"""The OpenAI-compatible reverse proxy: a plain ASGI app (run it with uvicorn).

Per request to ``/v1/chat/completions``, ``/v1/completions``, ``/v1/responses``
or ``/v1/embeddings``: authenticate the client's key (→ account) → read the
body (413 past ``max_body_bytes``, 400 when it is not a JSON object) → build a
:class:`~distillguard.gateway.types.RequestInfo` → ``await enforcer.decide`` →
refuse (429 + Retry-After / 403 with the decision's OpenAI-style body), or apply
what changes the request (strip logprobs, clamp n / max tokens) unless the
decision is shadow → forward with the server-side upstream key → return or
stream the answer (reasoning content removed when withheld) → record the
exchange.  ``GET /v1/models`` is passed through (authenticated, not recorded).
Also served: ``GET /metrics`` (Prometheus), ``GET /healthz``, ``/admin/...``
(:mod:`distillguard.gateway.admin`).

Every outcome, including 400/401/413/429/403/502/504, a dropped stream and a
client that went away, is recorded, and the record is written (``record()``
returned) *before* the client gets the last byte, so any exchange a client saw
complete survives a crash of the gateway.  Each response carries its record's
id in ``x-distillguard-event``.

Example:
    >>> from distillguard.gateway.config import GatewayConfig
    >>> app = create_app(GatewayConfig(upstream_url="http://127.0.0.1:8001/v1"), AllowAll(), NullRecorder(),
    ...                  keys=KeyTable({}, Hasher(b"k")))
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000, loop="uvloop", http="httptools")
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from typing import Any

import orjson
import pyarrow as pa

from distillguard.gateway.admin import handle_admin
from distillguard.gateway.config import GatewayConfig
from distillguard.gateway.keys import KeyEntry, KeyTable, bearer_token
from distillguard.gateway.metrics import GatewayMetrics
from distillguard.gateway.types import MAX_TOKEN_KEYS, Action, Decision, Enforcer, EnforcerAdmin, Recorder, RequestInfo
from distillguard.gateway.upstream import Upstream, UpstreamError
from distillguard.ingest.lines import FieldError, new_event, to_messages
from distillguard.ingest.openai import as_chat_request, as_chat_response, fill_request, fill_response
from distillguard.privacy import Hasher
from distillguard.schema import RawEvent

log = logging.getLogger("distillguard.gateway")

PROXIED = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/embeddings"})
#: Response fields that carry reasoning, removed when a decision withholds it.
REASONING_KEYS = ("reasoning_content", "reasoning", "reasoning_details", "thinking_blocks")
_JSON = b"application/json"
_SSE = b"text/event-stream"


class AllowAll(Enforcer):
    """An enforcer that allows everything and learns nothing (when no policy is configured)."""

    async def decide(self, request: RequestInfo) -> Decision:
        return _ALLOW

    def observe(self, events: pa.Table) -> None:
        pass


class NullRecorder(Recorder):
    """Records nothing (for examples and tests of the proxy alone)."""

    def record(self, event: RawEvent, extra: dict[str, Any] | None = None) -> None:
        pass

    def close(self) -> None:
        pass


_ALLOW = Decision.allow()
#: every gateway event starts as this (copied): provenance set, every other field None
_EVENT_TEMPLATE: dict[str, Any] = dict(new_event("gateway", "gateway", 0), source_line=None)
_ALLOW_ACTIONS = (Action.ALLOW,)


def openai_error(message: str, kind: str, code: str, param: str | None = None) -> bytes:
    """An OpenAI-style error body."""
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def estimate_tokens(body: dict[str, Any]) -> int:
    """Rough request cost: prompt characters / 4 plus the requested max output tokens."""
    chars = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in messages:
            content = m.get("content") if type(m) is dict else None
            if type(content) is str:
                chars += len(content)
            elif content is not None:
                chars += len(orjson.dumps(content))
    for key in ("prompt", "input", "instructions"):
        value = body.get(key)
        if value is not None:
            chars += len(value) if type(value) is str else len(orjson.dumps(value))
    max_out = 0
    for key in MAX_TOKEN_KEYS:
        value = body.get(key)
        if type(value) is int:
            max_out = value
            break
    n = body.get("n")
    return chars // 4 + max_out * (n if type(n) is int and n > 1 else 1)


def strip_logprobs(body: dict[str, Any]) -> None:
    """Remove logprob requests from a (copied) request body."""
    body.pop("logprobs", None)
    body.pop("top_logprobs", None)
    include = body.get("include")
    if isinstance(include, list):
        body["include"] = [i for i in include if "logprobs" not in str(i)]


def clamp_request(body: dict[str, Any], endpoint: str, limits: dict[str, int]) -> None:
    """Apply ``Decision.clamp`` to a (copied) request body: max tokens (any spelling), n and top logprobs."""
    cap = next((limits[k] for k in MAX_TOKEN_KEYS if k in limits), None)
    if cap is not None and endpoint != "/v1/embeddings":
        present = [k for k in MAX_TOKEN_KEYS if type(body.get(k)) is int]
        for k in present:
            body[k] = min(body[k], cap)
        if not present:  # unset means the upstream's (large) default: set the cap explicitly
            key = {"/v1/responses": "max_output_tokens", "/v1/chat/completions": "max_completion_tokens"}
            body[key.get(endpoint, "max_tokens")] = cap
    n_cap = limits.get("n")
    if n_cap is not None and type(body.get("n")) is int and body["n"] > n_cap:
        body["n"] = n_cap
    top_cap = limits.get("top_logprobs")
    if top_cap is not None:
        # chat and responses ask with top_logprobs; the legacy /v1/completions with an integer logprobs
        keys = ("top_logprobs", "logprobs") if endpoint == "/v1/completions" else ("top_logprobs",)
        for k in keys:
            if type(body.get(k)) is int and body[k] > top_cap:
                body[k] = top_cap


def withhold_reasoning(response: dict[str, Any]) -> bool:
    """Remove reasoning from a response body in place; True when something was removed."""
    removed = False
    choices = response.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            for holder in (choice.get("message"), choice.get("delta")) if isinstance(choice, dict) else ():
                if isinstance(holder, dict):
                    for key in REASONING_KEYS:
                        if holder.pop(key, None) is not None:
                            removed = True
    output = response.get("output")
    if isinstance(output, list):
        kept = [item for item in output if not (isinstance(item, dict) and item.get("type") == "reasoning")]
        if len(kept) != len(output):
            response["output"] = kept
            removed = True
    return removed


class StreamAccumulator:
    """Reads a streamed answer event by event: what to forward (reasoning withheld if asked), and what to record.

    Example:
        >>> acc = StreamAccumulator("/v1/chat/completions", withhold=True)
        >>> acc.feed(b'data: {"choices":[{"index":0,"delta":{"content":"hi","reasoning_content":"hmm"}}]}\\n\\n')
        b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\\n\\n'
        >>> acc.feed(b"data: [DONE]\\n\\n"), acc.terminal, acc.response()["choices"][0]["message"]["content"]
        (b'data: [DONE]\\n\\n', True, 'hi')
    """

    def __init__(self, endpoint: str, withhold: bool):
        self.endpoint = endpoint
        self.withhold = withhold
        self.responses_api = endpoint == "/v1/responses"
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: set[int] = set()
        self.usage: dict[str, Any] | None = None
        self.final: dict[str, Any] | None = None  # /v1/responses: the completed response object
        self.error: str | None = None  # an error event the upstream sent
        self.terminal = False  # the last event fed ends the stream ([DONE] / response.completed)

    def feed(self, event: bytes) -> bytes:
        """One complete SSE event (ending in a blank line) → the bytes to forward (b"" to drop it)."""
        self.terminal = False
        data = None
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                data = line[5:].strip() if data is None else data + b"\n" + line[5:].strip()
        if data is None:
            return event
        if data == b"[DONE]":
            self.terminal = True
            return event
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return event
        if not isinstance(obj, dict):
            return event
        if "error" in obj:
            self.error = str((obj.get("error") or {}).get("message", "error event")) if isinstance(obj.get("error"), dict) else "error event"
        if self.responses_api:
            return self._feed_responses(event, obj)
        choices = obj.get("choices")
        if isinstance(obj.get("usage"), dict):
            self.usage = obj["usage"]
        if choices and isinstance(choices, list) and isinstance(choices[0], dict):
            choice = choices[0]
            if choice.get("index", 0) == 0:
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    content = delta.get("content")
                    if type(content) is str:
                        self.text.append(content)
                    for key in REASONING_KEYS:
                        value = delta.get(key)
                        if type(value) is str:
                            self.reasoning.append(value)
                    for call in delta.get("tool_calls") or ():
                        if isinstance(call, dict):
                            self.tool_calls.add(call.get("index", 0))
                elif type(choice.get("text")) is str:  # /v1/completions
                    self.text.append(choice["text"])
            if self.withhold and withhold_reasoning(obj):
                return b"data: " + orjson.dumps(obj) + b"\n\n"
        return event

    def _feed_responses(self, event: bytes, obj: dict[str, Any]) -> bytes:
        kind = obj.get("type") or ""
        if kind == "response.output_text.delta" and type(obj.get("delta")) is str:
            self.text.append(obj["delta"])
        elif kind.startswith("response.reasoning"):
            if kind.endswith(".delta") and type(obj.get("delta")) is str:
                self.reasoning.append(obj["delta"])
            return b"" if self.withhold else event
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self.terminal = True
            if isinstance(obj.get("response"), dict):
                self.final = obj["response"]
                if kind == "response.failed":
                    self.error = "upstream response failed"
        item = obj.get("item")
        if self.withhold and isinstance(item, dict) and item.get("type") == "reasoning":
            return b""
        if self.withhold and self.final is not None and self.terminal:
            final = dict(self.final)
            if withhold_reasoning(final):
                header = event[: event.find(b"data:")]
                return header + b"data: " + orjson.dumps({**obj, "response": final}) + b"\n\n"
        return event

    def response(self) -> dict[str, Any]:
        """What was streamed, as a chat.completion body (for ``fill_response``)."""
        if self.final is not None:
            return as_chat_response(self.endpoint, self.final)
        message: dict[str, Any] = {"content": "".join(self.text) if self.text else None}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.tool_calls:
            message["tool_calls"] = [{}] * len(self.tool_calls)
        return {"choices": [{"message": message}], "usage": self.usage or {}}


class _Exchange:
    """Per-request state the disconnect watcher and the recorder share."""

    __slots__ = ("event", "extra", "recorded", "disconnected")

    def __init__(self, event: RawEvent, extra: dict[str, Any]):
        self.event, self.extra = event, extra
        self.recorded = False
        self.disconnected = False


class GatewayApp:
    """The ASGI app; build it with :func:`create_app`."""

    def __init__(
        self, config: GatewayConfig, enforcer: Enforcer, recorder: Recorder, keys: KeyTable, upstream: Upstream,
        metrics: GatewayMetrics,
    ):  # fmt: skip
        self.config = config
        self.enforcer = enforcer
        self.admin = enforcer if isinstance(enforcer, EnforcerAdmin) else None
        self.recorder = recorder
        self.keys = keys
        self.upstream = upstream
        self.metrics = metrics
        self.max_body = config.max_body_bytes
        self.admin_token = config.admin_token()
        self.trust_forwarded_for = config.trust_forwarded_for
        self._id_prefix = "gw-" + secrets.token_hex(6) + "-"
        self._ids = itertools.count()
        self.on_shutdown: list[Any] = []  # callables run (in a thread) when the server shuts down

    # ------------------------------------------------------------ ASGI entry

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path in PROXIED:
                await self._proxy(scope, receive, send, path)
            elif path == "/v1/models":
                await self._models(scope, send)
            elif path == "/metrics":
                content_type, body = self.metrics.render()
                await _respond(send, 200, body, content_type)
            elif path == "/healthz":
                await _respond(send, 200, self._health())
            elif path == "/admin" or path.startswith("/admin/"):
                await self._admin(scope, receive, send, path)
            else:
                await _respond(send, 404, openai_error(f"Unknown request URL: {scope['method']} {path}",
                                                       "invalid_request_error", "unknown_url"))  # fmt: skip
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    def _health(self) -> bytes:
        """200 either way: the proxy serves while recording is down (exchanges wait in the WAL, or, when
        the WAL cannot be written, are counted as lost)."""
        recording = self.recorder.status()
        state = recording.get("state")
        if state is None:
            return b'{"status":"ok"}'
        degraded = {}
        if state == "failed":
            degraded["error"] = recording.get("error")
        if recording.get("wal_write_error"):
            degraded.update(wal_write_error=recording["wal_write_error"], lost_records=recording.get("lost_records"))
        if degraded:
            return orjson.dumps({"status": "degraded", "recorder": {"state": state, **degraded}})
        return orjson.dumps({"status": "ok", "recorder": {"state": state}})

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.upstream.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.upstream.close()
                for hook in self.on_shutdown:  # e.g. flush the recorder: uvicorn re-raises SIGTERM right after
                    try:
                        await asyncio.to_thread(hook)
                    except Exception:
                        log.exception("shutdown hook %r failed", hook)
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------ the proxy

    def _client_ip(self, scope, headers: dict[bytes, bytes]) -> str | None:
        if self.trust_forwarded_for:
            forwarded = headers.get(b"x-forwarded-for")
            if forwarded:
                return forwarded.split(b",")[0].strip().decode("latin-1")
        client = scope.get("client")
        return client[0] if client else None

    async def _proxy(self, scope, receive, send, path: str) -> None:
        t0 = time.perf_counter()
        headers = dict(scope["headers"])
        event: RawEvent = _EVENT_TEMPLATE.copy()  # type: ignore[assignment]
        event["messages"] = []
        event["event_id"] = event_id = self._id_prefix + str(next(self._ids))
        event["ts"] = time.time()
        event["ip"] = self._client_ip(scope, headers)
        ua = headers.get(b"user-agent")
        event["user_agent"] = ua.decode("latin-1") if ua else None
        extra: dict[str, Any] = {"endpoint": path}
        ex = _Exchange(event, extra)
        if scope["method"] != "POST":  # not an exchange: answered, not recorded
            self.metrics.request(path, 405)
            return await _respond(send, 405, openai_error(f"{path} takes POST", "invalid_request_error", "method_not_allowed"))
        key = bearer_token(headers.get(b"authorization"))
        entry = self.keys.lookup(key)
        if entry is None:
            self.metrics.unknown_keys.inc()
            event["api_key"] = str(self.keys.hasher.hash(key)) if key else None
            message = "Incorrect API key provided." if key else "Missing API key: send Authorization: Bearer <key>."
            return await self._refuse(send, ex, 401, openai_error(message, "invalid_request_error", "invalid_api_key"), "invalid_api_key")
        event.update(account_id=entry.account_id, api_key=str(entry.key_hash), team_id=entry.team_id, org_id=entry.org_id)

        raw = await self._read_body(receive, headers)
        if raw is None:
            msg = f"Request body exceeds the gateway limit of {self.max_body} bytes."
            return await self._refuse(send, ex, 413, openai_error(msg, "invalid_request_error", "request_too_large"), "request_too_large")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            msg = f"We could not parse the JSON body of your request: {exc}"
            return await self._refuse(send, ex, 400, openai_error(msg, "invalid_request_error", "invalid_json"), "invalid_json")
        if type(body) is not dict:
            msg = f"The request body must be a JSON object, got {type(body).__name__}."
            return await self._refuse(send, ex, 400, openai_error(msg, "invalid_request_error", "invalid_json"), "invalid_json")
        end_user = body.get("user") or body.get("safety_identifier")
        event["end_user"] = end_user if type(end_user) is str else None
        _fill_request(event, path, body)

        decision = await self._decide(entry, path, body, event)
        if decision.actions != _ALLOW_ACTIONS or decision.shadow or decision.reason:  # a plain allow is not logged
            extra["decision"] = decision.to_dict()
            self.metrics.decision(decision.actions, decision.shadow)
        if decision.refuses:
            status = decision.http_status
            extra_headers = []
            if status == 429 and decision.retry_after_s is not None:
                extra_headers.append((b"retry-after", decision.retry_after_header.encode()))
            code = "throttled" if status == 429 else "blocked"
            return await self._refuse(send, ex, status, orjson.dumps(decision.error_body()), code, extra_headers)

        forward = raw
        withhold = False
        if not decision.shadow:
            actions = decision.actions
            if Action.STRIP_LOGPROBS in actions or Action.CLAMP in actions:
                changed = dict(body)
                if Action.STRIP_LOGPROBS in actions:
                    strip_logprobs(changed)
                if Action.CLAMP in actions and decision.clamp:
                    clamp_request(changed, path, decision.clamp)
                forward = orjson.dumps(changed)
            withhold = Action.WITHHOLD_REASONING in actions

        # From here the upstream is involved: a client that goes away cancels it (and is recorded).
        task = asyncio.current_task()

        def on_receive(fut: asyncio.Future) -> None:
            if fut.cancelled() or ex.recorded or fut.exception() is not None:
                return
            if fut.result().get("type") == "http.disconnect":
                ex.disconnected = True
                task.cancel()  # type: ignore[union-attr]

        watcher = asyncio.ensure_future(receive())
        watcher.add_done_callback(on_receive)
        try:
            if body.get("stream") is True:
                await self._forward_stream(send, ex, path, forward, withhold, t0)
            else:
                await self._forward(send, ex, path, forward, withhold, t0)
        except asyncio.CancelledError:
            if not ex.disconnected:
                raise
            task.uncancel()  # type: ignore[union-attr]
            if not ex.recorded:
                event["status"] = "failure"
                event["end_ts"] = time.time()
                extra.update(http_status=499, error="client_disconnected")
                self._record(ex)
                self.metrics.request(path, 499)
        finally:
            watcher.cancel()

    async def _decide(self, entry: KeyEntry, path: str, body: dict[str, Any], event: RawEvent) -> Decision:
        info = RequestInfo(
            account_id=entry.account_id, endpoint=path, body=body, api_key_hash=entry.key_hash, ip=event["ip"],
            user_agent=event["user_agent"], end_user=event["end_user"], est_tokens=estimate_tokens(body), ts=event["ts"],
        )  # fmt: skip
        try:
            return await self.enforcer.decide(info)
        except Exception:  # fail open: a broken policy must not take the API down (logged and counted)
            log.exception("enforcer.decide failed; allowing the request")
            self.metrics.decision((Action.ALLOW,), True)
            return _ALLOW

    async def _read_body(self, receive, headers: dict[bytes, bytes]) -> bytes | None:
        """The request body, or None when it is larger than ``max_body_bytes``."""
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return None
        message = await receive()
        body = message.get("body", b"")
        if not message.get("more_body"):
            return body if len(body) <= self.max_body else None
        parts = [body]
        size = len(body)
        while message.get("more_body"):
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            parts.append(chunk)
        return b"".join(parts)

    def _record(self, ex: _Exchange) -> None:
        ex.recorded = True
        try:
            self.recorder.record(ex.event, ex.extra)
        except Exception:  # the recorders count their own write failures; whatever else breaks, the client was served
            log.exception("recording exchange %s failed", ex.event["event_id"])

    async def _refuse(self, send, ex: _Exchange, status: int, payload: bytes, error: str, extra_headers=()) -> None:
        ev = ex.event
        ev["status"] = "failure"
        ev["end_ts"] = time.time()
        ex.extra.update(http_status=status, error=error)
        self._record(ex)
        self.metrics.request(ex.extra["endpoint"], status)
        await _respond(send, status, payload, _JSON, ev["event_id"], extra_headers)

    async def _upstream_failed(self, send, ex: _Exchange, err: UpstreamError, t_up: float) -> None:
        status = 504 if err.kind == "timeout" else 502
        code = "upstream_timeout" if status == 504 else "upstream_unavailable"
        msg = "The upstream model API did not answer in time." if status == 504 else f"The upstream model API failed: {err.detail}"
        log.warning("upstream %s on %s (event %s): %s", err.kind, ex.extra["endpoint"], ex.event["event_id"], err.detail)
        self.metrics.timing(ex.extra["endpoint"], time.perf_counter() - t_up, time.perf_counter() - t_up)
        await self._refuse(send, ex, status, openai_error(msg, "upstream_error", code), code)

    async def _forward(self, send, ex: _Exchange, path: str, forward: bytes, withhold: bool, t0: float) -> None:
        t_up = time.perf_counter()
        try:
            resp = await self.upstream.send("POST", path, forward)
            payload = await resp.read()
        except UpstreamError as err:
            return await self._upstream_failed(send, ex, err, t_up)
        up_s = time.perf_counter() - t_up
        ev = ex.event
        ev["end_ts"] = time.time()
        ev["status"] = "success" if resp.status < 400 else "failure"
        ex.extra["http_status"] = resp.status
        if resp.status < 400:
            try:
                answer = orjson.loads(payload)
            except orjson.JSONDecodeError:
                answer = None
                ex.extra["error"] = "upstream_invalid_json"
            if type(answer) is dict:
                if withhold and withhold_reasoning(answer):
                    payload = orjson.dumps(answer)
                _fill_response(ev, ex.extra, path, answer)
        else:
            ex.extra["error"] = f"upstream_{resp.status}"
        self._record(ex)
        self.metrics.request(path, resp.status)
        self.metrics.timing(path, up_s, time.perf_counter() - t0)
        await _respond(send, resp.status, payload, resp.content_type, ev["event_id"])

    async def _forward_stream(self, send, ex: _Exchange, path: str, forward: bytes, withhold: bool, t0: float) -> None:
        t_up = time.perf_counter()
        try:
            resp = await self.upstream.send("POST", path, forward)
        except UpstreamError as err:
            return await self._upstream_failed(send, ex, err, t_up)
        if resp.status >= 400 or not resp.content_type.startswith(_SSE):
            # an error (or an upstream that ignored stream=true): pass the whole body through as JSON
            try:
                payload = await resp.read()
            except UpstreamError as err:
                return await self._upstream_failed(send, ex, err, t_up)
            ev = ex.event
            ev["end_ts"] = time.time()
            ev["status"] = "success" if resp.status < 400 else "failure"
            ex.extra["http_status"] = resp.status
            if resp.status >= 400:
                ex.extra["error"] = f"upstream_{resp.status}"
            self._record(ex)
            self.metrics.request(path, resp.status)
            self.metrics.timing(path, time.perf_counter() - t_up, time.perf_counter() - t0)
            return await _respond(send, resp.status, payload, resp.content_type, ev["event_id"])

        ev = ex.event
        acc = StreamAccumulator(path, withhold)
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", _SSE), (b"cache-control", b"no-cache"), (b"x-distillguard-event", ev["event_id"].encode())]})  # fmt: skip
        held: list[bytes] = []  # terminal events, sent only after the exchange is recorded
        buffer = b""
        error: UpstreamError | None = None
        try:
            async for chunk in resp.chunks():
                if ev["first_token_ts"] is None:
                    ev["first_token_ts"] = time.time()
                buffer += chunk.replace(b"\r\n", b"\n") if b"\r" in chunk else chunk
                out = []
                while (end := buffer.find(b"\n\n")) >= 0:
                    piece = acc.feed(buffer[: end + 2])
                    buffer = buffer[end + 2 :]
                    if acc.terminal:
                        held.append(piece)
                    elif piece:
                        out.append(piece)
                if out:
                    await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
        except UpstreamError as err:
            error = err
        finally:
            if error is not None or ex.disconnected:
                resp.close()
            else:
                resp.release()
        up_s = time.perf_counter() - t_up
        ev["end_ts"] = time.time()
        tail = b"".join(held)
        if error is None and not held:
            error = UpstreamError("dropped", "the stream ended before its final event")
        if error is not None:
            kind = "upstream_timeout" if error.kind == "timeout" else "upstream_stream_dropped"
            tail += b"data: " + openai_error(f"The upstream stream failed: {error.detail}", "upstream_error", kind) + b"\n\n"
            ex.extra["error"] = kind
        elif acc.error:
            ex.extra["error"] = "upstream_error_event"
        ev["status"] = "failure" if error is not None or acc.error else "success"
        ex.extra["http_status"] = 200
        try:
            fill_response(ev, acc.response())
        except FieldError as exc:
            ex.extra.setdefault("error", f"unreadable_response: {exc}")
        self._record(ex)
        self.metrics.request(path, 200 if error is None else 502)
        self.metrics.timing(path, up_s, time.perf_counter() - t0)
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    # ------------------------------------------------------------ other routes

    async def _models(self, scope, send) -> None:
        headers = dict(scope["headers"])
        if self.keys.lookup(bearer_token(headers.get(b"authorization"))) is None:
            self.metrics.unknown_keys.inc()
            self.metrics.request("/v1/models", 401)
            return await _respond(send, 401, openai_error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
        try:
            resp = await self.upstream.send("GET", "/v1/models")
            payload = await resp.read()
        except UpstreamError as err:
            status = 504 if err.kind == "timeout" else 502
            self.metrics.request("/v1/models", status)
            return await _respond(send, status, openai_error(f"upstream {err.kind}: {err.detail}", "upstream_error", "upstream_" + err.kind))
        self.metrics.request("/v1/models", resp.status)
        await _respond(send, resp.status, payload, resp.content_type)

    async def _admin(self, scope, receive, send, path: str) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > 1 << 20:
                return await _respond(send, 413, openai_error("admin request too large", "invalid_request_error", "request_too_large"))
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        raw = scope.get("raw_path")  # still percent-encoded, so an id may contain "/"
        raw_path = raw.decode("latin-1") if raw else path
        # the enforcer's admin methods may talk to Redis: keep them off the event loop
        try:
            status, payload = await asyncio.to_thread(
                handle_admin, self.admin, scope["method"], raw_path, scope.get("query_string", b""), body,
                token=self.admin_token, authorization=headers.get(b"authorization"), recorder=self.recorder,
            )  # fmt: skip
        except Exception as exc:
            log.exception("admin request %s %s failed", scope["method"], path)
            return await _respond(send, 500, openai_error(f"admin request failed: {exc!r}", "server_error", "admin_failed"))
        if status == 204:
            return await _respond(send, 204, b"")
        await _respond(send, status, orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS, default=str))


def _fill_request(event: RawEvent, path: str, body: dict[str, Any]) -> None:
    try:
        fill_request(event, as_chat_request(path, body))
    except FieldError:
        # an odd field (say temperature "hot") must not cost the record: keep the model and messages if they parse
        for key in ("temperature", "top_p", "n", "logprobs", "top_logprobs", "seed", "max_tokens", "reasoning_effort"):
            event[key] = None  # type: ignore[literal-required]
        model = body.get("model")
        event["model"] = model if type(model) is str else None
        try:
            event["messages"] = to_messages(as_chat_request(path, body).get("messages"), "request.messages")
        except FieldError:
            event["messages"] = []


def _fill_response(event: RawEvent, extra: dict[str, Any], path: str, answer: dict[str, Any]) -> None:
    try:
        fill_response(event, as_chat_response(path, answer))
    except FieldError as exc:
        extra["error"] = f"unreadable_response: {exc}"


async def _respond(send, status: int, payload: bytes, content_type: bytes = _JSON, event_id: str | None = None,
                   extra_headers=()) -> None:  # fmt: skip
    headers = [(b"content-type", content_type), (b"content-length", str(len(payload)).encode())]
    if event_id is not None:
        headers.append((b"x-distillguard-event", event_id.encode()))
    headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def create_app(
    config: GatewayConfig, enforcer: Enforcer, recorder: Recorder, *, keys: KeyTable | None = None,
    upstream: Upstream | None = None, metrics: GatewayMetrics | None = None, hasher: Hasher | None = None,
) -> GatewayApp:  # fmt: skip
    """The gateway as an ASGI app.

    ``keys`` defaults to ``config.keys_file`` hashed with ``hasher`` (default: the
    recorder's, else ``Hasher.from_config(config.secret_file)``); the recorder's
    lifecycle (``start`` / ``close``) stays with the caller; the app's lifespan
    opens and closes the upstream session.

    Example:
        >>> from distillguard.gateway.config import GatewayConfig
        >>> app = create_app(GatewayConfig(), AllowAll(), NullRecorder(), keys=KeyTable({}, Hasher(b"k")))
        >>> app.upstream.url("/v1/embeddings")
        'http://127.0.0.1:8001/v1/embeddings'
    """
    hasher = hasher or getattr(recorder, "hasher", None) or Hasher.from_config(config.secret_file)
    if keys is None:
        if not config.keys_file:
            from distillguard.errors import ConfigError

            raise ConfigError("the gateway needs a keys file (keys_file / --keys) mapping API keys to accounts")
        keys = KeyTable.from_file(config.keys_file, hasher)
    upstream = upstream or Upstream(
        config.upstream_url, config.upstream_key(), connect_timeout_s=config.connect_timeout_s,
        read_timeout_s=config.read_timeout_s, connections=config.upstream_connections, keepalive_s=config.upstream_keepalive_s,
    )  # fmt: skip
    metrics = metrics or GatewayMetrics()
    metrics.watch_recorder(recorder.status)
    return GatewayApp(config, enforcer, recorder, keys, upstream, metrics)


def build_gateway(config: GatewayConfig) -> tuple[GatewayApp, Recorder, Enforcer]:
    """The app, its recorder (started: a previous run's WAL is replayed, by the recording worker when
    ``config.recorder_process``, while serving begins) and its enforcer, as ``serve`` runs them.

    The enforcer is :func:`distillguard.gateway.enforcement.build_enforcer` (policy,
    online scoring, Redis state per ``config``).
    """
    from distillguard.gateway.recording import open_recording

    hasher, enforcer, recorder, close = open_recording(config)
    try:
        keys = KeyTable.from_file(config.keys_file, hasher) if config.keys_file else None
        app = create_app(config, enforcer, recorder, keys=keys, hasher=hasher)
    except BaseException:
        close()
        raise
    app.on_shutdown.append(close)
    return app, recorder, enforcer


def serve(config: GatewayConfig) -> None:
    """Run the gateway with uvicorn (uvloop, httptools) until interrupted; flush the recorder on the way out."""
    import gc
    import sys

    import uvicorn

    app, _, _ = build_gateway(config)
    # A thread that wants the GIL (the recording supervisor, an in-process recorder) gets it within
    # 0.5 ms instead of the default 5 ms (the p99 budget).
    sys.setswitchinterval(0.0005)
    # Everything built so far lives as long as the process: out of the collector's sight, a full
    # collection scans only what requests allocate (it scanned ~180k start-up objects, 110-180 ms
    # with the event loop stopped: the p99 tail at 500 requests/s).
    gc.collect()
    gc.freeze()
    # The app's lifespan shutdown closes the recorder (the worker stores what is written), the enforcer.
    # proxy_headers off: the client IP comes from X-Forwarded-For only when trust_forwarded_for says
    # so (the app reads it); uvicorn's middleware would also rewrite it for local peers, per request.
    uvicorn.run(app, host=config.host, port=config.port, loop="uvloop", http="httptools", lifespan="on",
                access_log=False, log_level="warning", timeout_graceful_shutdown=10, proxy_headers=False)  # fmt: skip
