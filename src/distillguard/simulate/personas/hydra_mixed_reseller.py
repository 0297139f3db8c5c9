"""Hydra traffic mixed into a reseller's genuine traffic.

A harvesting operator buys access through resellers, so its requests leave
through the reseller's account, keys and servers, interleaved with thousands of
genuine end users.  The attack share (5-50 %) is the knob; the attacker's
requests carry a handful of its own ``end_user`` ids (or none), come at a
steady dispatcher pace 24/7, are single-turn, templated, broad in coverage
and ask for long outputs.  Labels carry the realized share, and every attack
event id is recorded for per-event ground truth.

Example:
    >>> HydraMixedReseller.Knobs(attack_share=0.1).attack_share
    0.1
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from distillguard.schema import RawEvent
from distillguard.simulate.identity import Account
from distillguard.simulate.personas.base import label_row, merge_by_ts, sample_params, user_msg
from distillguard.simulate.personas.reseller import Reseller, ResellerKnobs
from distillguard.simulate.phrasing import HARVEST_TEMPLATES
from distillguard.simulate.pools import harvest_pool
from distillguard.simulate.timing import paced_times


@dataclass
class HydraMixedResellerKnobs(ResellerKnobs):
    accounts: int = 2  # resellers the campaign routes through
    requests_per_day: float = 3000.0
    attack_share: float = 0.2  # share of each reseller account's traffic that is the campaign's
    attack_end_users: int = 4  # end_user ids the attacker uses at the reseller (0 = none set)
    template_count: int = 3
    jitter: float = 0.2


class HydraMixedReseller(Reseller):
    name = "hydra_mixed_reseller"
    is_attack = True
    hard_negative = False
    Knobs = HydraMixedResellerKnobs

    def make_accounts(self) -> list[Account]:
        accts = super().make_accounts()
        for a in accts:
            a.attack_users = [self.ids.end_user("cust") for _ in range(self.knobs.attack_end_users)]  # type: ignore[attr-defined]
        self.counts = {a.account_id: [0, 0] for a in accts}  # genuine, attack
        return accts

    def labels(self) -> list[dict]:
        out = []
        for a in self.accts:
            g, x = self.counts[a.account_id]
            share = x / (g + x) if g + x else self.knobs.attack_share
            out.append(label_row(a.account_id, self.name, self.campaign_id, True, False, attack_share=share))
        return out

    def account_events(self, acct: Account, seed: int) -> Iterator[RawEvent]:
        k: HydraMixedResellerKnobs = self.knobs
        rng, np_rng = random.Random(seed), np.random.default_rng(seed)
        genuine = self.genuine_times(np_rng)
        share = min(0.95, max(0.0, k.attack_share))
        t0, t1 = self.window()
        rate = len(genuine) * share / (1 - share) / max(1.0, t1 - t0)
        attack_ts = paced_times(np_rng, t0 + rng.uniform(0, 3600), t1, rate, k.jitter)
        counts = self.counts[acct.account_id]

        def genuine_stream() -> Iterator[RawEvent]:
            for ev in self.genuine_events(acct, random.Random(seed + 1), np_rng, genuine):
                counts[0] += 1
                yield ev

        return merge_by_ts((genuine_stream(), self._attack(acct, rng, attack_ts, counts)))

    def _attack(self, acct: Account, rng: random.Random, times: np.ndarray, counts: list) -> Iterator[RawEvent]:
        k: HydraMixedResellerKnobs = self.knobs
        data = harvest_pool(self.ctx.corpora, seed=rng.randrange(1 << 30))
        bank = list(HARVEST_TEMPLATES[1:])
        rng.shuffle(bank)
        templates = bank[: k.template_count] or ["{q}"]
        users = getattr(acct, "attack_users", []) or [None]
        params = sample_params(rng, "harvest")
        synth = self.ctx.synth
        for i, t in enumerate(times.tolist()):
            item = data[i % len(data)]
            text = templates[(i // len(data) + i) % len(templates)].replace("{q}", item.text)
            target = int(rng.lognormvariate(math.log(900), 0.5))
            reply = synth.reasoning_trace(rng, "en", item.answer, target) if item.capability == "math" else synth.reply(rng, target)
            ev = self.event(t, acct, [user_msg(text)], reply, model=self.ctx.models.flagship, ip=acct.ips[i % len(acct.ips)],
                            end_user=users[i % len(users)], **params)
            counts[1] += 1
            self.attack_event_ids.append(ev["event_id"])
            yield ev
