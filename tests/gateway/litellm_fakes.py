"""Test doubles for the LiteLLM plugin tests: an echoing OpenAI-compatible upstream,
an enforcer that decides by end user, and a recorder that keeps what it gets.

The echo upstream keeps every request body it received (``GET /received``), so a
test can check what LiteLLM actually forwarded after the guardrail ran.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
import time
from typing import Any

import pyarrow as pa
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from distillguard.gateway.types import Action, Decision, Enforcer, Recorder, RequestInfo
from distillguard.schema import RawEvent
from tests.gateway.ports import free_port

_ids = itertools.count(1)


def echo_upstream() -> Starlette:
    """An OpenAI-compatible chat endpoint that answers "hello" with a reasoning trace and logs bodies."""
    received: list[dict[str, Any]] = []

    async def chat(request: Request):
        body = await request.json()
        received.append(body)
        rid = f"chatcmpl-{os.getpid()}-{next(_ids)}"
        created = int(time.time())
        if body.get("stream"):
            async def chunks():
                for delta in ({"role": "assistant", "reasoning_content": "let me think"}, {"content": "hel"}, {"content": "lo"}):
                    yield "data: " + json.dumps({"id": rid, "object": "chat.completion.chunk", "created": created, "model": body["model"],
                                                 "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}) + "\n\n"
                yield "data: " + json.dumps({"id": rid, "object": "chat.completion.chunk", "created": created, "model": body["model"],
                                             "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                                             "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}) + "\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(chunks(), media_type="text/event-stream")
        message = {"role": "assistant", "content": "hello", "reasoning_content": "let me think"}
        return JSONResponse({
            "id": rid, "object": "chat.completion", "created": created, "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        })  # fmt: skip

    async def show(request: Request):
        return JSONResponse(received)

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/received", show)])
    app.state.received = received
    return app


class ServerThread:
    """Runs an ASGI app with uvicorn in a daemon thread on a free localhost port."""

    def __init__(self, app: Any):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test upstream did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


class EndUserEnforcer(Enforcer):
    """Decides by the end user's name: ``blocked*`` 403, ``throttled*`` 429, ``strip*`` strip + clamp +
    withhold reasoning, ``shadow*`` the same in shadow mode, anything else allowed."""

    def __init__(self) -> None:
        self.seen: list[RequestInfo] = []

    async def decide(self, request: RequestInfo) -> Decision:
        self.seen.append(request)
        who = request.end_user or ""
        shaping = (Action.STRIP_LOGPROBS, Action.CLAMP, Action.WITHHOLD_REASONING)
        if who.startswith("blocked"):
            return Decision(actions=(Action.BLOCK,), reason="account blocked by analyst", status=403)
        if who.startswith("throttled"):
            return Decision(actions=(Action.THROTTLE,), reason="rate limited: harvesting pattern", status=429, retry_after_s=2.0)
        if who.startswith("strip"):
            return Decision(actions=shaping, reason="logprob harvesting", clamp={"n": 1, "max_tokens": 64})
        if who.startswith("shadow"):
            return Decision(actions=(Action.BLOCK,), reason="would block", status=403, shadow=True)
        return Decision.allow()

    def observe(self, events: pa.Table) -> None:
        pass


class ListRecorder(Recorder):
    """Keeps ``(event, extra)`` pairs in memory."""

    def __init__(self) -> None:
        self.records: list[tuple[RawEvent, dict[str, Any]]] = []

    def record(self, event: RawEvent, extra: dict[str, Any] | None = None) -> None:
        self.records.append((event, extra or {}))

    def close(self) -> None:
        pass


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the condition")
        await asyncio.sleep(0.02)
