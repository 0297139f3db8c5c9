"""Reasoning-trace coercion, in several languages.

Questions (math, code, reasoning, general instructions) are wrapped in
instructions to write out the model's internal reasoning step by step before
or after the answer; the campaign rotates a few paraphrases per language over a
language mix.  Replies are long numbered traces in the prompt's language.

Example:
    >>> ReasoningCoercion.Knobs().languages["zh"]
    0.3
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from distillguard.simulate.identity import Account
from distillguard.simulate.personas.base import sample_params, user_msg
from distillguard.simulate.personas.campaign import CampaignKnobs, CampaignPersona
from distillguard.simulate.phrasing import REASONING_COERCION
from distillguard.simulate.pools import harvest_pool


def _default_langs() -> dict[str, float]:
    return {"en": 0.3, "zh": 0.3, "es": 0.08, "ru": 0.08, "fr": 0.05, "de": 0.05, "ja": 0.05, "ko": 0.04, "pt": 0.03, "ar": 0.02}


@dataclass
class ReasoningCoercionKnobs(CampaignKnobs):
    accounts: int = 60
    requests_per_account_day: float = 25.0
    languages: dict[str, float] = field(default_factory=_default_langs)
    template_count: int = 2  # paraphrases used per language
    trace_tokens: float = 1600.0


#: Reasoning-heavy mix: math, code and hard prompts dominate.
REASONING_WEIGHTS = {"gsm8k_train": 3.0, "math": 2.0, "olympiadbench": 1.0, "college_math": 1.0, "code_alpaca": 1.5, "mbpp": 1.0,
                     "arena_hard": 2.0, "wizardlm": 0.5, "mmlu": 1.0, "sharegpt_harvest": 1.0, "self_instruct": 0.5}


class ReasoningCoercion(CampaignPersona):
    name = "reasoning_coercion"
    Knobs = ReasoningCoercionKnobs

    def dataset(self):
        return harvest_pool(self.ctx.corpora, REASONING_WEIGHTS, seed=self.rng.randrange(1 << 30))

    def make_accounts(self) -> list[Account]:
        accts = super().make_accounts()
        k: ReasoningCoercionKnobs = self.knobs
        langs = {lang: w for lang, w in k.languages.items() if lang in REASONING_COERCION and w > 0} or {"en": 1.0}
        self.langs, self.lang_w = list(langs), list(langs.values())
        n = max(1, k.template_count)
        self.tmpl = {lang: self.rng.sample(REASONING_COERCION[lang], min(n, len(REASONING_COERCION[lang]))) for lang in self.langs}
        # some sub-teams pin a language per account, others mix per request
        self.acct_lang = {a.account_id: (self.rng.choices(self.langs, self.lang_w)[0] if self.rng.random() < 0.6 else None) for a in accts}
        self.params = sample_params(self.rng, "harvest")
        return accts

    def request(self, ts, acct, item, round_):
        rng = self.rng
        lang = self.acct_lang[acct.account_id] or rng.choices(self.langs, self.lang_w)[0]
        tmpl = self.tmpl[lang][(round_ + rng.randrange(8)) % len(self.tmpl[lang])]
        text = tmpl.replace("{q}", item.text)
        target = int(rng.lognormvariate(math.log(self.knobs.trace_tokens), 0.4))
        final = self.ctx.synth.short_answer(rng, item.answer) if item.answer else None
        reply = self.ctx.synth.reasoning_trace(rng, lang, item.answer, target, final)
        return {"messages": [user_msg(text)], "reply": reply, **self.params}
