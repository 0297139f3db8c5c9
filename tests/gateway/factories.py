"""Helpers for the proxy tests: real uvicorn servers on free ports, a scripted enforcer, keys, a recorder double."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import uvicorn

from distillguard.bench.fake_upstream import create_fake_upstream
from distillguard.gateway.app import create_app
from distillguard.gateway.config import GatewayConfig
from distillguard.gateway.keys import KeyTable
from distillguard.gateway.types import Action, Decision, Enforcer, EnforcerAdmin, Recorder, RequestInfo
from distillguard.privacy import Hasher
from tests.gateway.ports import free_port

SECRET = b"test-secret"
KEYS = {"sk-alice": "acct-alice", "sk-bob": "acct-bob", "sk-carol": "acct-carol"}


def key_table(hasher: Hasher | None = None) -> KeyTable:
    return KeyTable.from_entries([{"key": k, "account_id": a} for k, a in KEYS.items()], hasher or Hasher(SECRET))


def auth(key: str = "sk-alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat(content: str = "What is 2+2?", **kw: Any) -> dict[str, Any]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": content}], "max_tokens": 4, **kw}


class ServerThread:
    """A uvicorn server for ``app`` on a free port, in a thread of this process."""

    def __init__(self, app, port: int | None = None):
        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, loop="asyncio", http="httptools",
                                lifespan="on", access_log=False, log_level="error")  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class ScriptedEnforcer(Enforcer, EnforcerAdmin):
    """Returns ``decisions[account_id]`` (else allow); remembers requests, observed events and admin calls."""

    def __init__(self, scripted: dict[str, Decision] | None = None):
        self.scripted = scripted or {}
        self.requests: list[RequestInfo] = []
        self.observed: list[pa.Table] = []
        self.overrides: dict[str, tuple[Action, str, str]] = {}
        self.lock = threading.Lock()

    async def decide(self, request: RequestInfo) -> Decision:
        self.requests.append(request)
        override = self.overrides.get(request.account_id)
        if override and override[0] == Action.BLOCK:
            return Decision(actions=(Action.BLOCK,), reason=override[1], status=403)
        return self.scripted.get(request.account_id, Decision.allow())

    def observe(self, events: pa.Table) -> None:
        with self.lock:
            self.observed.append(events)

    def observed_ids(self) -> list[str]:
        with self.lock:
            return [i for t in self.observed for i in t.column("event_id").to_pylist()]

    def account_risk(self, account_id: str) -> dict[str, Any]:
        return {"account_id": account_id, "score": 0.5, "override": self.overrides.get(account_id, (None,))[0]}

    def cluster_risk(self, cluster_id: str) -> dict[str, Any]:
        return {"cluster_id": cluster_id, "members": ["acct-alice"]}

    def set_override(self, account_id: str, action: Action, reason: str, *, by: str = "admin") -> None:
        self.overrides[account_id] = (action, reason, by)

    def clear_override(self, account_id: str) -> bool:
        return self.overrides.pop(account_id, None) is not None

    def decisions(self, limit: int = 100, account_id: str | None = None) -> list[dict[str, Any]]:
        rows = [{"account_id": a, "actions": [o[0].value], "reason": o[1]} for a, o in self.overrides.items()]
        return [r for r in rows if account_id is None or r["account_id"] == account_id][:limit]


class ListRecorder(Recorder):
    """Keeps recorded exchanges in a list (for tests of the proxy alone)."""

    def __init__(self) -> None:
        self.records: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def record(self, event, extra=None) -> None:
        self.records.append((dict(event), dict(extra or {})))

    def close(self) -> None:
        pass

    def wait(self, n: int, timeout: float = 5.0) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while len(self.records) < n and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.records


@contextlib.contextmanager
def fake_upstream() -> Iterator[ServerThread]:
    with ServerThread(create_fake_upstream()) as server:
        yield server


@contextlib.contextmanager
def gateway(
    upstream_url: str, enforcer: Enforcer | None = None, recorder: Recorder | None = None, **config: Any
) -> Iterator[tuple[ServerThread, ScriptedEnforcer | Enforcer, Recorder]]:
    """The proxy in front of ``upstream_url`` (…/v1) with a scripted enforcer and a list recorder by default."""
    enforcer = enforcer or ScriptedEnforcer()
    recorder = recorder or ListRecorder()
    cfg = GatewayConfig(upstream_url=upstream_url, **config)
    app = create_app(cfg, enforcer, recorder, keys=key_table(), hasher=Hasher(SECRET))
    with ServerThread(app) as server:
        yield server, enforcer, recorder


def client(server: ServerThread, timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=timeout)


def write_keys_file(path: Path) -> Path:
    lines = ["keys:"] + [f"  - key: {k}\n    account_id: {a}" for k, a in KEYS.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_process(args: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    """A child process (``python -m ...``) with its output to ``log``."""
    out = open(log, "wb") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, *args], env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before serving {url}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


@contextlib.contextmanager
def store_locked_by_another_process(path: Path) -> Iterator[int]:
    """A DuckDB store held open (its file lock taken) by a child process until the block ends; yields its pid.

    Another process is needed: connections of one process share the database and its lock."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); sys.stdin.read()",
         str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait(10)


class FullDisk:
    """While ``full``, every write to ``wal``'s segments fails with ENOSPC (nothing of it written)."""

    def __init__(self, monkeypatch, wal) -> None:
        import distillguard.gateway.wal as wal_module

        self.full = True
        real_write = os.write

        def write(fd, data):
            if self.full and fd == wal._fd:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        monkeypatch.setattr(wal_module.os, "write", write)


def fail_insert_once_on(monkeypatch: Any, event_id: str, exc: BaseException) -> None:
    """The sink's first insert of rows holding ``event_id`` raises ``exc``; every other insert goes through."""
    import distillguard.gateway.sink as sink_module

    real_insert = sink_module.insert_new
    failures = iter([exc])

    def insert(con: Any, table: str, rows: pa.Table, key: str) -> Any:
        if event_id in rows.column("event_id").to_pylist():
            for failure in failures:
                raise failure
        return real_insert(con, table, rows, key)

    monkeypatch.setattr(sink_module, "insert_new", insert)
