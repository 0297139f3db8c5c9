"""App backends: one product's server calling the API for its many end users.

One account per app, one system prompt, inputs from many end users (``end_user``
ids, Zipf-distributed activity), short real conversations, load following the
app's audience (office hours for a B2B tool, evenings for a tutoring app), from
a few server addresses in one cloud /24.  A support bot also declares tools.
A hard negative for volume, template (shared system prompt) and infrastructure
signals.

Example:
    >>> AppBackend.Knobs(app="tutor").requests_per_day
    800.0
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from distillguard.schema import RawEvent
from distillguard.simulate.identity import Account
from distillguard.simulate.personas.base import Knobs, Persona, pick
from distillguard.simulate.phrasing import APP_PROFILES
from distillguard.simulate.pools import by_source, chat_conversations
from distillguard.simulate.timing import DAY, hour_weights, poisson_times


@dataclass
class AppBackendKnobs(Knobs):
    app: str = "support"  # one of phrasing.APP_PROFILES names
    requests_per_day: float = 800.0
    end_users: int = 2000
    follow_up_rate: float = 0.35  # requests that continue an end user's conversation


class AppBackend(Persona):
    name = "app_backend"
    hard_negative = True
    Knobs = AppBackendKnobs

    def make_accounts(self) -> list[Account]:
        k: AppBackendKnobs = self.knobs
        self.app = next((a for a in APP_PROFILES if a["name"] == k.app), APP_PROFILES[0])
        subnet = self.ids.datacenter_subnet()
        servers = [f"{subnet}.{self.rng.randrange(2, 254)}" for _ in range(self.rng.randint(2, 6))]
        acct = self.new_account(ua_kinds="sdk", ips=servers, organization=self.ids.org_domain(), tier=self.rng.choice(("tier3", "tier4", "enterprise")))
        acct.tz = self.ids.tz_for(acct.country)
        self.end_user_ids = [self.ids.end_user("usr") for _ in range(max(1, k.end_users))]
        return [acct]

    def _inputs(self) -> list[tuple[str, str | None, tuple]]:
        """(first message, reference reply, later turns) the app's users send."""
        c = self.ctx.corpora
        src = by_source(c)
        kind = self.app["inputs"]
        if kind == "math":
            items = src.get("gsm8k_test", []) + src.get("svamp", []) + src.get("asdiv", []) + src.get("gsm8k_train", [])[:800]
        elif kind == "code":
            items = src.get("code_alpaca", []) + src.get("mbpp", []) + [p for p in src.get("arena_hard", []) if p.capability == "code"]
        elif kind == "writing":
            items = src.get("self_instruct", []) + src.get("self_instruct_seed", [])
        else:
            return [(cv.turns[0][0], cv.turns[0][1], cv.turns[1:]) for cv in chat_conversations(c)]
        return [(p.text, p.answer, ()) for p in items] or [(cv.turns[0][0], cv.turns[0][1], ()) for cv in chat_conversations(c)]

    def events(self) -> Iterator[RawEvent]:
        k: AppBackendKnobs = self.knobs
        acct = self.accts[0]
        rng = self.rng
        inputs = self._inputs()
        t0, t1 = self.window()
        ts = poisson_times(self.np_rng, t0, hour_weights(t0, (t1 - t0) / DAY, acct.tz, self.app["profile"]), k.requests_per_day * k.volume * (t1 - t0) / DAY)
        # Zipf-ish end-user activity: a few power users, a long tail
        weights = [1.0 / (i + 1) ** 0.9 for i in range(len(self.end_user_ids))]
        users = rng.choices(self.end_user_ids, weights=weights, k=len(ts))
        system = {"role": "system", "content": self.app["system"]}
        model = self.ctx.models.mini if rng.random() < 0.5 else self.ctx.models.flagship  # apps pin a model
        tools = self.app["tools"] or None
        open_convs: dict[str, list[dict]] = {}
        max_tokens = rng.choice((512, 800, 1024))
        temperature = rng.choice((0.3, 0.5, 0.7))
        for t, user in zip(ts.tolist(), users):
            hist = open_convs.get(user)
            if hist and rng.random() < k.follow_up_rate and len(hist) < 9:
                text = pick(rng, ("Thanks! And what about the second option?", "That didn't work, I still get the same error.", "Can you explain that more simply?",
                                  "ok", "Could you shorten it?", "What do you mean by that?", "Great, one more question: how do I undo it?"))
                messages = hist + [{"role": "user", "content": text}]
                ref = None
            else:
                first, ref, _later = inputs[rng.randrange(len(inputs))]
                messages = [system, {"role": "user", "content": first}]
            out = int(rng.lognormvariate(math.log(self.app["out_tokens"]), 0.5))
            reply = ref if ref and len(ref) < out * 8 else self.ctx.synth.reply(rng, out)
            calls = 1 if tools and rng.random() < 0.25 else None
            ev = self.event(t, acct, messages, "" if calls else reply, model=model, ip=pick(rng, acct.ips), end_user=user, max_tokens=max_tokens,
                            temperature=temperature, stream=self.app["profile"] != "business", tools_count=tools, response_tool_calls=calls)
            yield ev
            open_convs[user] = messages + [{"role": "assistant", "content": ev["completion_text"] or ""}]
            if len(open_convs) > 5000:  # bounded memory: forget the oldest conversations
                open_convs.pop(next(iter(open_convs)))
