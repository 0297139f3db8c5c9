"""Genuine chat users replaying real multi-turn conversations.

Each account is one person with a home timezone, a daily rhythm and a client
whose settings rarely change.  They open a few sessions a day (fewer at night,
different on weekends), and in each session hold one or more real
conversations: every turn re-sends the earlier turns as history, after a think
time that depends on how much they read and type.  Sometimes they regenerate
an answer or edit their last message.  Busy-ness varies a lot between people
(lognormal), so some genuine users are heavy.

Example:
    >>> ChatUser.Knobs(accounts=50, sessions_per_day=1.5).accounts
    50
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from distillguard.schema import RawEvent
from distillguard.simulate.identity import Account
from distillguard.simulate.personas.base import Knobs, Persona, merge_by_ts, pick, sample_params
from distillguard.simulate.pools import chat_conversations
from distillguard.simulate.timing import DAY, hour_weights, poisson_times, think_time

EDITS = (" Please answer in more detail.", " Keep it short.", " Can you give an example?", " Explain it simply.", " In Python, please.",
         " Sorry, I meant the opposite.", " Use bullet points.", " Why?")
FRONTEND_SYSTEM = ("You are a helpful assistant.", "You are ChatBuddy, a helpful AI assistant. Answer in markdown.",
                   "You are a helpful, concise assistant. Current date: {date}.")


@dataclass
class ChatUserKnobs(Knobs):
    accounts: int = 100
    sessions_per_day: float = 1.2  # mean across people; each person scaled by a lognormal
    busyness_sigma: float = 0.8  # spread of how active individual people are
    conversations_per_session: float = 1.6
    regen_rate: float = 0.04
    edit_rate: float = 0.03
    abandon_rate: float = 0.15  # stop a conversation before its recorded end
    mobile_rate: float = 0.15  # sessions sent from a phone's carrier address instead of home
    profile_mix: tuple[str, ...] = ("human", "human", "evening", "business")
    ua_kinds: str = "any"


class ChatUser(Persona):
    """People chatting through an app or their own scripts, one account each."""

    name = "chat_user"
    Knobs = ChatUserKnobs

    def make_accounts(self) -> list[Account]:
        return [self.new_account(ua_kinds=self.knobs.ua_kinds) for _ in range(self.knobs.accounts)]

    def events(self) -> Iterator[RawEvent]:
        convs = chat_conversations(self.ctx.corpora)
        if not convs:
            return iter(())
        streams = [self._person(a, convs, self.rng.randrange(1 << 62)) for a in self.accts]
        return merge_by_ts(streams)

    def account_ip(self, acct: Account, ts: float) -> str:
        """Home address, which the ISP re-assigns now and then (per-week slots)."""
        week = int((ts - self.ctx.start_ts) // (7 * DAY))
        while len(acct.ips) <= week:
            acct.ips.append(self.ids.residential_ip(acct.country) if self.rng.random() < 0.3 else acct.ips[-1])
        return acct.ips[week]

    def _person(self, acct: Account, convs: list, seed: int) -> Iterator[RawEvent]:
        import random

        import numpy as np

        k: ChatUserKnobs = self.knobs
        rng = random.Random(seed)
        np_rng = np.random.default_rng(seed)
        t0, t1 = self.window()
        profile = pick(rng, k.profile_mix)
        busy = rng.lognormvariate(-k.busyness_sigma**2 / 2, k.busyness_sigma)
        starts = poisson_times(np_rng, t0, hour_weights(t0, (t1 - t0) / DAY, acct.tz, profile), k.sessions_per_day * k.volume * busy * (t1 - t0) / DAY)
        params = sample_params(rng, "chat")
        base_model, adopt = self.ctx.models.for_account(rng)
        system = pick(rng, FRONTEND_SYSTEM) if rng.random() < 0.35 else None
        mobile_ip = self.ids.residential_ip(acct.country)
        free_at = t0
        for s in starts.tolist():
            t = max(s, free_at + 60.0)
            if t >= t1:
                break
            ip = mobile_ip if rng.random() < k.mobile_rate else self.account_ip(acct, t)
            n_convs = 1 + int(rng.expovariate(1 / max(0.01, k.conversations_per_session - 1)))
            for _ in range(n_convs):
                conv = convs[rng.randrange(len(convs))]
                turns = conv.turns
                if len(turns) > 1 and rng.random() < k.abandon_rate:
                    turns = turns[: rng.randint(1, len(turns) - 1)]
                history: list[dict] = []
                if system:
                    history.append({"role": "system", "content": system.replace("{date}", "2025-03-0" + str(1 + int((t - self.ctx.start_ts) // DAY) % 9))})
                for ui, (user_text, reply) in enumerate(turns):
                    if t >= t1:
                        break
                    messages = history + [{"role": "user", "content": user_text}]
                    model = self.ctx.models.model_at(base_model, adopt, t)
                    ev = self.event(t, acct, messages, reply, model=model, ip=ip, reasoning=self.reasoning_for(model, 0), **params)
                    yield ev
                    t = ev["end_ts"]
                    if rng.random() < k.regen_rate:  # not happy: regenerate the same request
                        t += rng.uniform(3, 40)
                        ev = self.event(t, acct, messages, self.ctx.synth.reply(rng, max(20, len(reply) // 4)), model=model, ip=ip, **params)
                        yield ev
                        t = ev["end_ts"]
                    elif rng.random() < k.edit_rate:  # edit the question and resend
                        t += rng.uniform(8, 90)
                        edited = messages[:-1] + [{"role": "user", "content": user_text + pick(rng, EDITS)}]
                        ev = self.event(t, acct, edited, self.ctx.synth.reply(rng, max(20, len(reply) // 4)), model=model, ip=ip, **params)
                        yield ev
                        t = ev["end_ts"]
                    history = messages + [{"role": "assistant", "content": reply}]
                    if ui + 1 < len(turns):
                        t += think_time(rng, len(reply), len(turns[ui + 1][0]))
                t += rng.uniform(20, 600)  # starts a new chat
            free_at = t
        # a person who never shows up in the window simply yields nothing

