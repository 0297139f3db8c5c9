"""Low-and-slow harvesting: a few requests a day per account, for weeks, on human hours.

Accounts are aged (created long before), sign up with real-looking names,
use sticky residential proxies (one home-like address per account at a
time), different client builds, and send only a handful of requests a day
during the operators' waking hours.  Still single-turn and template-driven,
with long outputs: the per-account view looks like a light genuine user.

Example:
    >>> LowAndSlow.Knobs().requests_per_account_day
    6.0
"""

from __future__ import annotations

from dataclasses import dataclass

from distillguard.simulate.identity import Account
from distillguard.simulate.personas.base import sample_params
from distillguard.simulate.personas.campaign import CampaignKnobs, CampaignPersona, acct_salt


@dataclass
class LowAndSlowKnobs(CampaignKnobs):
    accounts: int = 40
    requests_per_account_day: float = 6.0
    daily_cap: int | None = 20
    timing: str = "human"
    proxy: str = "residential_sticky"
    proxy_pool_size: int = 400
    payment_group: int = 3
    shared_ua: bool = False
    email_pattern: str = "human"
    creation_waves: int = 6
    created_days_before: float = 60.0
    template_count: int = 2
    follow_up_rate: float = 0.0  # raise to add fake "continue" follow-ups (harder)


class LowAndSlow(CampaignPersona):
    name = "low_and_slow"
    Knobs = LowAndSlowKnobs

    def make_accounts(self) -> list[Account]:
        accts = super().make_accounts()
        self.tmpl = self.templates()
        self.params = {a.account_id: sample_params(self.rng, "harvest") for a in accts}
        return accts

    def request(self, ts, acct, item, round_):
        text = self.wrap(self.tmpl, item.text, round_, acct_salt(acct))
        reply = self.long_reply(item)
        messages = self.harvest_messages(text)
        if self.rng.random() < self.knobs.follow_up_rate:
            messages = messages + [{"role": "assistant", "content": reply[:2000]}, {"role": "user", "content": "Continue."}]
        return {"messages": messages, "reply": reply, **self.params[acct.account_id]}
