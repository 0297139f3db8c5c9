"""Heavy legitimate batch pipelines: one narrow task over the customer's own documents.

Cron-started jobs (on the hour, 24/7) push a backlog of documents through a
fixed worker pool: closed-loop machine timing, high volume, long inputs and
short structured outputs, one system prompt, temperature 0 and often a pinned
seed.  A hard negative for volume, regularity, 24/7 and template signals.

Example:
    >>> BatchPipeline.Knobs().workers
    6
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from distillguard.schema import RawEvent
from distillguard.simulate.identity import Account
from distillguard.simulate.personas.base import Knobs, Persona
from distillguard.simulate.phrasing import BATCH_TASKS
from distillguard.simulate.timing import DAY, HOUR, closed_loop_times, hour_weights


@dataclass
class BatchPipelineKnobs(Knobs):
    requests_per_day: float = 1500.0
    workers: int = 6
    task: int | None = None  # index into phrasing.BATCH_TASKS (None: pick one)
    job_every_hours: float = 1.0  # cron cadence
    doc_paragraphs: tuple[int, int] = (1, 4)  # document length in bank texts


class BatchPipeline(Persona):
    name = "batch_pipeline"
    hard_negative = True
    Knobs = BatchPipelineKnobs

    def make_accounts(self) -> list[Account]:
        k: BatchPipelineKnobs = self.knobs
        self.task = BATCH_TASKS[k.task % len(BATCH_TASKS)] if k.task is not None else self.rng.choice(BATCH_TASKS)
        ip = self.ids.datacenter_ip()
        return [self.new_account(ua_kinds="sdk", ips=[ip], organization=self.ids.org_domain(), tier=self.rng.choice(("tier4", "enterprise")))]

    def events(self) -> Iterator[RawEvent]:
        k: BatchPipelineKnobs = self.knobs
        acct, rng, synth = self.accts[0], self.rng, self.ctx.synth
        t0, t1 = self.window()
        period = k.job_every_hours * HOUR
        n_jobs = int((t1 - t0) / period)
        # backlog per job follows when documents arrive (office hours), jobs run around the clock
        w = hour_weights(t0, (t1 - t0) / DAY, acct.tz, "business") + 0.15
        per_job = k.requests_per_day * k.volume * k.job_every_hours / 24.0
        offset = rng.uniform(0, 300)
        sys_msg = {"role": "system", "content": self.task["system"]}
        model = self.ctx.models.mini if rng.random() < 0.6 else self.ctx.models.flagship
        seed = rng.choice((None, 42, 1234, 7))
        max_tokens = max(16, self.task["out_tokens"] * 3)
        bank = synth.bank
        for j in range(n_jobs):
            start = t0 + j * period + offset  # cron fires at the same minute every hour
            hour_idx = min(len(w) - 1, int((start - t0) // HOUR))
            n = int(self.np_rng.poisson(per_job * w[hour_idx] / w.mean()))
            if n == 0:
                continue
            per_req = 0.5 + self.task["out_tokens"] / 70.0
            ts = closed_loop_times(self.np_rng, start, min(t1, start + period * 0.95), k.workers, per_req, sigma=0.35, limit=n)
            for t in ts.tolist():
                doc = "\n\n".join(bank[rng.randrange(len(bank))] for _ in range(rng.randint(*k.doc_paragraphs)))
                messages = [sys_msg, {"role": "user", "content": self.task["user"].replace("{doc}", doc)}]
                out = max(1, int(rng.lognormvariate(math.log(self.task["out_tokens"]), 0.3)))
                reply = synth.reply(rng, out) if out > 30 else rng.choice(('{"category": "billing", "confidence": 0.92}', "safe", "bug", "spam", '{"category": "other", "confidence": 0.61}'))
                yield self.event(t, acct, messages, reply, model=model, max_tokens=max_tokens, temperature=0.0, seed=seed, stream=False, tokens_per_s=90)

