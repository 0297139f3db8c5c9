"""Modest synthetic-data users: a developer generating a few hundred examples.

A slot-filled generator prompt (topic, mood), high temperature, sometimes
``n`` > 1, run from a laptop script in a few bursts during working hours.  A
hard negative for template-concentration and multi-sample signals: templated,
but small and bounded.

Example:
    >>> SyntheticDataDev.Knobs().examples
    300
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from distillguard.schema import RawEvent
from distillguard.simulate.identity import Account
from distillguard.simulate.personas.base import Knobs, Persona, pick
from distillguard.simulate.phrasing import SYNTH_DATA_TEMPLATES, SYNTH_MOODS, SYNTH_TOPICS
from distillguard.simulate.pools import chat_conversations
from distillguard.simulate.timing import DAY, HOUR, closed_loop_times


@dataclass
class SyntheticDataDevKnobs(Knobs):
    examples: int = 300
    bursts: int = 3
    workers: int = 2


class SyntheticDataDev(Persona):
    name = "synthetic_data_dev"
    hard_negative = True
    Knobs = SyntheticDataDevKnobs

    def make_accounts(self) -> list[Account]:
        return [self.new_account(ua_kinds="sdk")]

    def events(self) -> Iterator[RawEvent]:
        k: SyntheticDataDevKnobs = self.knobs
        rng, acct, synth = self.rng, self.accts[0], self.ctx.synth
        t0, t1 = self.window()
        days = max(1.0, (t1 - t0) / DAY)
        templates = rng.sample(SYNTH_DATA_TEMPLATES, k=rng.randint(1, 2))
        seeds = [c.turns[0][0][:160] for c in chat_conversations(self.ctx.corpora)[:200]] or ["The meeting moved to Tuesday."]
        per_burst = max(1, int(k.examples * k.volume / max(1, k.bursts)))
        starts = sorted(t0 + int(rng.uniform(0, days)) * DAY + (rng.uniform(9.5, 17) - acct.tz) * HOUR for _ in range(k.bursts))
        last = t0
        n_choice = rng.choice((None, None, 3))
        model = self.ctx.models.flagship
        for s in starts:
            s = max(s, last + 60)
            ts = closed_loop_times(self.np_rng, s, t1, k.workers, 6.0, sigma=0.4, limit=per_burst)
            for t in ts.tolist():
                prompt = pick(rng, templates).format(topic=pick(rng, SYNTH_TOPICS), mood=pick(rng, SYNTH_MOODS), seed=pick(rng, seeds))
                reply = synth.reply(rng, int(rng.lognormvariate(math.log(300), 0.4)))
                yield self.event(t, acct, [{"role": "user", "content": prompt}], reply, model=model, temperature=rng.choice((0.9, 1.0)),
                                 max_tokens=1024, n=n_choice, stream=False)
                last = t
