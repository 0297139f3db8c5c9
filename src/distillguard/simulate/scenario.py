"""Scenarios: which personas, with which knobs, over which window.

A scenario is a function from (rng, scale, days) to a list of bound-ready
personas.  Every scenario shares one benign population (all hard negatives
included); attack scenarios add campaigns of one kind at full strength,
``demo`` adds a small campaign of every kind, ``everything`` a mixed week, and
``training`` draws many campaigns with randomized knobs (its own seed stream,
so its traffic never equals demo's).

Example:
    >>> sorted(SCENARIOS)[:3]
    ['benchmark_sweep', 'demo', 'everything']
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from distillguard.simulate.personas.app_backend import AppBackend
from distillguard.simulate.personas.base import Persona
from distillguard.simulate.personas.batch_pipeline import BatchPipeline
from distillguard.simulate.personas.benchmark_sweep import BenchmarkSweep
from distillguard.simulate.personas.chat_user import ChatUser
from distillguard.simulate.personas.corporate_nat import CorporateNAT
from distillguard.simulate.personas.eval_run import EvalRun
from distillguard.simulate.personas.hydra import Hydra
from distillguard.simulate.personas.hydra_mixed_reseller import HydraMixedReseller
from distillguard.simulate.personas.logprob_harvest import LogprobHarvest
from distillguard.simulate.personas.low_and_slow import LowAndSlow
from distillguard.simulate.personas.model_pivot import ModelPivot
from distillguard.simulate.personas.multi_sample import MultiSample
from distillguard.simulate.personas.naive_bulk import NaiveBulk
from distillguard.simulate.personas.reasoning_coercion import ReasoningCoercion
from distillguard.simulate.personas.reseller import Reseller
from distillguard.simulate.personas.rubric_grading import RubricGrading
from distillguard.simulate.personas.synthetic_data_dev import SyntheticDataDev
from distillguard.simulate.personas.tool_use_harvest import ToolUseHarvest

BENIGN_PERSONAS: tuple[type[Persona], ...] = (ChatUser, CorporateNAT, AppBackend, BatchPipeline, EvalRun, SyntheticDataDev, Reseller)
ATTACK_PERSONAS: tuple[type[Persona], ...] = (
    NaiveBulk, Hydra, HydraMixedReseller, LowAndSlow, ReasoningCoercion, BenchmarkSweep,
    LogprobHarvest, MultiSample, ToolUseHarvest, RubricGrading, ModelPivot,
)
PERSONAS: dict[str, type[Persona]] = {p.name: p for p in BENIGN_PERSONAS + ATTACK_PERSONAS}

#: (persona class, knobs, campaign id) - what a scenario builder returns; keys are assigned later.
Spec = tuple[type[Persona], object, str | None]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    days: float
    build: Callable[[random.Random, float, float], list[Spec]]
    stream: str  # seed stream: scenarios with different streams never share randomness
    release_day: float = 4.5  # when the new model is released, days after start


def _n(x: float, scale: float, lo: int = 1) -> int:
    return max(lo, int(round(x * scale)))


def campaign_id(rng: random.Random) -> str:
    return f"camp_{rng.getrandbits(40):010x}"


def benign_population(rng: random.Random, scale: float, days: float) -> list[Spec]:
    """The genuine customers every scenario has, hard negatives included (~38k events/week at scale 1)."""
    s = scale
    return [
        (ChatUser, ChatUser.Knobs(accounts=_n(110, s), sessions_per_day=1.0), None),
        (CorporateNAT, CorporateNAT.Knobs(orgs=_n(2, s), accounts_per_org=20, kind="corporate"), None),
        (CorporateNAT, CorporateNAT.Knobs(orgs=_n(1, s), accounts_per_org=25, kind="university", sessions_per_day=1.2), None),
        (AppBackend, AppBackend.Knobs(app="support", requests_per_day=500 * s), None),
        (AppBackend, AppBackend.Knobs(app="tutor", requests_per_day=300 * s, end_users=_n(800, s)), None),
        (AppBackend, AppBackend.Knobs(app="writing", requests_per_day=300 * s, end_users=_n(600, s)), None),
        *[(BatchPipeline, BatchPipeline.Knobs(requests_per_day=700 * s, task=rng.randrange(6), workers=rng.choice((4, 8, 16))), None) for _ in range(2)],
        *[(EvalRun, EvalRun.Knobs(runs=2, max_items=_n(600, s, 50)), None) for _ in range(_n(3, s))],
        *[(SyntheticDataDev, SyntheticDataDev.Knobs(examples=_n(250, s, 20)), None) for _ in range(3)],
        (Reseller, Reseller.Knobs(accounts=1, requests_per_day=1500 * s, end_users=_n(1500, s)), None),
    ]


def _small_campaigns(rng: random.Random, s: float, days: float) -> list[Spec]:
    """One small campaign of every attack kind, as in ``demo``."""
    mid = max(0.0, days / 2 - 1.5)
    return [
        (NaiveBulk, NaiveBulk.Knobs(requests_per_account_day=1500 * s, start_day=rng.uniform(0, days - 2), duration_days=2), campaign_id(rng)),
        (Hydra, Hydra.Knobs(accounts=_n(120, s), requests_per_account_day=15, start_day=mid, duration_days=3), campaign_id(rng)),
        (HydraMixedReseller, HydraMixedReseller.Knobs(accounts=1, requests_per_day=800 * s, attack_share=0.2), campaign_id(rng)),
        (LowAndSlow, LowAndSlow.Knobs(accounts=_n(30, s), requests_per_account_day=5), campaign_id(rng)),
        (ReasoningCoercion, ReasoningCoercion.Knobs(accounts=_n(30, s), requests_per_account_day=15, start_day=rng.uniform(0, days - 3), duration_days=3), campaign_id(rng)),
        (BenchmarkSweep, BenchmarkSweep.Knobs(accounts=_n(4, s), requests_per_account_day=120, start_day=rng.uniform(0, days - 2), duration_days=2), campaign_id(rng)),
        (LogprobHarvest, LogprobHarvest.Knobs(accounts=_n(3, s), requests_per_account_day=250, start_day=rng.uniform(0, days - 2), duration_days=2), campaign_id(rng)),
        (MultiSample, MultiSample.Knobs(accounts=_n(3, s), requests_per_account_day=80, start_day=rng.uniform(0, days - 3), duration_days=3), campaign_id(rng)),
        (ToolUseHarvest, ToolUseHarvest.Knobs(accounts=_n(6, s), requests_per_account_day=15, start_day=rng.uniform(0, days - 3), duration_days=3), campaign_id(rng)),
        (RubricGrading, RubricGrading.Knobs(accounts=_n(5, s), requests_per_account_day=60, start_day=rng.uniform(0, days - 3), duration_days=3), campaign_id(rng)),
        (ModelPivot, ModelPivot.Knobs(accounts=_n(20, s), requests_per_account_day=15, start_day=0), campaign_id(rng)),
    ]


def _demo(rng: random.Random, s: float, days: float) -> list[Spec]:
    return benign_population(rng, s, days) + _small_campaigns(rng, s, days)


def _everything(rng: random.Random, s: float, days: float) -> list[Spec]:
    return benign_population(rng, 2 * s, days) + _small_campaigns(rng, 2 * s, days) + [
        (Hydra, Hydra.Knobs(accounts=_n(300, s), requests_per_account_day=25, timing="independent", proxy="datacenter"), campaign_id(rng)),
    ]


def _single(cls: type[Persona], **knobs) -> Callable[[random.Random, float, float], list[Spec]]:
    """Full benign population + campaigns of one attack kind at full strength (a harder variant included)."""

    def build(rng: random.Random, s: float, days: float) -> list[Spec]:
        k = cls.Knobs(**knobs)
        if hasattr(k, "accounts") and cls.name not in ("naive_bulk", "hydra_mixed_reseller"):
            k = k.replace(accounts=_n(k.accounts, s))
        harder = _harder(cls, k, rng)
        return benign_population(rng, s, days) + [(cls, k, campaign_id(rng)), (cls, harder, campaign_id(rng))]

    return build


def _harder(cls: type[Persona], k, rng: random.Random):
    """The same attack with its evasion knobs turned up."""
    kw = {}
    names = {f for f in k.__dataclass_fields__}
    if "template_count" in names:
        kw["template_count"] = max(getattr(k, "template_count"), 6)
    if "jitter" in names:
        kw["jitter"] = 0.6
    if "shared_ua" in names:
        kw["shared_ua"] = False
    if "payment_group" in names:
        kw["payment_group"] = 1
    if "email_pattern" in names:
        kw["email_pattern"] = "human"
    if "created_days_before" in names:
        kw["created_days_before"] = 90.0
    if "creation_waves" in names:
        kw["creation_waves"] = 12
    if "attack_share" in names:
        kw["attack_share"] = 0.05
    if "requests_per_account_day" in names and cls.name != "naive_bulk":
        kw["requests_per_account_day"] = k.requests_per_account_day * 0.5
    if "timing" in names and cls.name in ("hydra", "reasoning_coercion", "model_pivot", "rubric_grading"):
        kw["timing"] = "human"
    return k.replace(**kw)


def _training(rng: random.Random, s: float, days: float) -> list[Spec]:
    """Benign population with jittered sizes plus many campaigns with randomized knobs (~300k events)."""
    specs = benign_population(rng, 3.0 * s * rng.uniform(0.9, 1.1), days)
    specs += [(ChatUser, ChatUser.Knobs(accounts=_n(150, s), sessions_per_day=rng.uniform(0.5, 3.0), busyness_sigma=1.0), None)]
    specs += [(Reseller, Reseller.Knobs(accounts=1, requests_per_day=rng.uniform(2000, 6000) * s, end_users=_n(3000, s)), None)]
    specs += _hard_negatives(rng, 0.25 * s, days)  # hard negatives in numbers, so the operating point accounts for them
    for cls in ATTACK_PERSONAS:
        for _ in range(2):
            k = cls.Knobs()
            kw: dict = {}
            names = set(k.__dataclass_fields__)
            if "accounts" in names and cls.name not in ("naive_bulk", "hydra_mixed_reseller"):
                kw["accounts"] = _n(k.accounts * rng.uniform(0.3, 1.2), s)
            if "requests_per_account_day" in names:
                kw["requests_per_account_day"] = k.requests_per_account_day * rng.uniform(0.2, 1.0)
            if "attack_share" in names:
                kw["attack_share"] = rng.uniform(0.05, 0.5)
                kw["requests_per_day"] = rng.uniform(800, 3000) * s
            for f, choices in (("template_count", (0, 1, 2, 3, 5, 8)), ("jitter", (0.05, 0.15, 0.4, 0.8)), ("shared_ua", (True, False)),
                               ("payment_group", (1, 3, 10, 40)), ("proxy", ("residential_rotating", "residential_sticky", "datacenter")),
                               ("email_pattern", ("numbered", "random", "human")), ("created_days_before", (1.0, 5.0, 30.0, 120.0))):
                if f in names and cls.name not in ("naive_bulk",):
                    kw[f] = rng.choice(choices)
            if "timing" in names and cls.name not in ("naive_bulk", "low_and_slow", "tool_use_harvest"):
                kw["timing"] = rng.choice(("round_robin", "independent", "human"))
            dur = rng.uniform(1.5, days)
            kw["start_day"] = rng.uniform(0, max(0.0, days - dur))
            kw["duration_days"] = dur
            if cls.name == "model_pivot":
                kw["start_day"], kw["duration_days"] = 0.0, None
            specs.append((cls, k.replace(**kw), campaign_id(rng)))
    return specs


def _hard_negatives(rng: random.Random, s: float, days: float) -> list[Spec]:
    """Only genuine customers, ~200 accounts of each hard-negative kind, so a 0.5% false-positive
    rate per persona is measurable (one false positive in 200 is 0.5%)."""
    specs: list[Spec] = [
        (ChatUser, ChatUser.Knobs(accounts=_n(100, s)), None),
        (CorporateNAT, CorporateNAT.Knobs(orgs=_n(5, s), accounts_per_org=25, kind="corporate"), None),
        (CorporateNAT, CorporateNAT.Knobs(orgs=_n(3, s), accounts_per_org=40, kind="university", sessions_per_day=1.2), None),
    ]
    n = _n(200, s, 5)
    specs += [(BatchPipeline, BatchPipeline.Knobs(requests_per_day=rng.uniform(30, 300), task=rng.randrange(6), workers=rng.choice((1, 4, 8, 16))), None) for _ in range(n)]
    specs += [(EvalRun, EvalRun.Knobs(runs=rng.choice((1, 2)), max_items=rng.choice((60, 120, 250)), workers=rng.choice((1, 4, 8))), None) for _ in range(n)]
    specs += [(SyntheticDataDev, SyntheticDataDev.Knobs(examples=rng.choice((40, 100, 250))), None) for _ in range(n)]
    specs += [(AppBackend, AppBackend.Knobs(app=rng.choice(("support", "tutor", "writing")), requests_per_day=rng.uniform(30, 250), end_users=rng.choice((50, 300, 1000))), None) for _ in range(n)]
    specs += [(Reseller, Reseller.Knobs(accounts=1, requests_per_day=rng.uniform(300, 1500), end_users=rng.choice((200, 800, 2000))), None) for _ in range(_n(20, s, 2))]
    return specs


SCENARIOS: dict[str, Scenario] = {
    "demo": Scenario("demo", "one week, full benign population (every hard negative), a small campaign of every attack kind", 7, _demo, "demo"),
    "training": Scenario("training", "broad mix with randomized attack knobs for fitting the supervised detector", 7, _training, "training"),
    "everything": Scenario("everything", "a mixed week: doubled benign population, every attack kind, plus a large hydra", 7, _everything, "everything"),
    "naive_bulk": Scenario("naive_bulk", "benign population + single-account bulk harvesting", 7, _single(NaiveBulk, requests_per_account_day=3000, start_day=1, duration_days=4), "naive_bulk"),
    "hydra": Scenario("hydra", "benign population + hydra clusters (hundreds of light accounts, proxies, partitioned dataset)", 7, _single(Hydra, accounts=400, requests_per_account_day=25), "hydra"),
    "hydra_mixed_reseller": Scenario("hydra_mixed_reseller", "benign population + hydra traffic mixed into resellers' genuine traffic (5-50%)", 7, _single(HydraMixedReseller, accounts=2, requests_per_day=2500, attack_share=0.25), "hydra_mixed_reseller"),
    "low_and_slow": Scenario("low_and_slow", "benign population + low-and-slow harvesting over four weeks", 28, _single(LowAndSlow, accounts=80, requests_per_account_day=6), "low_and_slow"),
    "reasoning_coercion": Scenario("reasoning_coercion", "benign population + multilingual reasoning-trace coercion", 7, _single(ReasoningCoercion, accounts=80, requests_per_account_day=25), "reasoning_coercion"),
    "benchmark_sweep": Scenario("benchmark_sweep", "benign population + benchmark/train-set sweeps with reasoning", 7, _single(BenchmarkSweep, accounts=10, requests_per_account_day=150), "benchmark_sweep"),
    "logprob_harvest": Scenario("logprob_harvest", "benign population (incl. logprob-scoring eval runs) + logprob harvesting", 7, _single(LogprobHarvest, accounts=8, requests_per_account_day=400), "logprob_harvest"),
    "multi_sample": Scenario("multi_sample", "benign population + multi-sample harvesting (n>1, temperature sweeps, fixed seeds)", 7, _single(MultiSample, accounts=8, requests_per_account_day=120), "multi_sample"),
    "tool_use_harvest": Scenario("tool_use_harvest", "benign population (incl. a tool-using support bot) + agentic tool-use trace harvesting", 7, _single(ToolUseHarvest, accounts=15, requests_per_account_day=20), "tool_use_harvest"),
    "rubric_grading": Scenario("rubric_grading", "benign population (incl. LLM-as-judge eval runs) + rubric grading as a free reward model", 7, _single(RubricGrading, accounts=12, requests_per_account_day=80), "rubric_grading"),
    "hard_negatives": Scenario("hard_negatives", "no attacks: ~200 accounts each of batch pipelines, evaluation runs, synthetic-data developers, app backends, 200 NAT/university users, 20 resellers", 3, _hard_negatives, "hard_negatives"),
    "model_pivot": Scenario("model_pivot", "benign population (gradual adopters, early evals) + a campaign pivoting to a new model within 24h", 7, _single(ModelPivot, accounts=50, requests_per_account_day=25), "model_pivot"),
}
