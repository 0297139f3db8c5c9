"""Logprob harvesting: next-token distributions as a distillation signal.

Requests set ``logprobs`` and a high ``top_logprobs`` (5-20) and mostly cap
``max_tokens`` at 1-16: the campaign wants the teacher's distribution over the
next few tokens for many prefixes (continuations of real answers, one-word
answers), not the text.

Example:
    >>> LogprobHarvest.Knobs().short_share
    0.7
"""

from __future__ import annotations

from dataclasses import dataclass

from distillguard.simulate.identity import Account
from distillguard.simulate.personas.base import mc_text, user_msg
from distillguard.simulate.personas.campaign import CampaignKnobs, CampaignPersona
from distillguard.simulate.phrasing import LOGPROB_TEMPLATES


@dataclass
class LogprobHarvestKnobs(CampaignKnobs):
    accounts: int = 6
    requests_per_account_day: float = 400.0
    daily_cap: int | None = 1000
    rpm_cap: int = 30
    proxy: str = "datacenter"
    proxy_pool_size: int = 30
    short_share: float = 0.7  # requests with max_tokens 1-16
    top_logprobs_range: tuple[int, int] = (5, 20)
    template_count: int = 3


class LogprobHarvest(CampaignPersona):
    name = "logprob_harvest"
    Knobs = LogprobHarvestKnobs

    def make_accounts(self) -> list[Account]:
        accts = super().make_accounts()
        n = max(1, self.knobs.template_count)
        self.tmpl = self.rng.sample(LOGPROB_TEMPLATES, min(n, len(LOGPROB_TEMPLATES)))
        self.top = self.rng.randint(*self.knobs.top_logprobs_range)
        return accts

    def request(self, ts, acct, item, round_):
        rng, synth = self.rng, self.ctx.synth
        source_answer = item.answer or synth.reply(rng, 120)
        cut = rng.randint(20, max(21, min(len(source_answer), 1500)))
        prefix = source_answer[:cut]
        tmpl = self.tmpl[(round_ + rng.randrange(4)) % len(self.tmpl)]
        text = tmpl.replace("{q}", mc_text(item)).replace("{p}", prefix)
        if rng.random() < self.knobs.short_share:
            max_tokens = rng.choice((1, 1, 2, 4, 5, 8, 10, 16))
            reply = source_answer[cut: cut + max_tokens * 4] or "the"
        else:
            max_tokens = rng.choice((128, 256, 512))
            reply = self.long_reply(item, 300)
        return {"messages": [user_msg(text)], "reply": reply, "max_tokens": max_tokens, "logprobs": True, "top_logprobs": self.top,
                "temperature": rng.choice((0.0, 1.0)), "stream": False}
