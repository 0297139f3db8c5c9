"""Hydra clusters: hundreds to thousands of accounts harvesting one dataset together.

The farm of :mod:`.campaign` at full strength: accounts created in bursts,
shared payment fingerprints in subgroups, one client build, a rotating proxy
pool, and a dispatcher that partitions a broad dataset across the accounts and
load-balances them round-robin so each stays light (tens of requests a day)
and under its limits.  Single-turn, long outputs, a few shared templates.

Example:
    >>> Hydra.Knobs(accounts=500).partitioned
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from distillguard.simulate.identity import Account
from distillguard.simulate.personas.base import sample_params
from distillguard.simulate.personas.campaign import CampaignKnobs, CampaignPersona, acct_salt


@dataclass
class HydraKnobs(CampaignKnobs):
    accounts: int = 300
    requests_per_account_day: float = 30.0
    daily_cap: int | None = 100


class Hydra(CampaignPersona):
    name = "hydra"
    Knobs = HydraKnobs

    def make_accounts(self) -> list[Account]:
        accts = super().make_accounts()
        self.params = sample_params(self.rng, "harvest")  # one client build: one parameter set
        self.tmpl = self.templates()
        return accts

    def request(self, ts, acct, item, round_):
        text = self.wrap(self.tmpl, item.text, round_, acct_salt(acct))
        return {"messages": self.harvest_messages(text), "reply": self.long_reply(item), **self.params}
