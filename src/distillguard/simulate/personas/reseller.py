"""Resellers and routers: one or a few accounts carrying many genuine end users.

A router resells API access: huge volume, 24/7 (its customers span timezones),
thousands of ``end_user`` ids, each with their own client settings and habits:
multi-turn chats, one-shot instructions, code and math questions.  Traffic
leaves from a few server addresses.  A hard negative for volume, 24/7, coverage
and diversity signals, and the cover that mixed hydra traffic hides in
(:mod:`.hydra_mixed_reseller`).

Example:
    >>> Reseller.Knobs().end_users
    3000
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from distillguard.schema import RawEvent
from distillguard.simulate.identity import Account
from distillguard.simulate.personas.base import Knobs, Persona, merge_by_ts, pick, sample_params
from distillguard.simulate.pools import by_source, chat_conversations
from distillguard.simulate.timing import DAY, hour_weights, poisson_times

#: Where a router's customers are (timezones, weight).
CUSTOMER_TZ = ((-6, 3.0), (-3, 1.0), (0, 1.5), (1, 2.0), (5.5, 1.5), (8, 2.0), (9, 1.0))


@dataclass
class ResellerKnobs(Knobs):
    accounts: int = 1
    requests_per_day: float = 4000.0  # per account
    end_users: int = 3000
    single_turn_share: float = 0.45  # customers' one-shot requests (instructions, code, math)


class Reseller(Persona):
    name = "reseller"
    hard_negative = True
    Knobs = ResellerKnobs

    def make_accounts(self) -> list[Account]:
        k: ResellerKnobs = self.knobs
        accts = []
        for _ in range(k.accounts):
            subnet = self.ids.datacenter_subnet()
            servers = [f"{subnet}.{self.rng.randrange(2, 254)}" for _ in range(self.rng.randint(2, 8))]
            a = self.new_account(ua_kinds="sdk", ips=servers, organization=self.ids.org_domain(), tier="enterprise")
            a.end_users = [self.ids.end_user("cust") for _ in range(max(1, k.end_users))]  # type: ignore[attr-defined]
            accts.append(a)
        return accts

    def events(self) -> Iterator[RawEvent]:
        return merge_by_ts(self.account_events(a, self.rng.randrange(1 << 62)) for a in self.accts)

    def genuine_times(self, np_rng: np.random.Generator) -> np.ndarray:
        k: ResellerKnobs = self.knobs
        t0, t1 = self.window()
        days = (t1 - t0) / DAY
        w = sum(wt * hour_weights(t0, days, tz, "consumer") for tz, wt in CUSTOMER_TZ)
        return poisson_times(np_rng, t0, w, k.requests_per_day * k.volume * days)

    def account_events(self, acct: Account, seed: int) -> Iterator[RawEvent]:
        rng, np_rng = random.Random(seed), np.random.default_rng(seed)
        yield from self.genuine_events(acct, rng, np_rng, self.genuine_times(np_rng))

    def genuine_events(self, acct: Account, rng: random.Random, np_rng: np.random.Generator, times: np.ndarray) -> Iterator[RawEvent]:
        k: ResellerKnobs = self.knobs
        convs = chat_conversations(self.ctx.corpora)
        src = by_source(self.ctx.corpora)
        one_shot = [p for s in ("self_instruct", "code_alpaca", "mbpp", "gsm8k_test", "arena_hard", "alpaca_eval", "wizardlm") for p in src.get(s, ())]
        users = acct.end_users  # type: ignore[attr-defined]
        weights = [1.0 / (i + 1) ** 1.05 for i in range(len(users))]
        picks = rng.choices(range(len(users)), weights=weights, k=len(times))
        state: dict[int, tuple] = {}  # end user -> (params, model, open conversation, next turn)
        m = self.ctx.models
        for t, u in zip(times.tolist(), picks):
            st = state.get(u)
            if st is None:
                st = [sample_params(rng, rng.choice(("chat", "sdk"))), rng.choice((m.flagship, m.mini, m.mini, m.reasoning)), None, 0]
                state[u] = st
            params, model, conv, turn = st
            if conv is not None and turn < len(conv.turns) and rng.random() < 0.8:
                history = [x for ut, at in conv.turns[:turn] for x in ({"role": "user", "content": ut}, {"role": "assistant", "content": at})]
                messages = history + [{"role": "user", "content": conv.turns[turn][0]}]
                reply = conv.turns[turn][1]
                st[3] = turn + 1
            elif one_shot and rng.random() < k.single_turn_share:
                item = one_shot[rng.randrange(len(one_shot))]
                messages = [{"role": "user", "content": item.text}]
                reply = item.answer if item.answer and len(item.answer) > 40 else self.ctx.synth.reply(rng, int(rng.lognormvariate(math.log(350), 0.7)))
            else:
                conv = convs[rng.randrange(len(convs))]
                st[2], st[3] = conv, 1
                messages = [{"role": "user", "content": conv.turns[0][0]}]
                reply = conv.turns[0][1]
            yield self.event(t, acct, messages, reply, model=model, ip=pick(rng, acct.ips), end_user=users[u], **params)
            if len(state) > 20000:
                state.pop(next(iter(state)))
