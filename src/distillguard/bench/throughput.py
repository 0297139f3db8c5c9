"""End-to-end scan throughput and peak memory on a fixed, reproducible input.

``distillguard bench throughput --events 1000000`` writes (once, cached by size
and seed) a LiteLLM JSONL.gz log of simulated traffic with full prompt and
completion text, then runs ``distillguard scan`` on it in a child process and
reports events/s, the peak memory of the scan's whole process tree (the scan and
its ingest workers, sampled from ``/proc``) and where the time went.
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
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

#: Seconds between two samples of the process tree's resident memory (``/proc/<pid>/statm``, cheap).
SAMPLE_INTERVAL_S = 0.2
#: Every this many samples, proportional memory too (``smaps_rollup`` walks page tables: ~20 ms for a
#: large process, so every 0.2 s it would take a tenth of a core from the scan it measures).
PSS_EVERY = 10


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


def measure_scan_throughput(workdir: Path, events: int, seed: int = 0, *, link: bool = True) -> dict[str, Any]:
    """Scan the benchmark input in a child process; return events/s, peak memory (MB) and stage timings.

    ``peak_tree_rss_mb`` is the largest sum of resident memory over the scan process and all its
    descendants (ingest workers, their fork server) seen in one sample (every 0.2 s); ``peak_tree_pss_mb``
    the same with shared pages divided among the processes that share them (what the tree really
    occupies; sampled every 2 s, so it may miss a short peak).  ``tree_cpu_s`` is the user + system
    CPU time of the whole tree: the work done, which a busy shared machine does not inflate as it
    does the wall time.
    """
    log = bench_input(workdir, events, seed)
    out = workdir / f"scan-{events}"
    store = out / "distillguard.duckdb"
    if store.exists():
        store.unlink()
    cmd = [sys.executable, "-m", "distillguard", "scan", str(log), "--out", str(out), "--top", "5"]
    if not link:
        cmd.append("--no-link")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "120"})  # fmt: skip
    sampler = TreeMemorySampler(proc.pid)
    sampler.start()
    _stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"scan failed ({proc.returncode}): {stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    n = summary["n_events"]
    return {
        "events": n,
        "input_bytes": log.stat().st_size,
        "link": link,
        "wall_s": round(wall, 2),
        "events_per_s": round(n / wall),
        "peak_tree_rss_mb": round(sampler.peak_rss_kb / 1024, 1),
        "peak_tree_pss_mb": round(sampler.peak_pss_kb / 1024, 1),
        "peak_main_rss_mb": round(sampler.peak_main_kb / 1024, 1),
        "peak_processes": sampler.peak_processes,
        # CPU seconds of the whole tree: on a shared machine the honest measure of work done
        "tree_cpu_s": round(sampler.cpu_s, 1),
        # the scan process alone (inflating, storing, features, scoring); the rest is the ingest workers
        "main_cpu_s": round(sampler.main_cpu_s, 1),
        "stage_s": summary["timings_s"],
        "flagged": summary["n_flagged"],
    }


class TreeMemorySampler(threading.Thread):
    """Samples the resident memory of a process and all its descendants from ``/proc`` until stopped.

    ``ru_maxrss`` of children reports only the largest single process; a scan's ingest workers
    run beside the main process, so their memory has to be summed at one instant.

    Example:
        >>> sampler = TreeMemorySampler(os.getpid()); sampler.start(); sampler.stop()
        >>> sampler.peak_rss_kb > 0
        True
    """

    def __init__(self, root_pid: int, interval_s: float = SAMPLE_INTERVAL_S):
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.interval_s = interval_s
        self.peak_rss_kb = self.peak_pss_kb = self.peak_main_kb = 0
        self.peak_processes = 0
        self._cpu_ticks: dict[int, int] = {}  # pid -> latest user + system clock ticks seen
        self._samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            self.sample()
            if self._stop_event.wait(self.interval_s):
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.sample()

    @property
    def cpu_s(self) -> float:
        """User + system CPU seconds of every process of the tree seen (up to its last sample)."""
        return sum(self._cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")

    @property
    def main_cpu_s(self) -> float:
        """User + system CPU seconds of the root process alone."""
        return self._cpu_ticks.get(self.root_pid, 0) / os.sysconf("SC_CLK_TCK")

    def sample(self) -> None:
        pids = descendants(self.root_pid, self._cpu_ticks)
        rss = 0
        for pid in pids:
            kb = rss_kb(pid)
            rss += kb
            if pid == self.root_pid:
                self.peak_main_kb = max(self.peak_main_kb, kb)
        if rss > self.peak_rss_kb:
            self.peak_rss_kb, self.peak_processes = rss, len(pids)
        self._samples += 1
        if self._samples % PSS_EVERY == 1:
            self.peak_pss_kb = max(self.peak_pss_kb, sum(_pss_kb(pid) for pid in pids))


def descendants(root: int, cpu_ticks: dict[int, int] | None = None) -> list[int]:
    """``root`` and every process below it (from the parent ids in ``/proc/*/stat``).

    ``cpu_ticks`` (pid -> utime + stime) is updated for the processes returned.
    """
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone since listed
        fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
        children.setdefault(int(fields[1]), []).append(int(entry))
        ticks[int(entry)] = int(fields[11]) + int(fields[12])  # utime, stime
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    if cpu_ticks is not None:
        for pid in out:
            if pid in ticks:
                cpu_ticks[pid] = max(cpu_ticks.get(pid, 0), ticks[pid])
    return out


def rss_kb(pid: int) -> int:
    """Resident memory (kB) of one process from ``/proc/<pid>/statm``; 0 if it is gone."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, IndexError, ValueError):
        return 0


def _pss_kb(pid: int) -> int:
    """Proportional set size (kB) of one process from ``/proc/<pid>/smaps_rollup``; 0 if it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0
