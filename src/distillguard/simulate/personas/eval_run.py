"""Evaluation runs: one pass over a benchmark, as an eval harness does it.

A lab or a developer evaluates a model: temperature 0, short answers,
few-shot prompts, a worker pool from a cloud machine, a burst of hours, then
silence.  Multiple-choice suites are scored from logprobs (``max_tokens`` 1,
``top_logprobs`` 5); code suites sample ``n`` > 1 for pass@k; judge suites use
the model as an LLM judge (MT-Bench style); and a fresh model release is
evaluated within a day.  A hard negative for benchmark-sweep, logprob,
multi-sample, rubric and release-pivot signals.

Example:
    >>> EvalRun.Knobs().runs
    2
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from distillguard.schema import RawEvent
from distillguard.simulate.identity import Account
from distillguard.simulate.personas.base import Knobs, Persona, mc_text, merge_by_ts
from distillguard.simulate.phrasing import EVAL_JUDGE_TEMPLATE
from distillguard.simulate.pools import by_source
from distillguard.simulate.timing import HOUR, closed_loop_times

SUITES = ("mmlu", "gsm8k", "humaneval", "math", "judge", "mbpp")


@dataclass
class EvalRunKnobs(Knobs):
    runs: int = 2  # passes in the window
    suites: tuple[str, ...] = SUITES
    max_items: int = 1500  # items per pass (a subset, as quick evals do)
    workers: int = 8
    eval_new_release: bool = True  # evaluate the new model within a day of its release


class EvalRun(Persona):
    name = "eval_run"
    hard_negative = True
    Knobs = EvalRunKnobs

    def make_accounts(self) -> list[Account]:
        subnet = self.ids.datacenter_subnet(self.rng.choice(("aws", "gcp", "azure")))
        return [self.new_account(ua_kinds="sdk", ips=[f"{subnet}.{self.rng.randrange(2, 254)}"], organization=self.ids.org_domain(),
                                 tier=self.rng.choice(("tier2", "tier3", "tier4")))]

    def events(self) -> Iterator[RawEvent]:
        k: EvalRunKnobs = self.knobs
        t0, t1 = self.window()
        m = self.ctx.models
        plans = []
        for _ in range(k.runs):
            start = self.rng.uniform(t0, max(t0, t1 - 6 * HOUR))
            plans.append((start, self.rng.choice((m.flagship, m.mini, m.reasoning)), self.rng.choice(k.suites)))
        if k.eval_new_release and t0 <= m.release_ts < t1:
            plans.append((m.release_ts + self.rng.uniform(1, 20) * HOUR, m.release, self.rng.choice(k.suites)))
        plans.sort()
        # runs may overlap in time; each is an ordered stream
        return merge_by_ts(self._run(start, model, suite) for start, model, suite in plans)

    def _run(self, start: float, model: str, suite: str) -> Iterator[RawEvent]:
        k: EvalRunKnobs = self.knobs
        rng, acct, synth = self.rng, self.accts[0], self.ctx.synth
        src = by_source(self.ctx.corpora)
        name = {"gsm8k": "gsm8k_test", "judge": "mtbench"}.get(suite, suite)
        items = list(src.get(name) or src.get("gsm8k_test") or next(iter(src.values())))
        if suite == "judge":
            items = items + list(src.get("vicuna", [])) + list(src.get("arena_hard", []))[:300]
        items = items[: k.max_items]
        shots = list(src.get("gsm8k_train", []))[:8]
        per_req = {"mmlu": 0.4, "humaneval": 4.0, "mbpp": 3.0}.get(suite, 3.0)
        ts = closed_loop_times(self.np_rng, start, self.ctx.end_ts, max(1, k.workers), per_req, sigma=0.4, limit=len(items))
        for t, item in zip(ts.tolist(), items):
            kw: dict = {"temperature": 0.0, "stream": False, "model": model}
            if suite == "mmlu":
                prompt = f"The following is a multiple choice question about {(item.app or 'general knowledge').replace('_', ' ')}.\n\n{mc_text(item)}\nAnswer:"
                reply = f" {item.answer or 'A'}"
                kw.update(max_tokens=1, logprobs=True, top_logprobs=5)
            elif suite == "gsm8k":
                few = "".join(f"Question: {s.text}\nAnswer: {s.answer}\n\n" for s in shots)
                prompt = few + f"Question: {item.text}\nAnswer:"
                reply = item.answer or synth.short_answer(rng, None)
                kw.update(max_tokens=512)
            elif suite in ("humaneval", "mbpp"):
                prompt = f"Complete the following Python function.\n\n{item.text}" if suite == "humaneval" else f"{item.text}\nYour code should pass these tests:\n{item.app or ''}"
                reply = item.answer or ""
                if rng.random() < 0.5:  # pass@k sampling
                    kw.update(n=rng.choice((5, 10)), temperature=0.8, top_p=0.95)
                kw.update(max_tokens=512)
            elif suite == "judge":
                answer = synth.reply(rng, int(rng.uniform(120, 500)))
                prompt = EVAL_JUDGE_TEMPLATE.replace("{q}", item.text).replace("{a}", answer)
                reply = synth.reply(rng, 60) + f"\n\nRating: [[{rng.randint(3, 10)}]]"
                kw.update(max_tokens=1024)
            else:  # math
                prompt = f"Problem:\n{item.text}\n\nSolution:"
                reply = item.answer or ""
                kw.update(max_tokens=1024)
            yield self.event(t, acct, [{"role": "user", "content": prompt}], reply, **kw)
