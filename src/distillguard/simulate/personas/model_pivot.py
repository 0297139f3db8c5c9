"""Model-release pivots: a campaign moves to a newly released model within a day.

The campaign harvests the current flagship; when a new model is released it
switches every account to it within ``pivot_delay_hours`` and surges, to
harvest the new capabilities before anyone reacts.  Genuine users adopt a
release over days (see ``ModelCatalog.for_account``); evaluation runs also hit
it early, which makes that a signal only in combination.

Example:
    >>> ModelPivot.Knobs().pivot_delay_hours
    (2.0, 20.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distillguard.simulate.identity import Account
from distillguard.simulate.personas.base import sample_params
from distillguard.simulate.personas.campaign import CampaignKnobs, CampaignPersona, acct_salt


@dataclass
class ModelPivotKnobs(CampaignKnobs):
    accounts: int = 40
    requests_per_account_day: float = 25.0
    daily_cap: int | None = 150
    pivot_delay_hours: tuple[float, float] = (2.0, 20.0)
    surge: float = 2.5  # load multiplier after the pivot
    template_count: int = 3


class ModelPivot(CampaignPersona):
    name = "model_pivot"
    Knobs = ModelPivotKnobs

    def make_accounts(self) -> list[Account]:
        accts = super().make_accounts()
        self.tmpl = self.templates()
        self.params = sample_params(self.rng, "harvest")
        rel = self.ctx.models.release_ts
        self.pivot_ts = rel + self.rng.uniform(*self.knobs.pivot_delay_hours) * 3600.0
        return accts

    def schedule(self):
        ts, acct = super().schedule()
        if not np.isfinite(self.pivot_ts) or self.knobs.surge <= 1:
            return ts, acct
        # after the pivot, extra requests at the surge rate (a second dispatcher stream)
        k = self.knobs
        saved = k.requests_per_account_day
        k.requests_per_account_day = saved * (k.surge - 1)
        extra_t, extra_a = super().schedule()
        k.requests_per_account_day = saved
        m = extra_t >= self.pivot_ts
        ts, acct = np.concatenate([ts, extra_t[m]]), np.concatenate([acct, extra_a[m]])
        return self._enforce_caps(ts, acct)

    def model_for(self, ts: float) -> str:
        return self.ctx.models.release if ts >= self.pivot_ts else self.ctx.models.flagship

    def request(self, ts, acct, item, round_):
        text = self.wrap(self.tmpl, item.text, round_, acct_salt(acct))
        return {"messages": self.harvest_messages(text), "reply": self.long_reply(item), **self.params}
