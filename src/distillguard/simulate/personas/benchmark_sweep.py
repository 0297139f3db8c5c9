"""Benchmark and training-set sweeps with reasoning.

GSM8K, MATH, MMLU, HumanEval and MBPP items (test and train splits) wrapped
in a few "explain step by step" templates, sampled at moderate temperature with
a large ``max_tokens``, so every item comes back with a long worked solution.
Unlike an evaluation run: several accounts, long answers, training splits too,
and no few-shot scoring format.

Example:
    >>> BenchmarkSweep.Knobs().capabilities
    ('math', 'code', 'knowledge')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from distillguard.simulate.identity import Account
from distillguard.simulate.personas.base import mc_text, sample_params, user_msg
from distillguard.simulate.personas.campaign import CampaignKnobs, CampaignPersona
from distillguard.simulate.phrasing import SWEEP_TEMPLATES
from distillguard.simulate.pools import benchmark_pool


@dataclass
class BenchmarkSweepKnobs(CampaignKnobs):
    accounts: int = 8
    requests_per_account_day: float = 150.0
    daily_cap: int | None = 500
    timing: str = "round_robin"
    proxy: str = "datacenter"
    proxy_pool_size: int = 40
    capabilities: tuple[str, ...] = ("math", "code", "knowledge")
    template_count: int = 2


class BenchmarkSweep(CampaignPersona):
    name = "benchmark_sweep"
    Knobs = BenchmarkSweepKnobs

    def dataset(self):
        return benchmark_pool(self.ctx.corpora, tuple(self.knobs.capabilities), seed=self.rng.randrange(1 << 30))

    def make_accounts(self) -> list[Account]:
        accts = super().make_accounts()
        n = max(1, self.knobs.template_count)
        self.tmpl = {cap: self.rng.sample(t, min(n, len(t))) for cap, t in SWEEP_TEMPLATES.items()}
        self.params = sample_params(self.rng, "harvest")
        return accts

    def request(self, ts, acct, item, round_):
        rng, synth = self.rng, self.ctx.synth
        cap = item.capability if item.capability in self.tmpl else "math"
        tmpl = self.tmpl[cap][(round_ + rng.randrange(4)) % len(self.tmpl[cap])]
        text = tmpl.replace("{q}", mc_text(item))
        target = int(rng.lognormvariate(math.log(1100), 0.45))
        if cap == "code" and item.answer:
            reply = synth.reasoning_trace(rng, "en", None, target // 2) + "\n\n```python\n" + item.answer + "\n```"
        else:
            reply = synth.reasoning_trace(rng, "en", item.answer, target, synth.short_answer(rng, item.answer) if item.answer else None)
        return {"messages": [user_msg(text)], "reply": reply, **self.params}
