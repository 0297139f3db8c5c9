"""Shared machinery of harvesting campaigns: account farms, proxies, schedules, dataset partitioning.

Every attack persona is a :class:`CampaignPersona`: it says how one request
looks (:meth:`CampaignPersona.request`) and which dataset it works through
(:meth:`CampaignPersona.dataset`); this module decides which account sends it,
when, and from where, under the campaign's knobs.

How a farm is modelled (from provider disclosures):

* accounts are created in bursts shortly before the campaign (``creation_*``),
  sign-up emails follow a pattern, payment methods are shared in subgroups;
* traffic leaves through a proxy pool (rotating residential, sticky
  residential, or datacenter) and one client build (shared user agent);
* a dispatcher load-balances a dataset over the accounts (``round_robin``),
  keeping each account under its per-account limits, or accounts act on
  independent human-like schedules (``human``) to look like light users;
* in ``partitioned`` mode each account gets its own shard of the dataset, so no
  prompt is sent by two accounts of one campaign.

Example:
    >>> from distillguard.simulate.personas.hydra import Hydra          # doctest: +SKIP
    >>> Hydra(Hydra.Knobs(accounts=300, template_count=2), campaign_id="c1")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from distillguard.schema import RawEvent
from distillguard.simulate.corpora import PromptItem
from distillguard.simulate.identity import RESIDENTIAL_16, Account
from distillguard.simulate.personas.base import Knobs, Persona, pick, user_msg
from distillguard.simulate.phrasing import HARVEST_TEMPLATES
from distillguard.simulate.pools import harvest_pool
from distillguard.simulate.timing import DAY, hour_weights, paced_times, poisson_times


@dataclass
class CampaignKnobs(Knobs):
    accounts: int = 20
    requests_per_account_day: float = 30.0  # mean load per account (light-looking: tens a day)
    daily_cap: int | None = 200  # the provider's per-account daily limit the farm stays under
    rpm_cap: int = 10  # per-account requests/minute limit the farm stays under
    timing: str = "round_robin"  # round_robin | independent | human
    jitter: float = 0.15  # relative noise on dispatcher gaps (higher = less machine-like)
    operator_tz: float = 8.0  # the operators' timezone (used by 'human' timing)
    proxy: str = "residential_rotating"  # residential_rotating | residential_sticky | datacenter | none
    proxy_pool_size: int = 300
    proxy_countries: tuple[str, ...] = ("US", "GB", "DE", "CA", "JP", "SG", "BR", "IN")
    payment_group: int = 12  # accounts per shared payment fingerprint (1 = all distinct)
    shared_ua: bool = True  # one client build for the whole farm
    email_pattern: str = "numbered"  # numbered | random | human
    creation_waves: int = 3  # sign-up bursts
    creation_burst_hours: float = 6.0  # span of one burst
    created_days_before: float = 4.0  # how long before the campaign the farm was made (raise to age accounts)
    template_count: int = 3  # wrappers used (0 = raw prompts)
    partitioned: bool = True  # each account its own dataset shard
    model: str = "flagship"  # flagship | reasoning | mini
    system_prompt_share: float = 0.2  # requests with a generic system prompt


class CampaignPersona(Persona):
    """An attack persona run by a farm of accounts."""

    is_attack = True
    Knobs = CampaignKnobs

    # ------------------------------------------------------------ what subclasses provide
    def dataset(self) -> list[PromptItem]:
        """The prompts the campaign works through (default: a broad harvesting mix)."""
        return harvest_pool(self.ctx.corpora, seed=self.rng.randrange(1 << 30))

    def templates(self) -> list[str]:
        """The wrappers this campaign settled on."""
        k = self.knobs.template_count
        if k <= 0:
            return ["{q}"]
        bank = list(HARVEST_TEMPLATES[1:])
        self.rng.shuffle(bank)
        return bank[:k]

    def request(self, ts: float, acct: Account, item: PromptItem, round_: int) -> dict:
        """kwargs for :meth:`Persona.event` (messages, reply, parameters) for one prompt.

        ``round_`` counts how often this account has gone through its shard (0 the first time).
        """
        raise NotImplementedError

    # ------------------------------------------------------------ accounts
    def make_accounts(self) -> list[Account]:
        k: CampaignKnobs = self.knobs
        ids, rng = self.ids, self.rng
        t0, _ = self.window()
        self.proxy_pool = self._proxy_pool()
        farm_ua = ids.user_agent("sdk")
        waves = max(1, k.creation_waves)
        wave_starts = sorted(t0 - k.created_days_before * DAY * rng.uniform(0.3, 1.0) for _ in range(waves))
        payment = None
        accts = []
        for i in range(k.accounts):
            if k.payment_group <= 1 or i % k.payment_group == 0:
                payment = ids.payment_fingerprint() if rng.random() < 0.92 else None  # a few unpaid trial accounts
            country = pick(rng, k.proxy_countries)
            created = wave_starts[i * waves // max(1, k.accounts)] + rng.uniform(0, k.creation_burst_hours * 3600)
            if k.proxy == "residential_sticky":
                ips = [pick(rng, self.proxy_pool) for _ in range(3)]
            elif k.proxy == "none":
                ips = [self.proxy_pool[i % len(self.proxy_pool)]]
            else:
                ips = [pick(rng, self.proxy_pool)]
            accts.append(Account(
                account_id=ids.account_id(), api_key=ids.api_key(), country=country, tz=k.operator_tz,
                user_agent=farm_ua if k.shared_ua else ids.user_agent("sdk"), created_at=created,
                email=ids.bulk_email(k.email_pattern, i), payment_fingerprint=payment,
                verification_tier=rng.choices(("free", "tier1", "tier2"), weights=(30, 55, 15))[0], ips=ips,
            ))
        return accts

    def _proxy_pool(self) -> list[str]:
        k: CampaignKnobs = self.knobs
        ids = self.ids
        countries = [c for c in k.proxy_countries if c in RESIDENTIAL_16] or ["US"]
        if k.proxy in ("residential_rotating", "residential_sticky"):
            return ids.residential_proxy_pool(max(1, k.proxy_pool_size), countries)
        if k.proxy == "datacenter":
            return ids.datacenter_proxy_pool(max(1, k.proxy_pool_size), subnets=max(1, k.proxy_pool_size // 60))
        # no proxy: the operators' own servers in a couple of cloud /24s
        return [ids.datacenter_ip() for _ in range(max(1, min(4, k.accounts)))]

    def ip_for(self, acct: Account, ts: float) -> str:
        k: CampaignKnobs = self.knobs
        if k.proxy in ("residential_rotating", "datacenter"):
            return self.proxy_pool[self.rng.randrange(len(self.proxy_pool))]
        if k.proxy == "residential_sticky":
            # a sticky session keeps its exit for hours, then the provider rotates it
            return acct.ips[int(ts // (6 * 3600)) % len(acct.ips)]
        return acct.ips[0]

    def model_for(self, ts: float) -> str:
        m = self.ctx.models
        return {"flagship": m.flagship, "reasoning": m.reasoning, "mini": m.mini}.get(self.knobs.model, m.flagship)

    # ------------------------------------------------------------ schedule
    def schedule(self) -> tuple[np.ndarray, np.ndarray]:
        """(timestamps, account index) of every request, sorted by time, within per-account caps."""
        k: CampaignKnobs = self.knobs
        t0, t1 = self.window()
        n = max(1, len(self.accts))
        rate_day = k.requests_per_account_day * k.volume
        if k.timing == "round_robin":
            ts = paced_times(self.np_rng, t0 + self.rng.uniform(0, 600), t1, n * rate_day / DAY, k.jitter)
            # the balancer walks the accounts in an order it reshuffles every round
            rounds = int(math.ceil(len(ts) / n)) + 1
            order = np.concatenate([self.np_rng.permutation(n) for _ in range(rounds)])[: len(ts)]
            acct = order.astype(np.int64)
        else:
            prof = "flat" if k.timing == "independent" else "human"
            parts_t, parts_a = [], []
            days = (t1 - t0) / DAY
            for i in range(n):
                # individual accounts are more or less busy; a farm is not perfectly even
                load = rate_day * days * self.rng.lognormvariate(0, 0.35)
                tz = k.operator_tz + self.rng.uniform(-1.5, 1.5)
                w = hour_weights(t0, days, tz, prof)
                ti = poisson_times(self.np_rng, t0, w, load)
                ti = ti[ti < t1]
                parts_t.append(ti)
                parts_a.append(np.full(ti.size, i, dtype=np.int64))
            ts = np.concatenate(parts_t) if parts_t else np.empty(0)
            acct = np.concatenate(parts_a) if parts_a else np.empty(0, dtype=np.int64)
        return self._enforce_caps(ts, acct)

    def _enforce_caps(self, ts: np.ndarray, acct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Drop what would exceed a daily cap; space same-account requests by at least 60/rpm s."""
        k: CampaignKnobs = self.knobs
        order = np.lexsort((ts, acct))
        ts, acct = ts[order], acct[order]
        min_gap = 60.0 / max(1, k.rpm_cap)
        keep = np.ones(ts.size, dtype=bool)
        last_acct, last_t, day_key, day_count = -1, -1e18, None, 0
        ts = ts.copy()
        for j in range(ts.size):
            a = acct[j]
            if a != last_acct:
                last_acct, last_t, day_key, day_count = a, -1e18, None, 0
            t = max(ts[j], last_t + min_gap)
            d = int((t - self.ctx.start_ts) // DAY)
            if d != day_key:
                day_key, day_count = d, 0
            if (k.daily_cap is not None and day_count >= k.daily_cap) or t >= self.ctx.end_ts:
                keep[j] = False
                continue
            ts[j], last_t = t, t
            day_count += 1
        ts, acct = ts[keep], acct[keep]
        order = np.argsort(ts, kind="stable")
        return ts[order], acct[order]

    # ------------------------------------------------------------ events
    def events(self) -> Iterator[RawEvent]:
        k: CampaignKnobs = self.knobs
        data = self.dataset()
        if not data:
            return
        n = len(self.accts)
        ts_arr, acct_arr = self.schedule()
        if k.partitioned:
            size = max(1, len(data) // n)
            shards = [data[(i * size) % len(data): (i * size) % len(data) + size] or data[:1] for i in range(n)]
        sent = [0] * n
        for ts, a in zip(ts_arr.tolist(), acct_arr.tolist()):
            acct = self.accts[a]
            if k.partitioned:
                shard = shards[a]
                j = sent[a]
                item, round_ = shard[j % len(shard)], j // len(shard)
            else:
                item, round_ = data[self.rng.randrange(len(data))], 0
            sent[a] += 1
            kw = self.request(ts, acct, item, round_)
            kw.setdefault("ip", self.ip_for(acct, ts))
            kw.setdefault("model", self.model_for(ts))
            yield self.event(ts, acct, **kw)

    # ------------------------------------------------------------ shared request pieces
    def wrap(self, templates: list[str], item_text: str, round_: int, salt: int) -> str:
        """Apply a template; on later passes over a shard a different one, so text does not repeat verbatim."""
        t = templates[(salt + round_) % len(templates)]
        return t.replace("{q}", item_text)

    def harvest_messages(self, text: str) -> list[dict]:
        if self.rng.random() < self.knobs.system_prompt_share:
            return [{"role": "system", "content": "You are a helpful assistant."}, user_msg(text)]
        return [user_msg(text)]

    def long_reply(self, item: PromptItem, mean_tokens: float = 900) -> str:
        """A long, complete answer, as harvesters ask for (high max_tokens)."""
        target = int(self.rng.lognormvariate(math.log(mean_tokens), 0.5))
        synth = self.ctx.synth
        if item.capability == "math" and item.answer:
            return synth.reasoning_trace(self.rng, "en", item.answer, target)
        if item.answer and len(item.answer) > target * 2:
            return item.answer
        if item.answer and item.capability == "code":
            return item.answer + "\n\n" + synth.reply(self.rng, max(50, target - len(item.answer) // 4))
        return synth.reply(self.rng, target)


def acct_salt(acct: Account) -> int:
    """A stable small integer per account (which template it starts from)."""
    return int(acct.account_id[-4:], 16)
