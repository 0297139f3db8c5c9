"""HTTP load generator for the gateway benchmark, run as its own process.

Three modes, all over keep-alive connections (aiohttp on uvloop):

* ``open``: a fixed offered rate.  Request *i* is due at ``t0 + i / rate`` and is
  sent then whether or not earlier ones have answered; its latency is measured
  from when it was *due*, so a server (or this generator) falling behind shows
  up as latency instead of silently lowering the rate (no coordinated omission).
* ``closed``: ``concurrency`` workers each send the next request as soon as the
  last one answered, for ``duration_s``: the maximum throughput.
* ``replay``: the requests of a JSONL file (``{"at": s, "headers": {...},
  "body": {...}, "tag": ...}``) each sent at its own offset; the answer's status
  is kept per request.

Streaming requests (``"stream": true`` in the body) are read to the last byte;
time to first byte is kept too.

Run: ``python -m distillguard.bench.loadgen SPEC.json OUT.json``.

Example:
    >>> spec = {"url": "http://127.0.0.1:8001/v1/chat/completions", "mode": "open", "rate": 500,
    ...         "duration_s": 10, "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}
    >>> run_spec(spec)["latency_ms"][:3]   # doctest: +SKIP
    [0.61, 0.58, 0.63]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson


class _Results:
    def __init__(self) -> None:
        self.latency_ms: list[float] = []
        self.ttfb_ms: list[float] = []
        self.send_lag_ms: list[float] = []  # how late the generator itself sent (open loop)
        self.status: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.replay: list[tuple[Any, int, float]] = []  # (tag, status, latency ms)

    def to_dict(self, wall_s: float) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms, "ttfb_ms": self.ttfb_ms, "send_lag_ms": self.send_lag_ms,
            "status": {str(k): v for k, v in self.status.items()}, "errors": dict(self.errors),
            "completed": len(self.latency_ms), "wall_s": wall_s, "replay": self.replay,
        }  # fmt: skip


async def _one(session, url: str, headers: dict[str, str], payload: bytes, stream: bool, due: float,
               out: _Results, tag: Any = None, record: bool = True) -> None:  # fmt: skip
    import aiohttp

    now = time.perf_counter
    sent = now()
    try:
        async with session.post(url, data=payload, headers=headers) as resp:
            first = None
            if stream:
                async for _ in resp.content.iter_any():
                    if first is None:
                        first = now()
            else:
                await resp.read()
                first = now()
            end = now()
            status = resp.status
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        if record:
            out.errors[type(exc).__name__] += 1
            if tag is not None:
                out.replay.append((tag, 0, (now() - due) * 1000))
        return
    if not record:
        return
    # From when it was due if sent late (the wait counts), from when it was sent if the timer woke
    # the loop a little early (uvloop's timers have 1 ms granularity).
    origin = min(due, sent)
    out.status[status] += 1
    out.latency_ms.append(round((end - origin) * 1000, 4))
    out.ttfb_ms.append(round(((first or end) - origin) * 1000, 4))
    out.send_lag_ms.append(round((sent - due) * 1000, 4))
    if tag is not None:
        out.replay.append((tag, status, round((end - origin) * 1000, 3)))


async def _run(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    mode = spec.get("mode", "open")
    url = spec.get("url", "")
    headers = {"content-type": "application/json", **spec.get("headers", {})}
    body = spec.get("body") or {}
    payload = orjson.dumps(body)
    stream = bool(body.get("stream"))
    out = _Results()
    connector = aiohttp.TCPConnector(limit=int(spec.get("connections", 256)), force_close=False)
    timeout = aiohttp.ClientTimeout(total=float(spec.get("timeout_s", 30)))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",)) as session:
        warmup_s = float(spec.get("warmup_s", 0))
        if warmup_s > 0 and mode != "replay":  # open connections and warm the servers up, not measured
            await _closed(session, url, headers, payload, stream, min(8, int(spec.get("concurrency", 8))), warmup_s, out, record=False)
        if spec.get("mark_file"):  # tells the orchestrator the measured window starts now
            Path(spec["mark_file"]).touch()
        t0 = time.perf_counter()
        if mode == "open":
            await _open(session, url, headers, payload, stream, float(spec["rate"]), float(spec["duration_s"]), out)
        elif mode == "closed":
            await _closed(session, url, headers, payload, stream, int(spec.get("concurrency", 32)), float(spec["duration_s"]), out)
        elif mode == "replay":
            await _replay(session, spec, out)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        wall = time.perf_counter() - t0
    return out.to_dict(round(wall, 4))


async def _open(session, url, headers, payload, stream, rate: float, duration_s: float, out: _Results) -> None:
    n = max(1, int(rate * duration_s))
    t0 = time.perf_counter() + 0.01
    tasks = set()
    for i in range(n):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(_one(session, url, headers, payload, stream, due, out))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)


async def _closed(session, url, headers, payload, stream, concurrency: int, duration_s: float, out: _Results,
                  record: bool = True) -> None:  # fmt: skip
    deadline = time.perf_counter() + duration_s

    async def worker() -> None:
        while time.perf_counter() < deadline:
            await _one(session, url, headers, payload, stream, time.perf_counter(), out, record=record)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _replay(session, spec: dict[str, Any], out: _Results) -> None:
    url = spec["url"]
    base_headers = {"content-type": "application/json", **spec.get("headers", {})}
    items = [orjson.loads(line) for line in Path(spec["replay_file"]).read_bytes().splitlines() if line.strip()]
    t0 = time.perf_counter() + 0.05
    tasks = set()
    for item in items:
        due = t0 + float(item["at"])
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        payload = orjson.dumps(item["body"])
        task = asyncio.create_task(
            _one(session, url, {**base_headers, **item.get("headers", {})}, payload, bool(item["body"].get("stream")), due, out, tag=item.get("tag"))
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)


def run_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one load spec in this process (uvloop when available) and return the raw results."""
    try:
        import uvloop

        return uvloop.run(_run(spec))
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(_run(spec))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        raise SystemExit("usage: python -m distillguard.bench.loadgen SPEC.json OUT.json")
    spec = orjson.loads(Path(args[0]).read_bytes())
    Path(args[1]).write_bytes(orjson.dumps(run_spec(spec)))


if __name__ == "__main__":
    main()
