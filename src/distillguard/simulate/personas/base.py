"""The persona contract and the shared machinery every persona uses.

A persona is one kind of API customer (a chat user, a batch pipeline, a hydra
campaign...).  It is built with a knobs dataclass, bound to a
:class:`SimContext` (time window, corpora, seeded RNGs, model catalogue), and
then yields:

* ``accounts()`` - RawAccount rows for its accounts,
* ``labels()`` - one ground-truth row per account,
* ``events()`` - RawEvent dicts in timestamp order.

:class:`Persona.event` turns (time, account, messages, reply, parameters) into
a complete RawEvent with token counts, latency and ids, so personas only decide
*what* is sent and *when*.

Example:
    >>> from distillguard.simulate.personas.chat_user import ChatUser   # doctest: +SKIP
    >>> p = ChatUser(ChatUser.Knobs(accounts=3), key="chat")             # doctest: +SKIP
    >>> p.bind(ctx); next(iter(p.events()))["account_id"]                # doctest: +SKIP
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import xxhash

from distillguard.schema import RawAccount, RawEvent
from distillguard.simulate.corpora import Corpora, PromptItem
from distillguard.simulate.identity import Account, Identities
from distillguard.simulate.responses import ReplySynth, cut_to_tokens, est_tokens, prompt_tokens
from distillguard.simulate.timing import DAY, generation_latency


@dataclass
class ModelCatalog:
    """The provider's models, and one release that happens during the scenario.

    Genuine accounts adopt the release gradually (days, some never); a pivoting
    campaign switches within hours.
    """

    flagship: str = "atlas-1-pro"
    mini: str = "atlas-1-mini"
    reasoning: str = "atlas-1-reason"
    release: str = "atlas-2-pro"
    release_ts: float = math.inf

    def for_account(self, rng: random.Random) -> tuple[str, float]:
        """A genuine account's usual model and when (if ever) it moves to the release."""
        base = rng.choices((self.flagship, self.mini, self.reasoning), weights=(55, 35, 10))[0]
        adopt = math.inf
        if base != self.mini and rng.random() < 0.6:
            adopt = self.release_ts + rng.expovariate(1 / (3 * DAY))
        return base, adopt

    def model_at(self, base: str, adopt_ts: float, ts: float) -> str:
        return self.release if ts >= adopt_ts else base


@dataclass
class SimContext:
    """Everything a persona needs from its scenario."""

    start_ts: float
    days: float
    seed: int
    stream: str  # seed stream name: different scenarios draw different randomness
    corpora: Corpora
    synth: ReplySynth
    models: ModelCatalog = field(default_factory=ModelCatalog)

    @property
    def end_ts(self) -> float:
        return self.start_ts + self.days * DAY

    def rng_seed(self, key: str) -> int:
        return xxhash.xxh64_intdigest(f"{self.stream}:{self.seed}:{key}".encode())

    def rngs(self, key: str) -> tuple[random.Random, np.random.Generator]:
        s = self.rng_seed(key)
        return random.Random(s), np.random.default_rng(s)


@dataclass
class Knobs:
    """Knobs every persona has.  Personas subclass this with their own fields."""

    accounts: int = 1
    volume: float = 1.0  # multiplier on the persona's typical request rate
    start_day: float = 0.0  # when the persona starts, days after scenario start
    duration_days: float | None = None  # None: until the scenario ends
    fail_rate: float = 0.005  # share of requests that fail (timeouts, 5xx, 429)

    def replace(self, **kw: Any) -> "Knobs":
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(kw)
        return type(self)(**d)


def label_row(account_id: str, persona: str, campaign_id: str | None, is_attack: bool, hard_negative: bool, attack_share: float | None = None) -> dict:
    row = {"account_id": account_id, "persona": persona, "campaign_id": campaign_id, "is_attack": is_attack, "hard_negative": hard_negative}
    if attack_share is not None:
        row["attack_share"] = round(attack_share, 4)
    return row


class Persona:
    """Base class: knobs in, accounts + labels + timestamp-ordered events out."""

    name: ClassVar[str] = "persona"
    is_attack: ClassVar[bool] = False
    hard_negative: ClassVar[bool] = False
    Knobs: ClassVar[type] = Knobs

    def __init__(self, knobs: Knobs | None = None, *, key: str | None = None, campaign_id: str | None = None):
        self.knobs = knobs if knobs is not None else type(self).Knobs()
        self.key = key or self.name
        self.campaign_id = campaign_id
        self.accts: list[Account] = []
        #: event ids that belong to an attack inside an otherwise genuine account (mixed resellers)
        self.attack_event_ids: list[str] = []

    # ------------------------------------------------------------ lifecycle
    def bind(self, ctx: SimContext) -> "Persona":
        """Attach to a scenario and create the accounts (deterministic from the scenario seed)."""
        self.ctx = ctx
        self.rng, self.np_rng = ctx.rngs(self.key)
        self.ids = Identities(random.Random(ctx.rng_seed(self.key + ":identity")))
        self._eid_rng = random.Random(ctx.rng_seed(self.key + ":event-ids"))
        self.accts = self.make_accounts()
        return self

    def make_accounts(self) -> list[Account]:
        raise NotImplementedError

    def events(self) -> Iterator[RawEvent]:
        raise NotImplementedError

    def accounts(self) -> list[RawAccount]:
        return [a.raw() for a in self.accts]

    def labels(self) -> list[dict]:
        return [label_row(a.account_id, self.name, self.campaign_id, self.is_attack, self.hard_negative) for a in self.accts]

    # ------------------------------------------------------------ helpers
    def window(self) -> tuple[float, float]:
        """This persona's active time window, clipped to the scenario."""
        k = self.knobs
        t0 = self.ctx.start_ts + max(0.0, k.start_day) * DAY
        t1 = self.ctx.end_ts if k.duration_days is None else min(self.ctx.end_ts, t0 + k.duration_days * DAY)
        return t0, max(t0, t1)

    def event_id(self) -> str:
        return f"chatcmpl-{self._eid_rng.getrandbits(96):024x}"

    def new_account(self, *, country: str | None = None, created_at: float | None = None, ua: str | None = None, ua_kinds: str = "any",
                    email: str | None = None, payment: str | None = "new", tier: str | None = None, organization: str | None = None,
                    ips: list[str] | None = None, tz: float | None = None) -> Account:
        """An account with sensible defaults for a genuine customer; callers override what differs."""
        ids = self.ids
        country = country or ids.benign_country()
        return Account(
            account_id=ids.account_id(),
            api_key=ids.api_key(),
            country=country,
            tz=ids.tz_for(country) if tz is None else tz,
            user_agent=ua or ids.user_agent(ua_kinds),
            created_at=created_at if created_at is not None else ids.created_at(self.ctx.start_ts),
            email=email or ids.person_email(),
            payment_fingerprint=ids.payment_fingerprint() if payment == "new" else payment,
            verification_tier=tier or self.rng.choices(("free", "tier1", "tier2", "tier3", "tier4"), weights=(20, 35, 25, 12, 8))[0],
            organization=organization,
            ips=ips if ips is not None else [ids.residential_ip(country)],
        )

    def event(
        self,
        ts: float,
        acct: Account,
        messages: list[dict],
        reply: str | None,
        *,
        model: str,
        ip: str | None = None,
        end_user: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        n: int | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        seed: int | None = None,
        stream: bool | None = None,
        tools_count: int | None = None,
        response_tool_calls: int | None = None,
        reasoning: str | None = None,
        reasoning_effort: str | None = None,
        tokens_per_s: float = 70.0,
        user_agent: str | None = None,
        org_id: str | None = None,
        fail: bool | None = None,
    ) -> RawEvent:
        """A complete RawEvent: token counts from the text, reply cut to ``max_tokens``, latency from length."""
        rng = self.rng
        if fail is None:
            fail = rng.random() < self.knobs.fail_rate
        p_tok = prompt_tokens(messages)
        if tools_count:
            p_tok += 60 * tools_count  # tool schemas are billed as prompt
        if fail:
            reply, reasoning, c_tok, r_tok = None, None, 0, None
            ttft, latency = None, rng.uniform(0.05, 30.0)
            response_tool_calls = None
        else:
            r_tok = None
            if reasoning is not None:
                # max_tokens bounds reasoning + answer together (as max_completion_tokens does)
                reasoning, _ = cut_to_tokens(reasoning, int(max_tokens * 0.8) if max_tokens else None)
                r_tok = est_tokens(reasoning)
            if reply is not None:
                budget = max_tokens - (r_tok or 0) if max_tokens else None
                reply, _ = cut_to_tokens(reply, max(1, budget) if budget is not None else None)
            one = est_tokens(reply) + (r_tok or 0) + (12 * response_tool_calls if response_tool_calls else 0)
            one = max(1, one)
            # usage counts every choice; the other n-1 samples are about as long as the first
            c_tok = one if not n or n <= 1 else int(one * n * rng.uniform(0.85, 1.1))
            ttft, latency = generation_latency(rng, one, tokens_per_s)
        ev: RawEvent = {
            "event_id": self.event_id(),
            "ts": round(ts, 3),
            "end_ts": round(ts + latency, 3),
            "first_token_ts": round(ts + ttft, 3) if (stream and ttft is not None) else None,
            "account_id": acct.account_id,
            "api_key": acct.api_key,
            "end_user": end_user,
            "org_id": org_id,
            "ip": ip or acct.ips[0],
            "user_agent": user_agent or acct.user_agent,
            "model": model,
            "status": "failure" if fail else "success",
            "messages": messages,
            "completion_text": reply,
            "reasoning_text": reasoning,
            "prompt_tokens": p_tok,
            "completion_tokens": c_tok,
            "reasoning_tokens": r_tok,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "n": n,
            "logprobs": logprobs,
            "top_logprobs": top_logprobs,
            "seed": seed,
            "reasoning_effort": reasoning_effort,
            "stream": stream,
            "tools_count": tools_count,
            "response_tool_calls": response_tool_calls,
        }
        return ev

    def reasoning_for(self, model: str, prompt_len_tokens: int, effort: str | None = None) -> str | None:
        """Reasoning text a reasoning model returns (summarized thinking), else None."""
        if model != self.ctx.models.reasoning:
            return None
        toks = int(self.rng.lognormvariate(math.log(350 if effort != "high" else 900), 0.6))
        return self.ctx.synth.reasoning_trace(self.rng, "en", None, toks)


def merge_by_ts(streams: Iterable[Iterator[RawEvent]]) -> Iterator[RawEvent]:
    """k-way merge of timestamp-ordered event streams (bounded memory)."""
    return heapq.merge(*streams, key=lambda e: e["ts"])


def sample_params(rng: random.Random, style: str) -> dict[str, Any]:
    """Sampling parameters as a kind of client typically sends them.

    ``style``: 'chat' (front-ends: often stream, default temperature), 'sdk' (scripts: mostly defaults),
    'harvest' (long max_tokens, temperature set), 'eval' (temperature 0, short max_tokens).
    """
    if style == "chat":
        return {
            "stream": rng.random() < 0.75,
            "temperature": rng.choice((None, None, 0.7, 1.0, 0.5)),
            "max_tokens": rng.choice((None, None, 1024, 2048, 4096)),
            "top_p": rng.choice((None, None, None, 1.0, 0.95)),
        }
    if style == "sdk":
        return {
            "stream": rng.random() < 0.2,
            "temperature": rng.choice((None, 0.0, 0.2, 0.3, 0.7, 1.0)),
            "max_tokens": rng.choice((None, 256, 512, 1000, 1024, 2048)),
            "top_p": None,
        }
    if style == "harvest":
        return {
            "stream": rng.random() < 0.1,
            "temperature": rng.choice((0.7, 0.8, 1.0, 0.6, None)),
            "max_tokens": rng.choice((4096, 8192, 4000, 16384, 8000, 2048)),
            "top_p": rng.choice((None, None, 0.95, 1.0)),
        }
    if style == "eval":
        return {"stream": False, "temperature": 0.0, "max_tokens": rng.choice((16, 32, 256, 512)), "top_p": None}
    raise ValueError(style)


def pick(rng: random.Random, seq: list | tuple) -> Any:
    return seq[rng.randrange(len(seq))]


def user_msg(text: str) -> dict:
    return {"role": "user", "content": text}


def mc_text(item: PromptItem) -> str:
    """A multiple-choice item as one prompt block."""
    if not item.choices:
        return item.text
    return item.text + "\n" + "\n".join(f"{'ABCD'[i]}. {c}" for i, c in enumerate(item.choices))
