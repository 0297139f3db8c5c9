"""End-to-end scan throughput and peak memory on a fixed, reproducible input.

``distillguard bench throughput --events 1000000`` writes (once, cached by size
and seed) a LiteLLM JSONL.gz log of simulated traffic with full prompt and
completion text, then runs ``distillguard scan`` on it in a child process and
reports events/s, the child's peak resident memory and where the time went.
Run it twice in one invocation (``--repeat``) to see the noise of a shared machine.

Example:
    >>> result = measure_scan_throughput(Path("/tmp/bench"), events=20_000)   # doctest: +SKIP
    >>> result["events_per_s"] > 0                                             # doctest: +SKIP
    True
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def bench_input(workdir: Path, events: int, seed: int = 0, scenario: str = "training") -> Path:
    """The cached benchmark log: the first ``events`` events of ``scenario``, scaled up to have enough."""
    from distillguard.simulate import SCENARIOS, build_scenario
    from distillguard.simulate.writer_process import write_events_in_child

    path = workdir / f"throughput-{scenario}-{events}-s{seed}.litellm.jsonl.gz"
    if path.exists():
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    # the training scenario has ~300k events at scale 1; scale so it has at least `events`
    scale = max(0.05, 1.15 * events / 280_000)
    built = build_scenario(scenario if scenario in SCENARIOS else "training", seed=seed, corpora="bundled", scale=scale)
    tmp = path.with_name(".partial-" + path.name)  # keeps the .gz suffix, so it is written compressed
    n = write_events_in_child(itertools.islice(built.events(), events), tmp, fmt="litellm")
    tmp.rename(path)
    if n < events:
        print(f"note: scenario produced {n:,} events (asked for {events:,})", file=sys.stderr)
    return path


def measure_scan_throughput(workdir: Path, events: int, seed: int = 0) -> dict[str, Any]:
    """Scan the benchmark input in a child process; return events/s, peak RSS (MB) and stage timings."""
    log = bench_input(workdir, events, seed)
    out = workdir / f"scan-{events}"
    store = out / "distillguard.duckdb"
    if store.exists():
        store.unlink()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    cmd = [sys.executable, "-m", "distillguard", "scan", str(log), "--out", str(out), "--top", "5"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"scan failed ({proc.returncode}): {proc.stderr[-2000:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = json.loads((out / "summary.json").read_text())
    n = summary["n_events"]
    return {
        "events": n,
        "input_bytes": log.stat().st_size,
        "wall_s": round(wall, 2),
        "events_per_s": round(n / wall),
        # ru_maxrss of children is the max over all children so far: only meaningful if it grew
        "peak_rss_mb": round(max(peak_kb, before) / 1024, 1),
        "stage_s": summary["timings_s"],
        "flagged": summary["n_flagged"],
    }
