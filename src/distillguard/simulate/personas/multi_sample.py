"""Multi-sample harvesting: many completions per prompt.

Each prompt is sent several times in a row with ``n`` > 1, a temperature sweep
across the repeats, and fixed seeds, so one prompt yields a spread of teacher
samples (for rejection sampling or preference data).

Example:
    >>> MultiSample.Knobs().temperature_sweep
    (0.2, 0.6, 1.0, 1.2)
"""

from __future__ import annotations

from dataclasses import dataclass

from distillguard.simulate.corpora import PromptItem
from distillguard.simulate.identity import Account
from distillguard.simulate.personas.base import user_msg
from distillguard.simulate.personas.campaign import CampaignKnobs, CampaignPersona
from distillguard.simulate.pools import harvest_pool


@dataclass
class MultiSampleKnobs(CampaignKnobs):
    accounts: int = 6
    requests_per_account_day: float = 120.0
    daily_cap: int | None = 400
    proxy: str = "datacenter"
    proxy_pool_size: int = 30
    n_choices: tuple[int, ...] = (4, 8, 16)
    temperature_sweep: tuple[float, ...] = (0.2, 0.6, 1.0, 1.2)
    seeds: tuple[int, ...] = (42, 1234)
    template_count: int = 1


class MultiSample(CampaignPersona):
    name = "multi_sample"
    Knobs = MultiSampleKnobs

    def dataset(self) -> list[PromptItem]:
        # every item repeated once per temperature, consecutively, so one account sweeps it
        base = harvest_pool(self.ctx.corpora, seed=self.rng.randrange(1 << 30))
        reps = max(1, len(self.knobs.temperature_sweep))
        return [it._replace(pid=f"{it.pid}#{r}") for it in base[: max(1, len(base) // reps)] for r in range(reps)]

    def make_accounts(self) -> list[Account]:
        accts = super().make_accounts()
        self.tmpl = self.templates()
        self.n = self.rng.choice(self.knobs.n_choices)
        return accts

    def request(self, ts, acct, item, round_):
        rep = int(item.pid.rsplit("#", 1)[1])
        k: MultiSampleKnobs = self.knobs
        text = self.tmpl[0].replace("{q}", item.text)
        return {"messages": [user_msg(text)], "reply": self.long_reply(item, 600), "n": self.n,
                "temperature": k.temperature_sweep[rep % len(k.temperature_sweep)], "seed": k.seeds[(rep + round_) % len(k.seeds)],
                "max_tokens": 4096, "stream": False}
