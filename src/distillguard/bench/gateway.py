"""Gateway benchmark: distillguard's gateway and the LiteLLM proxy, side by side, one run.

``distillguard bench gateway`` starts, each as its own process, the fake
upstream (:mod:`distillguard.bench.fake_upstream`), ``distillguard serve`` in
front of it, and the LiteLLM proxy in front of the same upstream, then drives
them with the load generator (:mod:`distillguard.bench.loadgen`, a fourth
process).  For non-streaming and streaming chat completions it measures:

* **latency at a fixed offered rate** (open loop, default 500 requests/s):
  p50/p90/p99 of the upstream called directly, through distillguard and through
  LiteLLM; *added latency* is a target's percentile minus the direct one;
* **maximum throughput** (closed loop, ``concurrency`` in flight): requests/s,
  and requests per CPU-second of the server process (user + system time of its
  process tree, from /proc), which is the honest "per core" number on a shared
  2-core machine where the generator and the upstream take CPU too.

Then it replays the simulator's ``hydra`` scenario through a fresh gateway
(default policy, online scoring on), time-compressed, and reports how long after
a campaign's first request its first request was throttled, in scenario time and
in requests.  It replays ``hydra_mixed_reseller`` (campaigns hidden among resellers'
end users) the same way twice, online scoring judging end users and accounts only,
and reports how many of the campaign's end users and of the resellers' genuine end
users were refused.  Results: ``results.json``, ``results.md`` and ``latency.png`` in
``workdir``.

Example:
    >>> res = run_gateway_bench(Path("/tmp/gw-bench"), small=True, litellm=False)   # doctest: +SKIP
    >>> sorted(res["latency"])                                                       # doctest: +SKIP
    ['non-stream', 'stream']
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from distillguard.bench.throughput import descendants

#: The request every latency/throughput leg sends (the fake upstream answers 16 words).
BENCH_BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "Say hello in sixteen words."}], "max_tokens": 16}
BENCH_KEY = "sk-bench-client"
LITELLM_MASTER_KEY = "sk-bench-litellm"
ADMIN_TOKEN = "bench-admin-token"
MODES = ("non-stream", "stream")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and all its descendants now (Linux /proc)."""
    ticks: dict[int, int] = {}
    descendants(pid, ticks)
    return sum(ticks.values()) / _CLK_TCK


def own_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` alone (its threads, not its child processes)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


@dataclass
class Server:
    """A server process under test: where to send chat completions, with which headers."""

    name: str
    proc: subprocess.Popen
    chat_url: str
    headers: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None

    def cpu_s(self) -> float:
        return tree_cpu_s(self.proc.pid)

    def own_cpu_s(self) -> float:
        """The serving process alone (distillguard's recording worker is its child process)."""
        return own_cpu_s(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _wait_ready(server: Server, url: str, timeout_s: float, headers: dict[str, str] | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}: {_tail(server.log_path)}")
        try:
            if httpx.get(url, headers=headers, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{server.name} did not answer {url} within {timeout_s:.0f} s: {_tail(server.log_path)}")
        time.sleep(0.1)


def _tail(path: Path | None) -> str:
    return path.read_text(errors="replace")[-2000:] if path and path.exists() else ""


def _spawn(name: str, cmd: list[str], workdir: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, cwd=workdir, env=env or os.environ.copy(), stdout=log, stderr=subprocess.STDOUT)
    return proc, log_path


def start_fake_upstream(workdir: Path) -> Server:
    """``python -m distillguard.bench.fake_upstream`` on a free port."""
    port = _free_port()
    proc, log = _spawn("upstream", [sys.executable, "-m", "distillguard.bench.fake_upstream", "--port", str(port)], workdir)
    server = Server("direct", proc, f"http://127.0.0.1:{port}/v1/chat/completions", log_path=log)
    _wait_ready(server, f"http://127.0.0.1:{port}/v1/models", 30)
    return server


def start_distillguard(workdir: Path, upstream_url: str, keys: list[dict[str, str]], *, name: str = "distillguard",
                       settings: dict[str, Any] | None = None) -> Server:  # fmt: skip
    """``distillguard serve`` with a fresh store and WAL under ``workdir/name``, the default policy, online scoring."""
    home = workdir / name
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / "keys.json").write_text(json.dumps({"keys": keys}))
    port = _free_port()
    config = {
        "upstream_url": upstream_url, "keys_file": str(home / "keys.json"), "store_path": str(home / "store.duckdb"),
        "wal_dir": str(home / "wal"), "port": port, "admin_token_env": "DISTILLGUARD_BENCH_ADMIN_TOKEN", **(settings or {}),
    }  # fmt: skip
    (home / "gateway.json").write_text(json.dumps(config, indent=1))
    env = {**os.environ, "DISTILLGUARD_BENCH_ADMIN_TOKEN": ADMIN_TOKEN, "DISTILLGUARD_SECRET": "distillguard-bench-secret"}
    proc, log = _spawn(name, [sys.executable, "-m", "distillguard", "serve", "--config", str(home / "gateway.json")], home, env)
    server = Server(name, proc, f"http://127.0.0.1:{port}/v1/chat/completions", {"authorization": f"Bearer {keys[0]['key']}"}, log)
    _wait_ready(server, f"http://127.0.0.1:{port}/healthz", 60)
    return server


def wait_idle(server: Server, *, below: float = 0.05, window_s: float = 0.5, timeout_s: float = 60.0) -> float:
    """Wait until ``server`` uses under ``below`` of a core over ``window_s`` (start-up work done); seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        before = server.cpu_s()
        time.sleep(window_s)
        if (server.cpu_s() - before) / window_s < below:
            break
    return time.monotonic() - t0


def litellm_executable() -> str | None:
    """The ``litellm`` proxy command next to this Python, else on PATH."""
    beside = Path(sys.executable).parent / "litellm"
    return str(beside) if beside.exists() else shutil.which("litellm")


def start_litellm(workdir: Path, upstream_base: str, *, with_plugin: bool = False) -> Server:
    """The LiteLLM proxy (one worker, no database, access log off) in front of the same upstream.

    ``with_plugin``: with distillguard's logger and guardrail configured (docs/litellm.md), under a
    policy with no rules, so that every request goes through decide, record and online scoring
    but none is refused (the benchmark client would soon look like the harvester it imitates).
    """
    exe = litellm_executable()
    if exe is None:
        raise RuntimeError("the litellm command is not installed (pip install 'distillguard[litellm]')")
    name = "litellm+distillguard" if with_plugin else "litellm"
    home = workdir / name
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    config = (
        "model_list:\n"
        "  - model_name: fake-model\n"
        "    litellm_params:\n"
        "      model: openai/fake-model\n"
        f"      api_base: {upstream_base}\n"
        "      api_key: sk-upstream\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_MASTER_KEY}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(LITELLM_TELEMETRY="False", LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")
    if with_plugin:
        config += (
            "litellm_settings:\n"
            "  callbacks: distillguard.gateway.litellm_plugin.recorder_callback\n"
            "guardrails:\n"
            "  - guardrail_name: distillguard\n"
            "    litellm_params:\n"
            "      guardrail: distillguard.gateway.litellm_plugin.DistillguardGuardrail\n"
            "      mode: [pre_call, post_call]\n"
            "      default_on: true\n"
        )
        (home / "policy.yml").write_text("version: 1\nmode: enforce\nrules: []\n")
        (home / "distillguard.json").write_text(json.dumps({
            "policy_path": str(home / "policy.yml"), "store_path": str(home / "store.duckdb"), "wal_dir": str(home / "wal"),
        }))  # fmt: skip
        # litellm_plugin.CONFIG_ENV, not imported: that would import litellm into this process
        env.update({"DISTILLGUARD_LITELLM_CONFIG": str(home / "distillguard.json"), "DISTILLGUARD_SECRET": "distillguard-bench-secret"})
    (home / "config.yaml").write_text(config)
    # The same footing as distillguard's gateway, which logs no line per request.
    (home / "log_config.json").write_text(json.dumps({
        "version": 1, "disable_existing_loggers": False,
        "loggers": {"uvicorn.access": {"level": "WARNING"}, "uvicorn.error": {"level": "WARNING"}},
    }))  # fmt: skip
    port = _free_port()
    cmd = [exe, "--config", str(home / "config.yaml"), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1",
           "--log_config", str(home / "log_config.json")]  # fmt: skip
    proc, log = _spawn(name, cmd, home, env)
    server = Server(name, proc, f"http://127.0.0.1:{port}/v1/chat/completions", {"authorization": f"Bearer {LITELLM_MASTER_KEY}"}, log)
    _wait_ready(server, f"http://127.0.0.1:{port}/health/liveliness", 180)
    return server


def run_load(spec: dict[str, Any], workdir: Path, name: str, watch: tuple[Server, ...] | list[Server] = ()) -> dict[str, Any]:
    """Run the load generator in its own process; return its raw results plus the CPU seconds
    each ``watch`` server used during the measured window (``cpu_s``, by server name)."""
    spec_path, out_path, mark = (workdir / f"load-{name}.{ext}" for ext in ("spec.json", "out.json", "started"))
    mark.unlink(missing_ok=True)
    spec_path.write_bytes(orjson.dumps({**spec, "mark_file": str(mark)}))
    gen = subprocess.Popen([sys.executable, "-m", "distillguard.bench.loadgen", str(spec_path), str(out_path)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    while not mark.exists() and gen.poll() is None:  # interpreter start and warm-up are not measured
        time.sleep(0.005)
    before = {s.name: s.cpu_s() for s in watch}
    own_before = {s.name: s.own_cpu_s() for s in watch}
    t0 = time.perf_counter()
    _, err = gen.communicate()
    wall = time.perf_counter() - t0
    if gen.returncode != 0:
        raise RuntimeError(f"load generator failed ({gen.returncode}): {err[-2000:]}")
    raw = orjson.loads(out_path.read_bytes())
    # the CPU window also holds the generator's exit; scale it to the generator's measured wall time
    scale = min(1.0, raw["wall_s"] / wall) if wall > 0 else 1.0
    raw["cpu_s"] = {s.name: (s.cpu_s() - before[s.name]) * scale for s in watch}
    raw["own_cpu_s"] = {s.name: (s.own_cpu_s() - own_before[s.name]) * scale for s in watch}
    return raw


def _per_request(cpu_s: float, completed: int) -> float | None:
    return round(1000 * cpu_s / completed, 3) if completed else None


def latency_stats(ms: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/p99.9/max of latencies in ms.

    Example:
        >>> latency_stats([1.0, 2.0, 3.0, 4.0])["p50"]
        2.5
    """
    if not ms:
        return {"p50": None, "p90": None, "p99": None, "p999": None, "max": None}
    a = np.asarray(ms)
    p50, p90, p99, p999 = np.percentile(a, [50, 90, 99, 99.9])
    return {"p50": round(float(p50), 3), "p90": round(float(p90), 3), "p99": round(float(p99), 3),
            "p999": round(float(p999), 3), "max": round(float(a.max()), 3)}  # fmt: skip


def _body(mode: str) -> dict[str, Any]:
    return {**BENCH_BODY, "stream": True} if mode == "stream" else dict(BENCH_BODY)


def measure_open_loop(server: Server, mode: str, rate: float, duration_s: float, workdir: Path, warmup_s: float = 1.0) -> dict[str, Any]:
    """Latency at a fixed offered rate, and the server's CPU use meanwhile."""
    spec = {"url": server.chat_url, "headers": server.headers, "body": _body(mode), "mode": "open", "rate": rate,
            "duration_s": duration_s, "warmup_s": warmup_s}  # fmt: skip
    raw = run_load(spec, workdir, f"{server.name}-{mode}-open", [server])
    wall = raw["wall_s"] or 1.0
    return {
        "offered_rps": rate, "achieved_rps": round(raw["completed"] / wall, 1),
        "latency_ms": latency_stats(raw["latency_ms"]), "ttfb_ms": latency_stats(raw["ttfb_ms"]),
        "generator_lag_p99_ms": latency_stats(raw["send_lag_ms"])["p99"], "status": raw["status"], "errors": raw["errors"],
        "server_cpu_pct": round(100 * raw["cpu_s"][server.name] / wall, 1), "samples_ms": raw["latency_ms"],
        # CPU per completed request: the server's whole process tree, and its serving process alone
        "cpu_ms_per_request": _per_request(raw["cpu_s"][server.name], raw["completed"]),
        "serving_cpu_ms_per_request": _per_request(raw["own_cpu_s"][server.name], raw["completed"]),
    }  # fmt: skip


def measure_closed_loop(server: Server, mode: str, concurrency: int, duration_s: float, workdir: Path,
                        upstream: Server | None = None, warmup_s: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """Maximum throughput with ``concurrency`` requests in flight, per wall second and per server CPU-second."""
    spec = {"url": server.chat_url, "headers": server.headers, "body": _body(mode), "mode": "closed",
            "concurrency": concurrency, "duration_s": duration_s, "warmup_s": warmup_s}  # fmt: skip
    watch = [server] + ([upstream] if upstream is not None and upstream is not server else [])
    raw = run_load(spec, workdir, f"{server.name}-{mode}-closed", watch)
    wall = raw["wall_s"] or 1.0
    cpu = raw["cpu_s"][server.name]
    up_cpu = raw["cpu_s"].get(upstream.name) if upstream is not None and upstream is not server else None
    return {
        "concurrency": concurrency, "rps": round(raw["completed"] / wall, 1), "status": raw["status"], "errors": raw["errors"],
        "server_cpu_s": round(cpu, 2), "server_cores_used": round(cpu / wall, 2),
        "cpu_ms_per_request": _per_request(cpu, raw["completed"]),
        "serving_cpu_ms_per_request": _per_request(raw["own_cpu_s"][server.name], raw["completed"]),
        "rps_per_core": round(raw["completed"] / cpu, 1) if cpu > 0 else None,
        "upstream_cpu_s": round(up_cpu, 2) if up_cpu is not None else None,
        "latency_ms": latency_stats(raw["latency_ms"]),
    }  # fmt: skip


def _allow_list_bench_client(server: Server, account_id: str) -> None:
    """The bench client sends one prompt hundreds of times a second, which *is* what harvesting
    looks like; an allow override keeps the measured path (decide, forward, record, score) from
    turning into 429s halfway through a leg."""
    import httpx

    base = server.chat_url.rsplit("/v1/", 1)[0]
    r = httpx.put(f"{base}/admin/overrides/{account_id}", json={"action": "allow", "reason": "benchmark client", "by": "bench"},
                  headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5)  # fmt: skip
    r.raise_for_status()


# --- hydra replay --------------------------------------------------------------------------------


def scenario_replay_file(workdir: Path, scenario: str = "hydra", *, seed: int, scale: float, days: float,
                         replay_s: float) -> dict[str, Any]:  # fmt: skip
    """Write a scenario's requests as a load-generator replay file, ``replay_s`` long.

    Scenario time is compressed by ``span / replay_s``: a request made ``t`` scenario
    seconds after the first one is sent ``t / compression`` seconds into the replay.
    Each account gets its own API key; the event's IP goes in X-Forwarded-For (the
    replay gateway trusts it), its user agent in User-Agent and its end user in the
    body's ``user``, so that online scoring and linking see the identities the
    simulator made.  ``is_campaign`` marks each request: every request of a campaign
    account, and only the campaign's own requests of a mixed account (a reseller with a
    campaign among its end users: the simulator's event labels).
    """
    from distillguard.ingest.writers import to_openai
    from distillguard.simulate import build_scenario

    built = build_scenario(scenario, seed=seed, corpora="bundled", scale=scale, days=days)
    labels = {row["account_id"]: row for row in built.labels()}
    events = list(built.events())
    if not events:
        raise RuntimeError(f"the {scenario} scenario produced no events")
    campaign_events = {row["event_id"] for row in built.event_labels()}
    mixed = {a for a, row in labels.items() if row.get("attack_share") is not None}
    campaign = {a for a, row in labels.items() if row.get("is_attack")}
    is_campaign = [ev["event_id"] in campaign_events if ev.get("account_id") in mixed else ev.get("account_id") in campaign for ev in events]
    t_first = events[0]["ts"]
    span = max(events[-1]["ts"] - t_first, 1e-9)
    compression = span / replay_s
    keys: dict[str, str] = {}
    path = workdir / f"{scenario}-replay.jsonl"
    with open(path, "wb") as f:
        for i, ev in enumerate(events):
            account = ev.get("account_id") or "unknown"
            key = keys.setdefault(account, f"sk-{scenario}-{len(keys):05d}")
            headers = {"authorization": f"Bearer {key}"}
            if ev.get("ip"):
                headers["x-forwarded-for"] = ev["ip"]
            if ev.get("user_agent"):
                headers["user-agent"] = ev["user_agent"]
            body = to_openai(ev)["request"]
            body.pop("stream", None)  # answers are not the point here; keep the replay light
            f.write(orjson.dumps({"at": (ev["ts"] - t_first) / compression, "headers": headers, "body": body, "tag": i}) + b"\n")
    return {
        "path": path, "events": events, "labels": labels, "campaign_accounts": campaign, "is_campaign": is_campaign,
        "mixed_accounts": mixed, "compression": compression, "span_s": span,
        "keys": [{"key": k, "account_id": a} for a, k in keys.items()],
    }  # fmt: skip


def time_to_first_throttle(replay: dict[str, Any], results: list[tuple[int, int, float]]) -> dict[str, Any]:
    """From the replay's per-request statuses: when the campaign was first throttled (429) and refused (429/403).

    Times are in scenario seconds from the campaign's first request; counts are
    requests sent (campaign's and everyone's) up to and including the first one
    refused.  Also how much of the campaign and of the benign traffic was refused and,
    where campaigns hide among a reseller's end users (``mixed_accounts``), how many of
    the campaign's end users and of those accounts' genuine end users were refused.
    """
    events, campaign = replay["events"], replay["campaign_accounts"]
    status = {tag: st for tag, st, _ in results}
    is_campaign = replay.get("is_campaign") or [ev.get("account_id") in campaign for ev in events]
    first_campaign = next((i for i, c in enumerate(is_campaign) if c), None)
    out: dict[str, Any] = {"compression": round(replay["compression"], 1), "scenario_span_h": round(replay["span_s"] / 3600, 2),
                           "requests": len(events), "campaign_requests": sum(is_campaign),
                           "campaign_accounts": len(campaign), "statuses": {}}  # fmt: skip
    for st in status.values():
        out["statuses"][str(st)] = out["statuses"].get(str(st), 0) + 1
    if first_campaign is None:
        return out
    t0 = events[first_campaign]["ts"]
    for label, refused in (("throttle", {429}), ("refusal", {429, 403})):
        first = next((i for i, c in enumerate(is_campaign) if c and status.get(i) in refused), None)
        if first is None:
            out[f"first_{label}"] = None
            continue
        scenario_s = events[first]["ts"] - t0
        out[f"first_{label}"] = {
            "scenario_s": round(scenario_s, 1), "scenario_h": round(scenario_s / 3600, 2),
            "replay_s": round(scenario_s / replay["compression"], 2),
            "campaign_requests_before": sum(is_campaign[first_campaign:first]), "all_requests_before": first - first_campaign,
            "account": events[first].get("account_id"),
        }  # fmt: skip
    refused = {429, 403}
    camp_refused = [i for i, c in enumerate(is_campaign) if c and status.get(i) in refused]
    benign_refused = [i for i, c in enumerate(is_campaign) if not c and status.get(i) in refused]
    out["campaign_refused_share"] = round(len(camp_refused) / max(1, sum(is_campaign)), 4)
    out["campaign_accounts_refused"] = len({events[i].get("account_id") for i in camp_refused})
    out["benign_requests_refused"] = len(benign_refused)
    out["benign_accounts_refused"] = len({events[i].get("account_id") for i in benign_refused})
    mixed = replay.get("mixed_accounts") or set()
    if mixed:
        def end_user(i: int) -> tuple[Any, Any]:
            return events[i].get("account_id"), events[i].get("end_user")

        in_mixed = [i for i, ev in enumerate(events) if ev.get("account_id") in mixed]
        genuine = [i for i in in_mixed if not is_campaign[i]]
        out["campaign_end_users"] = len({end_user(i) for i in in_mixed if is_campaign[i]})
        out["campaign_end_users_refused"] = len({end_user(i) for i in camp_refused if events[i].get("account_id") in mixed})
        out["mixed_genuine_requests"] = len(genuine)
        out["mixed_genuine_requests_refused"] = sum(status.get(i) in refused for i in genuine)
        out["mixed_genuine_end_users"] = len({end_user(i) for i in genuine})
        out["mixed_genuine_end_users_refused"] = len({end_user(i) for i in genuine if status.get(i) in refused})
    return out


def run_scenario_replay(workdir: Path, upstream: Server, scenario: str = "hydra", *, seed: int, scale: float, days: float,
                        replay_s: float, settings: dict[str, Any] | None = None, name: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Replay a scenario through a fresh gateway (default policy, online scoring; ``settings`` on top of
    the gateway config) and time its first throttle."""
    replay = scenario_replay_file(workdir, scenario, seed=seed, scale=scale, days=days, replay_s=replay_s)
    server = start_distillguard(workdir, upstream.chat_url.rsplit("/chat/completions", 1)[0], replay["keys"],
                                name=name or f"distillguard-{scenario}", settings={"trust_forwarded_for": True, **(settings or {})})  # fmt: skip
    try:
        raw = run_load({"url": server.chat_url, "mode": "replay", "replay_file": str(replay["path"]), "timeout_s": 60}, workdir,
                       name or scenario)  # fmt: skip
    finally:
        server.stop()
    result = time_to_first_throttle(replay, [tuple(r) for r in raw["replay"]])
    result.update(scenario=scenario, seed=seed, scale=scale, days=days, replay_s=replay_s, errors=raw["errors"], settings=settings or {})
    return result


# --- the whole run ---------------------------------------------------------------------------------


def run_gateway_bench(
    workdir: Path, *, rate: float = 500.0, duration_s: float = 10.0, concurrency: int = 32, throughput_s: float = 10.0,
    low_rate: float | None = 100.0, litellm: bool = True, litellm_plugin: bool = True, hydra: bool = True,
    reseller: bool = True, small: bool = False, seed: int = 1000,
    hydra_scale: float = 0.25, hydra_days: float = 1.0, hydra_replay_s: float = 120.0,
    on_stage: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:  # fmt: skip
    """Run every leg and write ``results.json``, ``results.md`` and ``latency.png`` to ``workdir``.

    ``low_rate``: also the latency legs at this lighter rate (overhead without saturation; None: not).
    ``litellm_plugin``: also LiteLLM with distillguard's plugin in it (docs/litellm.md).
    ``reseller``: also replay ``hydra_mixed_reseller`` (campaigns among resellers' end users) twice, with
    online scoring judging end users and with it judging accounts only (same scale, days and replay time).
    ``small``: a smoke run (50 requests/s for 1 s, 1 s of throughput, tiny replays).
    """
    warmup_s = 1.0
    if small:
        rate, duration_s, throughput_s, concurrency, warmup_s, low_rate = 50.0, 1.0, 1.0, 8, 0.2, None
        hydra_scale, hydra_days, hydra_replay_s = 0.05, 0.25, 4.0
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_avg_start": [round(x, 2) for x in os.getloadavg()], "python": sys.version.split()[0]},
        "settings": {"rate": rate, "duration_s": duration_s, "concurrency": concurrency, "throughput_s": throughput_s,
                     "warmup_s": warmup_s, "low_rate": low_rate, "small": small, "body": BENCH_BODY},  # fmt: skip
        "latency": {}, "latency_low_rate": {}, "throughput": {}, "notes": [],
    }
    servers: list[Server] = []
    try:
        on_stage("starting the fake upstream")
        upstream = start_fake_upstream(workdir)
        servers.append(upstream)
        upstream_base = upstream.chat_url.rsplit("/chat/completions", 1)[0]
        on_stage("starting distillguard serve")
        gateway = start_distillguard(workdir, upstream_base, [{"key": BENCH_KEY, "account_id": "bench-client"}])
        servers.append(gateway)
        _allow_list_bench_client(gateway, "bench-client")
        wait_idle(gateway)
        targets = [upstream, gateway]
        for with_plugin in (False, True) if litellm else ():
            if with_plugin and not litellm_plugin:
                continue
            on_stage("starting the LiteLLM proxy" + (" with distillguard's plugin" if with_plugin else "") + " (takes a while)")
            try:
                proxy = start_litellm(workdir, upstream_base, with_plugin=with_plugin)
                servers.append(proxy)
                wait_idle(proxy)
                targets.append(proxy)
            except RuntimeError as exc:
                results["notes"].append(f"LiteLLM leg{' with the plugin' if with_plugin else ''} skipped: {exc}")
        for mode in MODES:
            results["latency"][mode] = {}
            results["throughput"][mode] = {}
            for target in targets:
                on_stage(f"{mode}: {target.name} at {rate:g} requests/s for {duration_s:g} s")
                results["latency"][mode][target.name] = measure_open_loop(target, mode, rate, duration_s, workdir, warmup_s)
            if low_rate:
                results["latency_low_rate"][mode] = {}
                for target in targets:
                    on_stage(f"{mode}: {target.name} at {low_rate:g} requests/s for {duration_s:g} s")
                    leg = measure_open_loop(target, mode, low_rate, duration_s, workdir, warmup_s)
                    leg.pop("samples_ms")
                    results["latency_low_rate"][mode][target.name] = leg
            for target in targets:
                on_stage(f"{mode}: {target.name} throughput, {concurrency} in flight for {throughput_s:g} s")
                results["throughput"][mode][target.name] = measure_closed_loop(
                    target, mode, concurrency, throughput_s, workdir, upstream=upstream, warmup_s=warmup_s
                )
        results["added_latency_ms"] = _added_latency(results["latency"])
        results["added_latency_ms_low_rate"] = _added_latency(results["latency_low_rate"])
        results["throughput_ratio_per_core"] = _per_core_ratio(results["throughput"])
        results["targets"] = _targets(results)
        if hydra:
            on_stage("replaying the hydra scenario through a fresh gateway")
            results["hydra"] = run_scenario_replay(workdir, upstream, "hydra", seed=seed, scale=hydra_scale, days=hydra_days,
                                                   replay_s=hydra_replay_s)  # fmt: skip
        if reseller:
            results["reseller"] = {}
            for label, judged in (("end_users_online", True), ("accounts_only", False)):
                on_stage(f"replaying the hydra_mixed_reseller scenario through a fresh gateway ({label.replace('_', ' ')})")
                results["reseller"][label] = run_scenario_replay(
                    workdir, upstream, "hydra_mixed_reseller", seed=seed, scale=hydra_scale, days=hydra_days, replay_s=hydra_replay_s,
                    settings={"online_end_users": judged}, name=f"distillguard-reseller-{label}",
                )  # fmt: skip
    finally:
        for server in reversed(servers):
            server.stop()
    results["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    samples = {mode: {name: leg.pop("samples_ms") for name, leg in legs.items()} for mode, legs in results["latency"].items()}
    plot_latency(samples, rate, workdir / "latency.png")
    (workdir / "results.json").write_text(json.dumps(results, indent=1))
    (workdir / "results.md").write_text(markdown_table(results))
    return results


def _added_latency(latency: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, float | None]]]:
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for mode, legs in latency.items():
        direct = legs.get("direct", {}).get("latency_ms", {})
        out[mode] = {}
        for name, leg in legs.items():
            if name == "direct":
                continue
            out[mode][name] = {
                q: (round(leg["latency_ms"][q] - direct[q], 3) if leg["latency_ms"].get(q) is not None and direct.get(q) is not None else None)
                for q in ("p50", "p90", "p99")
            }
    return out


def _per_core_ratio(throughput: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    out = {}
    for mode, legs in throughput.items():
        dg, ll = legs.get("distillguard", {}).get("rps_per_core"), legs.get("litellm", {}).get("rps_per_core")
        out[mode] = round(dg / ll, 2) if dg and ll else None
    return out


def _targets(results: dict[str, Any]) -> dict[str, bool | None]:
    """Issue 5's targets at the main rate: added p50 < 1 ms, added p99 < 5 ms, >= 2x LiteLLM's throughput per core."""
    out: dict[str, bool | None] = {}
    for mode, added in results["added_latency_ms"].items():
        dg = added.get("distillguard", {})
        out[f"{mode}: added p50 < 1 ms"] = None if dg.get("p50") is None else dg["p50"] < 1.0
        out[f"{mode}: added p99 < 5 ms"] = None if dg.get("p99") is None else dg["p99"] < 5.0
    for mode, ratio in results["throughput_ratio_per_core"].items():
        out[f"{mode}: >= 2x LiteLLM per core"] = None if ratio is None else ratio >= 2.0
    return out


def markdown_table(results: dict[str, Any]) -> str:
    """The latency, throughput and hydra results as markdown tables."""
    s = results["settings"]
    lines = [
        f"Open loop at {s['rate']:g} requests/s for {s['duration_s']:g} s (latency in ms, measured from when each request was due); "
        f"closed loop with {s['concurrency']} in flight for {s['throughput_s']:g} s (throughput).  "
        f"Load average {results['machine']['load_avg_start']} at start, {results['machine'].get('load_avg_end')} at end, "
        f"{results['machine']['cpus']} CPUs.",
        "",
        "| mode | target | p50 | p90 | p99 | added p50 | added p99 | achieved req/s | server CPU % | CPU ms/req (serving) "
        "| max req/s | server cores used | req per CPU-s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, legs in results["latency"].items():
        for name, leg in legs.items():
            lat = leg["latency_ms"]
            added = results.get("added_latency_ms", {}).get(mode, {}).get(name, {})
            thr = results["throughput"].get(mode, {}).get(name, {})
            lines.append(
                f"| {mode} | {name} | {_f(lat['p50'])} | {_f(lat['p90'])} | {_f(lat['p99'])} | {_f(added.get('p50'))} | {_f(added.get('p99'))} "
                f"| {_f(leg['achieved_rps'], 0)} | {_f(leg['server_cpu_pct'], 0)} | {_cpu_per_request(leg)} | {_f(thr.get('rps'), 0)} "
                f"| {_f(thr.get('server_cores_used'), 2)} "
                f"| {_f(thr.get('rps_per_core'), 0)} |"
            )
    if results.get("latency_low_rate"):
        lines += ["", f"The same at {s['low_rate']:g} requests/s (overhead without saturation):", "",
                  "| mode | target | p50 | p90 | p99 | added p50 | added p99 | server CPU % | CPU ms/req (serving) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for mode, legs in results["latency_low_rate"].items():
            for name, leg in legs.items():
                lat, added = leg["latency_ms"], results.get("added_latency_ms_low_rate", {}).get(mode, {}).get(name, {})
                lines.append(f"| {mode} | {name} | {_f(lat['p50'])} | {_f(lat['p90'])} | {_f(lat['p99'])} | {_f(added.get('p50'))} "
                             f"| {_f(added.get('p99'))} | {_f(leg['server_cpu_pct'], 0)} | {_cpu_per_request(leg)} |")  # fmt: skip
    ratio = results.get("throughput_ratio_per_core") or {}
    if any(v is not None for v in ratio.values()):
        lines += ["", "distillguard / LiteLLM throughput per CPU-second: " + ", ".join(f"{m} {_f(v, 2)}x" for m, v in ratio.items())]
    errors = [f"{mode}/{name} at {leg['offered_rps']:g}/s: {leg['status']} {leg['errors'] or ''}".strip()
              for block in ("latency", "latency_low_rate") for mode, legs in results.get(block, {}).items()
              for name, leg in legs.items() if set(leg["status"]) - {"200"} or leg["errors"]]  # fmt: skip
    if errors:
        lines += ["", "Non-200 answers in latency legs: " + "; ".join(errors)]
    hydra = results.get("hydra")
    if hydra:
        lines += ["", "Hydra replay (scenario time compressed "
                  f"{hydra['compression']:g}x: {hydra['scenario_span_h']} h in {hydra['replay_s']:g} s; "
                  f"{hydra['requests']} requests, {hydra['campaign_requests']} from {hydra['campaign_accounts']} campaign accounts):", "",
                  "| first | scenario time after the campaign's first request | replay time | campaign requests before | all requests before |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for label in ("throttle", "refusal"):
            first = hydra.get(f"first_{label}")
            if first:
                lines.append(f"| {label} | {first['scenario_h']} h ({first['scenario_s']:g} s) | {first['replay_s']} s "
                             f"| {first['campaign_requests_before']} | {first['all_requests_before']} |")  # fmt: skip
            else:
                lines.append(f"| {label} | none during the replay | | | |")
        lines += ["", f"Campaign requests refused: {100 * hydra.get('campaign_refused_share', 0):.1f}% "
                  f"({hydra.get('campaign_accounts_refused', 0)} of {hydra['campaign_accounts']} accounts); "
                  f"benign requests refused: {hydra.get('benign_requests_refused', 0)} "
                  f"({hydra.get('benign_accounts_refused', 0)} accounts)."]  # fmt: skip
    reseller = results.get("reseller")
    if reseller:
        any_leg = next(iter(reseller.values()))
        lines += ["", "hydra_mixed_reseller replay (campaigns among resellers' end users; scenario time compressed "
                  f"{any_leg['compression']:g}x: {any_leg['scenario_span_h']} h in {any_leg['replay_s']:g} s; {any_leg['requests']} requests, "
                  f"{any_leg['campaign_requests']} of them the campaigns' from {any_leg.get('campaign_end_users', 0)} end users; "
                  f"{any_leg.get('mixed_genuine_requests', 0)} from {any_leg.get('mixed_genuine_end_users', 0)} genuine end users of the same accounts):", "",
                  "| online scoring judges | first throttle after the campaign's first request | campaign requests before | campaign requests refused "
                  "| campaign end users refused | genuine end users of those accounts refused (requests) | other requests refused |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for label, leg in reseller.items():
            first = leg.get("first_throttle")
            when = f"{first['scenario_h']} h" if first else "none"
            before = first["campaign_requests_before"] if first else ""
            other = leg.get("benign_requests_refused", 0) - leg.get("mixed_genuine_requests_refused", 0)
            lines.append(f"| {label.replace('_', ' ')} | {when} | {before} | {100 * leg.get('campaign_refused_share', 0):.1f}% "
                         f"| {leg.get('campaign_end_users_refused', 0)} of {leg.get('campaign_end_users', 0)} "
                         f"| {leg.get('mixed_genuine_end_users_refused', 0)} of {leg.get('mixed_genuine_end_users', 0)} "
                         f"({leg.get('mixed_genuine_requests_refused', 0)}) | {other} |")  # fmt: skip
    targets = results.get("targets") or {}
    if targets:
        verdict = {True: "met", False: "not met", None: "not measured"}
        lines += ["", "Targets (issue 5, at the main rate): " + "; ".join(f"{k}: {verdict[v]}" for k, v in targets.items())]
    for note in results.get("notes", []):
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def _cpu_per_request(leg: dict[str, Any]) -> str:
    """``0.52 (0.41)``: ms of CPU per request, the whole process tree and (its serving process alone)."""
    total, serving = leg.get("cpu_ms_per_request"), leg.get("serving_cpu_ms_per_request")
    return f"{_f(total, 3)} ({_f(serving, 3)})"


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}" if isinstance(value, (int, float)) else str(value)


def plot_latency(samples: dict[str, dict[str, list[float]]], rate: float, path: Path) -> None:
    """Latency CDFs (log scale) per target, one panel per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(samples) or 1, figsize=(11, 4.2), squeeze=False)
    for ax, (mode, by_target) in zip(axes[0], samples.items()):
        for name, ms in by_target.items():
            if not ms:
                continue
            a = np.sort(np.asarray(ms))
            ax.plot(a, np.arange(1, len(a) + 1) / len(a), label=f"{name} (p99 {np.percentile(a, 99):.2f} ms)")
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("fraction of requests")
        ax.set_title(f"{mode}, open loop at {rate:g} req/s")
        ax.axhline(0.99, color="grey", lw=0.6, ls=":")
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
