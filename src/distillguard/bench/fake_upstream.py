"""A small, fast, deterministic OpenAI-compatible upstream for tests and the gateway benchmark.

Endpoints: ``POST /v1/chat/completions`` (JSON or SSE with ``stream: true``),
``/v1/completions``, ``/v1/responses``, ``/v1/embeddings``; ``GET /v1/models``.
Bodies are deterministic (the same request gives the same bytes) and carry
``usage``.  The completion is ``completion_tokens`` words (``max_tokens`` /
``max_completion_tokens`` / ``max_output_tokens``, default 16, at most 512).

It returns ``reasoning_content`` (``reasoning`` items for /v1/responses) when
the request sets ``reasoning_effort`` / ``reasoning`` or the model name contains
"reason", and ``logprobs`` when the request asks for them, so a gateway's
stripping is visible.  Faults are injected per request with a ``fake`` object in
the body (which a proxy forwards untouched), or for every request with the
command-line options::

    {"fake": {"delay_ms": 50,       # wait before answering
              "status": 503,        # answer with this status and an OpenAI-style error
              "stall_ms": 5000,     # streaming: stall this long after the first chunk
              "drop_after": 3}}     # streaming: kill the connection after 3 chunks

Run: ``python -m distillguard.bench.fake_upstream --port 8001 [--delay-ms 0]``.

Example:
    >>> body = chat_completion({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
    >>> body["choices"][0]["message"]["content"], body["usage"]["completion_tokens"]
    ('w0 w1 w2', 3)
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import orjson

MAX_TOKENS = 512
DEFAULT_TOKENS = 16
_CREATED = 1_700_000_000
_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


class Faults:
    """Faults applied to every request (the command line); a request's ``fake`` object adds to them."""

    def __init__(self, delay_ms: float = 0.0, status: int | None = None):
        self.delay_ms, self.status = delay_ms, status


def _tokens(body: dict[str, Any]) -> int:
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        v = body.get(key)
        if isinstance(v, int) and not isinstance(v, bool):
            return max(1, min(v, MAX_TOKENS))
    return DEFAULT_TOKENS


def _words(n: int) -> list[str]:
    return [f"w{i}" for i in range(n)]


def _prompt_tokens(body: dict[str, Any]) -> int:
    return max(1, len(orjson.dumps(body.get("messages") or body.get("prompt") or body.get("input") or "")) // 4)


def _wants_reasoning(body: dict[str, Any]) -> bool:
    return bool(body.get("reasoning_effort") or body.get("reasoning")) or "reason" in str(body.get("model", ""))


def _usage(body: dict[str, Any], n: int, reasoning: bool) -> dict[str, Any]:
    p = _prompt_tokens(body)
    return {
        "prompt_tokens": p,
        "completion_tokens": n,
        "total_tokens": p + n,
        "completion_tokens_details": {"reasoning_tokens": n if reasoning else 0},
    }


def _logprobs(words: list[str], top: int) -> dict[str, Any]:
    return {
        "content": [
            {"token": w, "logprob": -0.1, "top_logprobs": [{"token": w, "logprob": -0.1}] * max(0, top)} for w in words
        ]
    }


def chat_completion(body: dict[str, Any]) -> dict[str, Any]:
    """The non-streaming chat.completion for ``body``."""
    n_tok, n = _tokens(body), body.get("n") if isinstance(body.get("n"), int) else 1
    words = _words(n_tok)
    reasoning = _wants_reasoning(body)
    choices = []
    for i in range(max(1, n)):
        message: dict[str, Any] = {"role": "assistant", "content": " ".join(words)}
        if reasoning:
            message["reasoning_content"] = "Let me think step by step. " + " ".join(words)
        choice: dict[str, Any] = {"index": i, "message": message, "finish_reason": "length"}
        if body.get("logprobs"):
            choice["logprobs"] = _logprobs(words, body.get("top_logprobs") or 0)
        choices.append(choice)
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": _CREATED, "model": body.get("model", "fake"),
        "choices": choices, "usage": _usage(body, n_tok * max(1, n), reasoning),
    }  # fmt: skip


def chat_chunks(body: dict[str, Any]) -> list[bytes]:
    """The SSE events of a streamed chat.completion (``[DONE]`` last)."""
    words = _words(_tokens(body))
    reasoning = _wants_reasoning(body)
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": _CREATED, "model": body.get("model", "fake")}
    events = []
    if reasoning:
        events.append({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Let me think. "}}]})
    for i, w in enumerate(words):
        choice: dict[str, Any] = {"index": 0, "delta": {"content": w if i == 0 else " " + w}, "finish_reason": None}
        if body.get("logprobs"):
            choice["logprobs"] = _logprobs([w], body.get("top_logprobs") or 0)
        events.append({**base, "choices": [choice]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**base, "choices": [], "usage": _usage(body, len(words), reasoning)})
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def completion(body: dict[str, Any]) -> dict[str, Any]:
    words = _words(_tokens(body))
    choice: dict[str, Any] = {"index": 0, "text": " ".join(words), "finish_reason": "length"}
    if body.get("logprobs"):
        choice["logprobs"] = {"tokens": words, "token_logprobs": [-0.1] * len(words)}
    return {
        "id": "cmpl-fake", "object": "text_completion", "created": _CREATED, "model": body.get("model", "fake"),
        "choices": [choice], "usage": _usage(body, len(words), False),
    }  # fmt: skip


def completion_chunks(body: dict[str, Any]) -> list[bytes]:
    words = _words(_tokens(body))
    base = {"id": "cmpl-fake", "object": "text_completion", "created": _CREATED, "model": body.get("model", "fake")}
    events = [{**base, "choices": [{"index": 0, "text": (" " if i else "") + w, "finish_reason": None}]} for i, w in enumerate(words)]
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def response_object(body: dict[str, Any]) -> dict[str, Any]:
    """The /v1/responses object for ``body``."""
    words = _words(_tokens(body))
    reasoning = _wants_reasoning(body)
    output: list[dict[str, Any]] = []
    if reasoning:
        output.append({"type": "reasoning", "id": "rs_fake", "summary": [{"type": "summary_text", "text": "Let me think."}]})
    output.append({
        "type": "message", "id": "msg_fake", "role": "assistant", "status": "completed",
        "content": [{"type": "output_text", "text": " ".join(words), "annotations": []}],
    })  # fmt: skip
    p = _prompt_tokens(body)
    return {
        "id": "resp_fake", "object": "response", "created_at": _CREATED, "status": "completed",
        "model": body.get("model", "fake"), "output": output,
        "usage": {"input_tokens": p, "output_tokens": len(words), "total_tokens": p + len(words),
                  "output_tokens_details": {"reasoning_tokens": len(words) if reasoning else 0}},
    }  # fmt: skip


def response_events(body: dict[str, Any]) -> list[bytes]:
    """SSE events of a streamed response (typed events, ``response.completed`` last)."""
    full = response_object(body)
    events: list[dict[str, Any]] = [{"type": "response.created", "response": {**full, "status": "in_progress", "output": []}}]
    for item in full["output"]:
        if item["type"] == "reasoning":
            events.append({"type": "response.reasoning_summary_text.delta", "item_id": item["id"], "delta": "Let me think."})
    for i, w in enumerate(_words(_tokens(body))):
        events.append({"type": "response.output_text.delta", "item_id": "msg_fake", "delta": (" " if i else "") + w})
    events.append({"type": "response.completed", "response": full})
    return [b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events]


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input")
    inputs = inputs if isinstance(inputs, list) else [inputs]
    data = [{"object": "embedding", "index": i, "embedding": [0.0, 0.5, 1.0, float(len(str(x)) % 7)]} for i, x in enumerate(inputs)]
    p = _prompt_tokens(body)
    return {"object": "list", "data": data, "model": body.get("model", "fake"), "usage": {"prompt_tokens": p, "total_tokens": p}}


MODELS = {"object": "list", "data": [{"id": m, "object": "model", "created": _CREATED, "owned_by": "fake"}
                                     for m in ("fake-model", "fake-reasoner", "fake-embed")]}  # fmt: skip

_JSON_ROUTES = {
    "/v1/chat/completions": (chat_completion, chat_chunks),
    "/v1/completions": (completion, completion_chunks),
    "/v1/responses": (response_object, response_events),
    "/v1/embeddings": (embeddings, None),
}


def _error(status: int, message: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": "server_error" if status >= 500 else "invalid_request_error",
                                   "param": None, "code": None}})  # fmt: skip


async def _read_body(receive) -> bytes:
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            return body


def create_fake_upstream(faults: Faults | None = None):
    """The fake upstream as an ASGI app."""
    faults = faults or Faults()

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/v1/models" and method == "GET":
            return await _respond(send, 200, orjson.dumps(MODELS))
        route = _JSON_ROUTES.get(path)
        if route is None or method != "POST":
            return await _respond(send, 404, _error(404, f"unknown route {method} {path}"))
        try:
            body = orjson.loads(await _read_body(receive))
        except orjson.JSONDecodeError as exc:
            return await _respond(send, 400, _error(400, f"invalid JSON: {exc}"))
        fake = body.get("fake") if isinstance(body.get("fake"), dict) else {}
        delay = fake.get("delay_ms", faults.delay_ms)
        if delay:
            await asyncio.sleep(delay / 1000.0)
        status = fake.get("status", faults.status)
        if status:
            return await _respond(send, int(status), _error(int(status), "injected upstream error"))
        make_json, make_events = route
        if body.get("stream") and make_events is not None:
            return await _stream(send, make_events(body), fake)
        return await _respond(send, 200, orjson.dumps(make_json(body)))

    return app


async def _respond(send, status: int, payload: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": _JSON_HEADERS + [(b"content-length", str(len(payload)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": payload})


async def _stream(send, events: list[bytes], fake: dict[str, Any]) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
    drop_after, stall_ms = fake.get("drop_after"), fake.get("stall_ms")
    for i, event in enumerate(events):
        if drop_after is not None and i >= drop_after:
            # raising from an ASGI app mid-body makes the server abort the connection: a dropped stream
            raise ConnectionAbortedError("fake upstream: injected mid-stream drop")
        await send({"type": "http.response.body", "body": event, "more_body": True})
        if stall_ms and i == 0:
            await asyncio.sleep(stall_ms / 1000.0)
    await send({"type": "http.response.body", "body": b""})


app = create_fake_upstream()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible upstream (deterministic, fast).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="wait this long before every answer")
    parser.add_argument("--status", type=int, default=None, help="answer every request with this error status")
    args = parser.parse_args(argv)
    uvicorn.run(
        create_fake_upstream(Faults(args.delay_ms, args.status)), host=args.host, port=args.port,
        loop="uvloop", http="httptools", access_log=False, log_level="warning", lifespan="on",
    )  # fmt: skip


if __name__ == "__main__":
    main()
