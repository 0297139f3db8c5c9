"""The traffic simulator: labeled API traffic composed from real public text.

Real prompts and replies (see :mod:`.corpora`) with timing, identity and
request parameters layered on by persona models (:mod:`.personas`): genuine
customers, hard negatives, and harvesting campaigns.  Scenarios
(:data:`SCENARIOS`) mix them; output is reproducible byte for byte from a seed.

Example:
    >>> from distillguard.simulate import run_scenario
    >>> res = run_scenario("demo", "/tmp/dg-demo", seed=0)   # doctest: +SKIP
    >>> res.events, res.attack_accounts["hydra"]              # doctest: +SKIP
    (61234, 120)

Files written to ``out_dir``:

* ``traffic.<fmt>.jsonl.gz`` - the events (fmt = litellm | openai | otlp), through
  :func:`distillguard.ingest.writers.write_events`;
* ``accounts.csv`` - the accounts table (:func:`~distillguard.ingest.writers.write_accounts`);
* ``labels.jsonl`` - one row per account: account_id, persona, campaign_id, is_attack,
  hard_negative, and attack_share for mixed reseller accounts;
* ``event_labels.jsonl.gz`` - event_id -> campaign_id for the attack events inside
  mixed (otherwise genuine) accounts.
"""

from __future__ import annotations

import gzip
import heapq
import io
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from distillguard.errors import ConfigError
from distillguard.schema import RawAccount, RawEvent
from distillguard.simulate.corpora import Corpora, load_corpora
from distillguard.simulate.personas.base import ModelCatalog, Persona, SimContext
from distillguard.simulate.responses import ReplySynth
from distillguard.simulate.scenario import ATTACK_PERSONAS, BENIGN_PERSONAS, PERSONAS, SCENARIOS, Scenario
from distillguard.simulate.timing import DAY, SCENARIO_START

__all__ = [
    "SCENARIOS", "PERSONAS", "BENIGN_PERSONAS", "ATTACK_PERSONAS", "Scenario", "SimulationResult", "BuiltScenario",
    "build_scenario", "generate_events", "run_scenario", "load_corpora",
]


@dataclass
class SimulationResult:
    """What :func:`run_scenario` wrote and how much of it."""

    out_dir: Path
    traffic: Path
    accounts_file: Path
    labels: Path
    event_labels: Path | None
    events: int
    accounts: int
    attack_accounts: dict[str, int]  # persona -> attack accounts
    accounts_by_persona: dict[str, int] = field(default_factory=dict)
    events_by_persona: dict[str, int] = field(default_factory=dict)
    corpora: str = ""
    seconds: float = 0.0


def _synth_for(c: Corpora) -> ReplySynth:
    cache = c.__dict__.setdefault("_pool_cache", {})
    if "synth" not in cache:
        cache["synth"] = ReplySynth(c.answer_bank())
    return cache["synth"]


class BuiltScenario:
    """A scenario with its personas bound: accounts and labels now, events as a lazy ordered stream.

    Example:
        >>> b = build_scenario("demo", seed=1, scale=0.1, days=1)   # doctest: +SKIP
        >>> next(b.events())["ts"] >= b.ctx.start_ts                  # doctest: +SKIP
        True
    """

    def __init__(self, scenario: Scenario, ctx: SimContext, personas: list[Persona]):
        self.scenario, self.ctx, self.personas = scenario, ctx, personas
        self.events_by_persona: Counter[str] = Counter()

    def _counted(self, p: Persona) -> Iterator[RawEvent]:
        n = 0
        for ev in p.events():
            n += 1
            yield ev
        self.events_by_persona[p.name] += n

    def events(self) -> Iterator[RawEvent]:
        """Every event of every persona, merged in timestamp order (one pass; call once)."""
        return heapq.merge(*(self._counted(p) for p in self.personas), key=lambda e: e["ts"])

    def accounts(self) -> list[RawAccount]:
        rows = [a for p in self.personas for a in p.accounts()]
        rows.sort(key=lambda a: a["account_id"])  # random ids: row order says nothing about persona
        return rows

    def labels(self) -> list[dict]:
        """Ground truth per account.  Mixed accounts' attack_share is final only after events() is consumed."""
        return [row for p in self.personas for row in p.labels()]

    def event_labels(self) -> Iterator[dict]:
        for p in self.personas:
            for eid in p.attack_event_ids:
                yield {"event_id": eid, "campaign_id": p.campaign_id}


def build_scenario(name: str, *, seed: int = 0, corpora: str | Path | Corpora | None = None, scale: float = 1.0, days: float | None = None) -> BuiltScenario:
    """Instantiate and bind a scenario's personas (accounts are created here; events are lazy)."""
    if name not in SCENARIOS:
        raise ConfigError(f"unknown scenario {name!r}; choose from {', '.join(sorted(SCENARIOS))}")
    sc = SCENARIOS[name]
    days = float(days if days is not None else sc.days)
    if isinstance(corpora, Corpora):
        c = corpora
    elif corpora == "bundled":  # the packaged sample, whatever else is on the machine (demo, tests)
        c = load_corpora(sample=True)
    else:
        c = load_corpora(corpora)
    start = SCENARIO_START
    release_day = min(sc.release_day, days * 0.6) if days < sc.release_day + 1 else sc.release_day
    ctx = SimContext(start_ts=start, days=days, seed=seed, stream=sc.stream, corpora=c, synth=_synth_for(c),
                     models=ModelCatalog(release_ts=start + release_day * DAY))
    rng = random.Random(ctx.rng_seed("scenario"))
    specs = sc.build(rng, scale, days)
    personas = []
    for i, (cls, knobs, camp) in enumerate(specs):
        p = cls(knobs, key=f"{i:03d}:{cls.name}", campaign_id=camp)
        personas.append(p.bind(ctx))
    return BuiltScenario(sc, ctx, personas)


def generate_events(name: str, *, seed: int = 0, corpora: str | Path | Corpora | None = None, scale: float = 1.0, days: float | None = None) -> Iterator[RawEvent]:
    """The scenario's events in timestamp order, without writing anything.

    Example:
        >>> ev = next(generate_events("demo", scale=0.1, days=1))   # doctest: +SKIP
        >>> sorted(ev)[:3]                                           # doctest: +SKIP
        ['account_id', 'api_key', 'completion_text']
    """
    return build_scenario(name, seed=seed, corpora=corpora, scale=scale, days=days).events()


def _write_jsonl(rows, path: Path, gz: bool = False) -> int:
    n = 0
    buf = io.BytesIO()
    for r in rows:
        buf.write(orjson.dumps(r) + b"\n")
        n += 1
    data = buf.getvalue()
    if gz:
        out = io.BytesIO()
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as g:
            g.write(data)
        data = out.getvalue()
    path.write_bytes(data)
    return n


def run_scenario(name: str, out_dir: str | Path, *, seed: int = 0, fmt: str = "litellm", corpora: str | Path | None = None,
                 scale: float = 1.0, days: float | None = None) -> SimulationResult:
    """Simulate scenario ``name`` and write traffic, accounts and labels to ``out_dir``.

    Same arguments give byte-identical files.

    Example:
        >>> r = run_scenario("demo", "/tmp/demo", seed=0)    # doctest: +SKIP
        >>> r.traffic.name                                    # doctest: +SKIP
        'traffic.litellm.jsonl.gz'
    """
    from distillguard.ingest.writers import write_accounts
    from distillguard.simulate.writer_process import write_events_in_child

    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    built = build_scenario(name, seed=seed, corpora=corpora, scale=scale, days=days)
    traffic = out / f"traffic.{fmt}.jsonl.gz"
    n_events = write_events_in_child(built.events(), traffic, fmt=fmt)
    accounts = built.accounts()
    accounts_path = out / "accounts.csv"
    write_accounts(accounts, accounts_path)
    labels = built.labels()
    labels_path = out / "labels.jsonl"
    _write_jsonl(labels, labels_path)
    ev_labels = list(built.event_labels())
    ev_labels_path = None
    if ev_labels:
        ev_labels_path = out / "event_labels.jsonl.gz"
        _write_jsonl(ev_labels, ev_labels_path, gz=True)
    attack = Counter(r["persona"] for r in labels if r["is_attack"])
    by_persona = Counter(r["persona"] for r in labels)
    return SimulationResult(
        out_dir=out, traffic=traffic, accounts_file=accounts_path, labels=labels_path, event_labels=ev_labels_path,
        events=n_events, accounts=len(accounts), attack_accounts=dict(sorted(attack.items())),
        accounts_by_persona=dict(sorted(by_persona.items())), events_by_persona=dict(sorted(built.events_by_persona.items())),
        corpora=built.ctx.corpora.origin, seconds=round(time.perf_counter() - t_start, 2),
    )
