"""Rubric grading: the model used as a free reward model.

Prompts embed a candidate response (real answers from public sets, or earlier
harvested outputs) and ask for a 1-10 score against a rubric, a pairwise A/B
preference, or a 0-1 reward, in a few languages.  Replies are short scores
with a justification; volume is high because every candidate gets graded.

Example:
    >>> RubricGrading.Knobs().template_count
    3
"""

from __future__ import annotations

from dataclasses import dataclass

from distillguard.simulate.identity import Account
from distillguard.simulate.personas.base import user_msg
from distillguard.simulate.personas.campaign import CampaignKnobs, CampaignPersona
from distillguard.simulate.phrasing import RUBRIC_TEMPLATES, RUBRICS
from distillguard.simulate.pools import harvest_pool

GRADED_SOURCES = {"alpaca_eval": 2.0, "self_instruct": 1.0, "gsm8k_train": 1.5, "oasst_first": 1.5, "hh_first": 0.5, "code_alpaca": 1.0,
                  "sharegpt_harvest": 2.0, "math": 0.5, "mbpp": 0.5}


@dataclass
class RubricGradingKnobs(CampaignKnobs):
    accounts: int = 10
    requests_per_account_day: float = 80.0
    daily_cap: int | None = 300
    template_count: int = 3


class RubricGrading(CampaignPersona):
    name = "rubric_grading"
    Knobs = RubricGradingKnobs

    def dataset(self):
        return harvest_pool(self.ctx.corpora, GRADED_SOURCES, seed=self.rng.randrange(1 << 30))

    def make_accounts(self) -> list[Account]:
        accts = super().make_accounts()
        n = max(1, self.knobs.template_count)
        self.tmpl = self.rng.sample(RUBRIC_TEMPLATES, min(n, len(RUBRIC_TEMPLATES)))
        self.rubrics = self.rng.sample(RUBRICS, 2)
        return accts

    def request(self, ts, acct, item, round_):
        rng, synth = self.rng, self.ctx.synth
        cand = item.answer if item.answer and rng.random() < 0.6 else synth.reply(rng, rng.randint(100, 600))
        other = synth.reply(rng, rng.randint(100, 600))
        tmpl = self.tmpl[(round_ + rng.randrange(4)) % len(self.tmpl)]
        text = tmpl.replace("{r}", rng.choice(self.rubrics)).replace("{q}", item.text).replace("{a}", cand).replace("{b}", other)
        score = rng.randint(2, 10)
        if '"score"' in tmpl:
            reply = '{"score": %d, "reason": "%s"}' % (score, synth.reply(rng, 40).replace('"', "'").replace("\n", " ")[:240])
        elif "reward model" in tmpl:
            reply = f"{score / 10:.2f}"
        elif "[Response A]" in tmpl:
            reply = rng.choice(("A", "B")) + "\n\n" + synth.reply(rng, rng.randint(60, 200))
        else:
            reply = f"Score: {score}/10\n\n" + synth.reply(rng, rng.randint(60, 250))
        return {"messages": [user_msg(text)], "reply": reply, "temperature": 0.0, "max_tokens": rng.choice((256, 512, 1024)), "stream": False}
