"""Naive bulk harvesting: one account, high volume, single-turn, broad coverage.

The unsophisticated baseline: one key on one cloud server pushes a broad
instruction mix through a worker pool around the clock, asking for long
answers.  Per-account volume and rate are the giveaways.

Example:
    >>> NaiveBulk.Knobs().accounts
    1
"""

from __future__ import annotations

from dataclasses import dataclass

from distillguard.simulate.identity import Account
from distillguard.simulate.personas.base import sample_params
from distillguard.simulate.personas.campaign import CampaignKnobs, CampaignPersona


@dataclass
class NaiveBulkKnobs(CampaignKnobs):
    accounts: int = 1
    requests_per_account_day: float = 3000.0
    daily_cap: int | None = None
    rpm_cap: int = 600
    timing: str = "independent"
    proxy: str = "none"
    template_count: int = 1
    partitioned: bool = False
    payment_group: int = 1
    email_pattern: str = "human"
    created_days_before: float = 20.0


class NaiveBulk(CampaignPersona):
    name = "naive_bulk"
    Knobs = NaiveBulkKnobs

    def make_accounts(self) -> list[Account]:
        accts = super().make_accounts()
        self.params = sample_params(self.rng, "harvest")
        self.tmpl = self.templates()
        return accts

    def request(self, ts, acct, item, round_):
        text = self.wrap(self.tmpl, item.text, round_, self.rng.randrange(len(self.tmpl)))
        return {"messages": self.harvest_messages(text), "reply": self.long_reply(item), **self.params}
