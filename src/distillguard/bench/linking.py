"""Linking at scale: a seeded synthetic store of N accounts / M events, features, scoring and linking.

``distillguard bench linking --accounts 100000 --events 10000000`` builds the events and accounts
tables directly as Arrow batches (no text simulator: seconds, not hours), with the structure that
makes linking hard at scale:

* mostly benign accounts with their own IPs and /24 prefixes (consumer ISPs: a prefix now and then
  shared by a few strangers), a mobile-carrier CGNAT pool that puts thousands of them on a few
  prefixes, common user agents and API habits (client fingerprints shared by tens of thousands),
  a few generic openings ("Can you help me…") shared by everyone, and repeated prompts;
* NAT groups (a university, companies) of genuine users behind one prefix and a few IPs;
* reseller groups of genuine users behind one payment fingerprint and one egress;
* hydra campaigns of hundreds to thousands of light accounts: a pool of shared templates, one
  dataset partitioned across them (distinct prompts), a proxy pool of prefixes and IPs, an
  account-creation burst, a few payment fingerprints, one client, and load-balanced timing (the
  campaign's on/off batches spread round-robin, so the members' hourly series move together).

It then runs the scan's own stages — account features, the shipped ``Ensemble``, and
``link_accounts`` — and reports wall time per stage, peak RSS per stage (a sampling thread plus
``ru_maxrss``), events/s, and on the synthetic truth: campaign recall (share of each campaign's
accounts in a flagged cluster) and NAT / reseller false links (genuine accounts put in a flagged
cluster or lifted by one).

Example:
    >>> result = run_linking_bench(Path("/tmp/bench"), accounts=2_000, events=100_000)   # doctest: +SKIP
    >>> result["quality"]["campaign_recall"]                                             # doctest: +SKIP
    1.0
"""

from __future__ import annotations

import json
import os
import resource
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from distillguard.schema import ACCOUNT_SCHEMA, EVENT_SCHEMA

T0 = 1_740_000_000.0
DAYS = 14
HOURS = DAYS * 24
ROLES = ("benign", "nat", "reseller", "hydra")
BANDS_PER_PROMPT = 8
#: (accounts, events) of ``--small``: the CI smoke size
SMALL = (2_000, 100_000)


@dataclass(frozen=True)
class SyntheticShape:
    """How the synthetic population is composed (shares of N accounts); the defaults are the documented ones."""

    # hydra campaigns: accounts per campaign as a share of N (at least min_campaign accounts each)
    campaign_shares: tuple[float, ...] = (0.03, 0.015, 0.006, 0.0025)
    min_campaign: int = 25
    # NAT groups (a university, companies, small offices), shares of N
    nat_shares: tuple[float, ...] = (0.04, 0.01, 0.006, 0.003, 0.003, 0.002, 0.001, 0.001, 0.001, 0.0005, 0.0005)
    min_nat: int = 8
    reseller_shares: tuple[float, ...] = (0.004, 0.002)
    min_reseller: int = 6
    benign_prefix_pool: float = 0.7  # consumer /24s per benign account: collisions put a few strangers together
    cgnat_prefixes: int = 40  # mobile carrier prefixes...
    cgnat_share: float = 0.1  # ...that carry this share of benign accounts
    generic_openings: int = 50  # "Can you help me…" templates every chat user sends now and then
    generic_opening_rate: float = 0.1
    hydra_volume: float = 0.6  # a hydra account sends this multiple of the mean volume: each looks light
    hydra_templates: int = 4
    hydra_template_rate: float = 0.85
    hydra_shared_bands: int = 3  # of the 8 MinHash bands of a templated prompt, this many come from the template
    hydra_proxy_prefixes: int = 30
    hydra_proxy_ips_per_prefix: int = 8
    hydra_payments: int = 5
    hydra_active_days: float = 5.0  # the campaign runs in batches over this many days


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a deterministic 64-bit hash of uint64 values (as signed int64 keys)."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return z.view(np.int64)


def _key(kind: int, *parts: np.ndarray | int) -> np.ndarray:
    """A hashed key from a kind tag and integer parts (vectorised)."""
    with np.errstate(over="ignore"):
        acc = np.uint64(kind) * np.uint64(0x100000001B3)
        acc = np.asarray(acc, dtype=np.uint64)
        for p in parts:
            acc = _mix(acc ^ np.asarray(p).astype(np.uint64)).view(np.uint64)
        return acc.view(np.int64)


@dataclass
class SyntheticPopulation:
    """Per-account truth of the synthetic store: role and group (campaign / NAT / reseller index, else -1)."""

    role: np.ndarray  # index into ROLES
    group: np.ndarray
    n_events: np.ndarray

    def account_ids(self) -> np.ndarray:
        return np.char.add("acct-", np.char.zfill(np.arange(len(self.role)).astype(str), 6))


def _population(accounts: int, events: int, shape: SyntheticShape, rng: np.random.Generator) -> SyntheticPopulation:
    role = np.zeros(accounts, dtype=np.int8)
    group = np.full(accounts, -1, dtype=np.int32)
    order = rng.permutation(accounts)  # roles are spread over the id space, not in blocks
    pos = 0
    for role_idx, shares, minimum in ((3, shape.campaign_shares, shape.min_campaign), (1, shape.nat_shares, shape.min_nat),
                                      (2, shape.reseller_shares, shape.min_reseller)):  # fmt: skip
        for g, share in enumerate(shares):
            n = max(minimum, int(round(share * accounts)))
            if pos + n > accounts // 2:  # tiny populations: keep at least half benign
                break
            idx = order[pos : pos + n]
            role[idx], group[idx] = role_idx, g
            pos += n
    weight = rng.lognormal(0.0, 1.0, accounts)
    weight[role == 3] = shape.hydra_volume * np.exp(0.5) * rng.uniform(0.8, 1.2, int((role == 3).sum()))
    n_events = 1 + rng.multinomial(max(events - accounts, 0), weight / weight.sum())
    return SyntheticPopulation(role, group, n_events.astype(np.int64))


def _campaign_hour_profiles(n_campaigns: int, shape: SyntheticShape, rng: np.random.Generator) -> np.ndarray:
    """Per campaign, a probability over the scan's hours: on/off batches over a few days (load balancing)."""
    profiles = np.zeros((max(n_campaigns, 1), HOURS))
    active = int(shape.hydra_active_days * 24)
    for c in range(n_campaigns):
        start = int(rng.integers(0, HOURS - active))
        on = rng.random(active) < 0.5
        profiles[c, start : start + active] = on * rng.gamma(2.0, 1.0, active)
        if profiles[c].sum() == 0:
            profiles[c, start] = 1.0
    return profiles / profiles.sum(axis=1, keepdims=True)


def synthetic_tables(
    accounts: int, events: int, seed: int = 0, *, chunk: int = 1_000_000, shape: SyntheticShape | None = None
) -> tuple[SyntheticPopulation, pa.Table, Iterator[pa.Table]]:
    """The population truth, the accounts table, and the events table in time-ordered chunks (Arrow, EVENT_SCHEMA).

    Deterministic for a given (accounts, events, seed, chunk, shape).
    """
    shape = shape or SyntheticShape()
    rng = np.random.default_rng(seed)
    pop = _population(accounts, events, shape, rng)
    role, group = pop.role, pop.group
    is_hydra = role == 3
    n_campaigns = int(group[is_hydra].max() + 1) if is_hydra.any() else 0

    # per-account attributes
    benign_like = ~is_hydra
    prefix_pool = max(1, int(shape.benign_prefix_pool * accounts))
    home_prefix = _key(1, rng.integers(0, prefix_pool, accounts))
    cgnat = benign_like & (rng.random(accounts) < shape.cgnat_share)
    home_prefix[cgnat] = _key(2, rng.integers(0, shape.cgnat_prefixes, int(cgnat.sum())))
    for r, tag in ((1, 3), (2, 4)):  # NAT and reseller groups sit behind their own egress
        sel = role == r
        home_prefix[sel] = _key(tag, group[sel])
    tz_offset = rng.integers(-8, 9, accounts)  # local-time shift of the account's day
    ua = np.minimum(rng.zipf(1.6, accounts), 30)
    habit = rng.integers(0, 6, accounts)  # an API-parameter habit: (max_tokens, temperature) pair
    created = T0 - rng.uniform(30, 730, accounts) * 86400
    payment = _key(5, np.arange(accounts))
    sel = role == 2
    payment[sel] = _key(6, group[sel])
    hyd_idx = np.flatnonzero(is_hydra)
    # hydra: creation burst of a couple of hours a week before the campaign; a few shared payment cards
    burst = T0 - 7 * 86400 + group[hyd_idx] * 86400.0
    created[hyd_idx] = burst + rng.uniform(0, 7200, len(hyd_idx))
    payment[hyd_idx] = _key(7, group[hyd_idx], rng.integers(0, shape.hydra_payments, len(hyd_idx)))
    ids = pop.account_ids()
    acct_table = pa.table(
        {"account_id": ids, "created_at": created, "payment_hash": payment}
    )
    acct_table = pa.table({n: acct_table[n] if n in acct_table.column_names else pa.nulls(accounts, ACCOUNT_SCHEMA.field(n).type)
                           for n in ACCOUNT_SCHEMA.names}, schema=ACCOUNT_SCHEMA)  # fmt: skip

    # per-event: account and time, then sorted by time (logs arrive in time order)
    acct_of = np.repeat(np.arange(accounts, dtype=np.int64), pop.n_events)
    ev_hydra = is_hydra[acct_of]
    day = rng.integers(0, DAYS, len(acct_of))
    # diurnal: most requests 9:00-23:00 local
    local_hour = np.clip(rng.normal(15.0, 4.0, len(acct_of)), 0, 23.999)
    hour = (day * 24 + np.floor(local_hour).astype(np.int64) + tz_offset[acct_of]) % HOURS
    profiles = _campaign_hour_profiles(n_campaigns, shape, rng)
    h_idx = np.flatnonzero(ev_hydra)
    if len(h_idx):
        camp = group[acct_of[h_idx]]
        u = rng.random(len(h_idx))
        for c in range(n_campaigns):
            sel = camp == c
            hour[h_idx[sel]] = np.minimum(np.searchsorted(np.cumsum(profiles[c]), u[sel]), HOURS - 1)
    ts = T0 + hour * 3600.0 + rng.uniform(0, 3600, len(acct_of))
    order = np.argsort(ts, kind="stable")
    acct_of, ts = acct_of[order], ts[order]
    del order, day, local_hour, hour

    def chunks() -> Iterator[pa.Table]:
        crng = np.random.default_rng(seed + 1)
        for start in range(0, len(acct_of), chunk):
            yield _event_chunk(start, acct_of[start : start + chunk], ts[start : start + chunk], crng, shape, pop, ids,
                               home_prefix, cgnat, ua, habit)  # fmt: skip

    return pop, acct_table, chunks()


def _event_chunk(
    start: int, acct: np.ndarray, ts: np.ndarray, rng: np.random.Generator, shape: SyntheticShape, pop: SyntheticPopulation,
    ids: np.ndarray, home_prefix: np.ndarray, cgnat: np.ndarray, ua: np.ndarray, habit: np.ndarray,
) -> pa.Table:
    n = len(acct)
    eid = np.arange(start, start + n, dtype=np.int64)
    role, grp = pop.role[acct], pop.group[acct]
    hyd = role == 3
    u = rng.random((n, 8))
    # prompts: unique per event; a benign user repeats one of their own prompts now and then
    prompt = _key(10, eid)
    repeat = ~hyd & (u[:, 0] < 0.05)
    prompt[repeat] = _key(11, acct[repeat], rng.integers(0, 5, int(repeat.sum())))
    tpl_pre, tpl_suf = _key(12, prompt), _key(13, prompt)
    generic = ~hyd & (u[:, 1] < shape.generic_opening_rate)
    tpl_pre[generic] = _key(14, rng.integers(0, shape.generic_openings, int(generic.sum())))
    habit_tpl = ~hyd & ~generic & (u[:, 1] > 0.95)  # a user's own recurring template
    tpl_pre[habit_tpl] = _key(15, acct[habit_tpl])
    tpl_suf[habit_tpl] = _key(16, acct[habit_tpl])
    templated = hyd & (u[:, 2] < shape.hydra_template_rate)
    tpl_no = rng.integers(0, shape.hydra_templates, n)
    tpl_pre[templated] = _key(17, grp[templated], tpl_no[templated])
    tpl_suf[templated] = _key(18, grp[templated], tpl_no[templated])
    bands = _key(19, prompt[:, None], np.arange(BANDS_PER_PROMPT)[None, :])
    k = shape.hydra_shared_bands
    bands[templated, :k] = _key(20, grp[templated, None], tpl_no[templated, None], np.arange(k)[None, :])
    conv = np.where(hyd, prompt, _key(21, acct, rng.integers(0, np.maximum(pop.n_events[acct] // 3, 1))))
    turns = np.where(hyd, 0, rng.choice(4, n, p=[0.5, 0.25, 0.15, 0.1]))

    # infrastructure: home IPs behind the home prefix; hydra events rotate through the campaign's proxy pool
    prefix = home_prefix[acct].copy()
    ip = _key(22, acct, rng.integers(0, 2, n))  # a home line or two per account
    on_cgnat = cgnat[acct]
    ip[on_cgnat] = _key(28, prefix[on_cgnat], rng.integers(0, 64, int(on_cgnat.sum())))
    nat_like = (role == 1) | (role == 2)
    ip[nat_like] = _key(23, prefix[nat_like], rng.integers(0, 3, int(nat_like.sum())))
    proxy_prefix = rng.integers(0, shape.hydra_proxy_prefixes, n)
    prefix[hyd] = _key(24, grp[hyd], proxy_prefix[hyd])
    ip[hyd] = _key(25, prefix[hyd], rng.integers(0, shape.hydra_proxy_ips_per_prefix, int(hyd.sum())))
    ua_hash = np.where(hyd, _key(26, grp), _key(27, ua[acct]))
    max_tokens = np.where(hyd, 4096, np.array([512, 1024, 1024, 2048, 4096, 256])[habit[acct]])
    temperature = np.where(hyd, 0.6, np.array([1.0, 0.7, 1.0, 0.7, 1.0, 0.2])[habit[acct]])

    caps_benign = np.array(["chat", "writing", "code", "chat", "extraction", "translation"])
    caps_hydra = np.array(["reasoning", "math", "code", "reasoning"])
    capability = np.where(hyd, caps_hydra[rng.integers(0, 4, n)], caps_benign[rng.integers(0, 6, n)])
    script = np.where(hyd & (u[:, 3] < 0.3), np.array(["cjk", "cyrillic", "arabic"])[rng.integers(0, 3, n)], "latin")
    reasoning_elicit = np.where(hyd, u[:, 4] < 0.6, u[:, 4] < 0.02)
    completion_reasoning = np.where(hyd, u[:, 5] < 0.8, u[:, 5] < 0.05)
    prompt_tokens = np.where(hyd, rng.integers(100, 220, n), rng.integers(15, 300, n))
    completion_tokens = np.where(hyd, rng.integers(800, 2200, n), rng.integers(60, 600, n))
    flat_bands = pa.array(bands.reshape(-1))
    cols: dict[str, pa.Array] = {
        "event_id": pa.array(np.char.add("e", eid.astype(str))),
        "ts": pa.array(ts),
        "account_id": pa.array(ids[acct]),
        "ip_hash": pa.array(ip),
        "ip_prefix_hash": pa.array(prefix),
        "user_agent_hash": pa.array(ua_hash),
        "model": pa.array(np.where(u[:, 6] < 0.7, "m1", "m2")),
        "status": pa.array(np.full(n, "success")),
        "prompt_tokens": pa.array(prompt_tokens),
        "completion_tokens": pa.array(completion_tokens),
        "max_tokens": pa.array(max_tokens),
        "temperature": pa.array(temperature),
        "n_messages": pa.array(1 + 2 * turns),
        "n_user_turns": pa.array(1 + turns),
        "n_assistant_turns": pa.array(turns),
        "has_system": pa.array(hyd | (u[:, 7] < 0.2)),
        "conversation_hash": pa.array(conv),
        "prompt_chars": pa.array(prompt_tokens * 4),
        "completion_chars": pa.array(completion_tokens * 4),
        "prompt_hash": pa.array(prompt),
        "template_prefix_hash": pa.array(tpl_pre),
        "template_suffix_hash": pa.array(tpl_suf),
        "minhash_bands": pa.ListArray.from_arrays(pa.array(np.arange(0, 8 * n + 1, 8, dtype=np.int32)), flat_bands),
        "script": pa.array(script),
        "capability": pa.array(capability),
        "reasoning_elicit": pa.array(reasoning_elicit),
        "rubric_grading": pa.array(np.zeros(n, dtype=bool)),
        "benchmark_hits": pa.array(np.zeros(n, dtype=np.int64)),
        "completion_has_reasoning": pa.array(completion_reasoning),
    }
    return pa.table({name: cols[name] if name in cols else pa.nulls(n, EVENT_SCHEMA.field(name).type) for name in EVENT_SCHEMA.names},
                    schema=EVENT_SCHEMA)  # fmt: skip


def build_synthetic_store(path: Path | str, accounts: int, events: int, seed: int = 0, *, memory_limit: str = "1GB"):
    """A DuckDB store filled with the synthetic population; returns (store, population).

    Events are inserted without the ``event_id`` uniqueness check of ``DuckDBStore.append`` (the ids
    are unique by construction): at 10M events that check is most of the load time.
    """
    from distillguard.store.duckdb import DuckDBStore

    path = Path(path)
    if path.exists():
        path.unlink()
    store = DuckDBStore(path, memory_limit=memory_limit)
    con = store.con
    pop, acct_table, chunks = synthetic_tables(accounts, events, seed)
    store.append("accounts", acct_table)
    for batch in chunks:
        con.register("_dg_bench_in", batch)
        try:
            con.execute("INSERT INTO events SELECT * FROM _dg_bench_in").fetchall()
        finally:
            con.unregister("_dg_bench_in")
    con.execute("CHECKPOINT").fetchall()
    return store, pop


class PeakRSS:
    """Samples this process's resident memory every ``interval`` s; ``peak_mb`` is the highest seen since ``reset``."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak_kb = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current_kb() -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # pragma: no cover - not Linux

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.current_kb())
            time.sleep(self.interval)

    def start(self) -> PeakRSS:
        self._thread.start()
        return self

    def reset(self) -> None:
        self.peak_kb = self.current_kb()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return round(max(self.peak_kb, self.current_kb()) / 1024, 1)


@dataclass
class StageRecord:
    name: str
    wall_s: float
    peak_rss_mb: float
    cpu_s: float  # user + system CPU of this process: on a shared machine the steadier measure of work


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass
class StageClock:
    """Wall time and peak RSS of each named stage."""

    rss: PeakRSS
    stages: list[StageRecord] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str, on_stage: Callable[[str], None] | None = None) -> Iterator[None]:
        if on_stage:
            on_stage(name)
        self.rss.reset()
        t, cpu = time.perf_counter(), _cpu_s()
        yield
        self.stages.append(StageRecord(name, round(time.perf_counter() - t, 2), self.rss.peak_mb, round(_cpu_s() - cpu, 2)))


def linking_quality(pop: SyntheticPopulation, ids: np.ndarray, own: pd.Series, result: Any) -> dict[str, Any]:
    """Campaign recall and false links on the synthetic truth.

    A campaign's recall is the share of its accounts that sit in a flagged cluster; it counts as found
    when any account does.  A NAT / reseller false link is a genuine account in a flagged cluster or
    lifted above its own score by linking.
    """
    flagged_clusters = {c.cluster_id for c in result.clusters if c.flagged}
    bound_clusters = {c.cluster_id for c in result.clusters if c.bound}
    cluster = pd.Series(result.cluster_of).reindex(ids)
    in_flagged = cluster.isin(flagged_clusters).to_numpy()
    in_bound = cluster.isin(bound_clusters).to_numpy()
    final = result.account_scores.reindex(ids).fillna(own.reindex(ids)).to_numpy()
    lifted = final > own.reindex(ids).to_numpy() + 1e-9
    out: dict[str, Any] = {"campaigns": []}
    for g in np.unique(pop.group[pop.role == 3]):
        sel = (pop.role == 3) & (pop.group == g)
        clusters = cluster[sel].dropna()
        out["campaigns"].append({
            "campaign": int(g), "accounts": int(sel.sum()),
            "in_flagged_cluster": round(float(in_flagged[sel].mean()), 4),
            "largest_cluster_share": round(float(clusters.value_counts().iloc[0] / sel.sum()), 4) if len(clusters) else 0.0,
            "clusters": int(clusters.nunique()),
        })  # fmt: skip
    recalls = [c["in_flagged_cluster"] for c in out["campaigns"]]
    out["campaign_recall"] = round(float(np.mean([r > 0 for r in recalls])), 4) if recalls else float("nan")
    out["campaign_account_recall"] = round(float(np.mean(recalls)), 4) if recalls else float("nan")
    for role_idx, name in ((1, "nat"), (2, "reseller"), (0, "benign")):
        sel = pop.role == role_idx
        out[f"{name}_accounts"] = int(sel.sum())
        out[f"{name}_in_flagged_cluster"] = int(in_flagged[sel].sum())
        out[f"{name}_in_bound_cluster"] = int(in_bound[sel].sum())
        out[f"{name}_lifted"] = int(lifted[sel].sum())
    out["clusters"], out["flagged_clusters"], out["bound_clusters"] = len(result.clusters), len(flagged_clusters), len(bound_clusters)
    out["edges"] = int(len(result.edges))
    return out


def run_linking_bench(
    workdir: Path, accounts: int = 100_000, events: int = 10_000_000, seed: int = 0, *, memory_limit: str = "1GB",
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build the synthetic store, compute features, score, link; return timings, peak RSS and quality."""
    from distillguard.detectors.ensemble import Ensemble
    from distillguard.features.account import compute_account_features
    from distillguard.linking import link_accounts

    workdir.mkdir(parents=True, exist_ok=True)
    rss = PeakRSS().start()
    clock = StageClock(rss)
    try:
        with clock.stage("build", on_stage):
            store, pop = build_synthetic_store(workdir / f"linking-{accounts}-{events}-s{seed}.duckdb", accounts, events, seed,
                                               memory_limit=memory_limit)  # fmt: skip
        n_events = store.query("SELECT count(*) AS n FROM events").column("n")[0].as_py()
        with clock.stage("features", on_stage):
            frame = compute_account_features(store)
        with clock.stage("scoring", on_stage):
            model = Ensemble.load()
            model.fit_population(frame)
            frame["score"] = model.score(frame)
        with clock.stage("linking", on_stage):
            result = link_accounts(store, frame, model, model.threshold)
        ids = pop.account_ids()
        quality = linking_quality(pop, ids, frame["score"], result)
        store.close()
    finally:
        rss.stop()
    stages = {s.name: asdict(s) for s in clock.stages}
    link_s = stages["linking"]["wall_s"]
    return {
        "accounts": accounts, "events": int(n_events), "seed": seed, "memory_limit": memory_limit,
        "threads": os.cpu_count(), "stages": stages, "linking_substages_s": result.timings_s,
        "peak_rss_mb": max(s.peak_rss_mb for s in clock.stages),
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "features_events_per_s": round(n_events / max(stages["features"]["wall_s"], 1e-9)),
        "linking_events_per_s": round(n_events / max(link_s, 1e-9)),
        "quality": quality,
    }  # fmt: skip


def results_table(result: dict[str, Any]) -> str:
    """A plain-text table of one run: stage, wall time, peak RSS; then the quality line."""
    lines = [f"{result['accounts']:,} accounts / {result['events']:,} events (seed {result['seed']}, DuckDB memory_limit {result['memory_limit']})",
             f"{'stage':<12} {'wall s':>9} {'CPU s':>9} {'peak RSS MB':>12}"]  # fmt: skip
    for s in result["stages"].values():
        lines.append(f"{s['name']:<12} {s['wall_s']:>9.1f} {s['cpu_s']:>9.1f} {s['peak_rss_mb']:>12.0f}")
    lines.append(f"linking sub-stages (s): {result['linking_substages_s']}")
    lines.append(f"features: {result['features_events_per_s']:,} events/s; linking: {result['linking_events_per_s']:,} events/s")
    q = result["quality"]
    lines.append(
        f"campaign recall {q['campaign_recall']:.0%} (accounts in a flagged cluster {q['campaign_account_recall']:.1%}); "
        f"NAT accounts in flagged clusters {q['nat_in_flagged_cluster']}/{q['nat_accounts']}, lifted {q['nat_lifted']}; "
        f"reseller {q['reseller_in_flagged_cluster']}/{q['reseller_accounts']}; benign {q['benign_in_flagged_cluster']}/{q['benign_accounts']}; "
        f"{q['edges']:,} edges, {q['clusters']:,} clusters ({q['bound_clusters']} bound, {q['flagged_clusters']} flagged)"
    )
    for c in q["campaigns"]:
        lines.append(f"  campaign {c['campaign']}: {c['accounts']} accounts, {c['in_flagged_cluster']:.1%} in a flagged cluster, "
                     f"largest cluster holds {c['largest_cluster_share']:.1%} ({c['clusters']} clusters)")  # fmt: skip
    return "\n".join(lines)


def write_results(result: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=float))
    return path
