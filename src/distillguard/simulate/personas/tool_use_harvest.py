"""Tool-use trace harvesting: agentic multi-step transcripts.

Each scheduled slot starts an agent episode: many tools declared, a task
(agent tasks and real coding/instruction prompts), then 2-7 rapid requests
where the model answers with tool calls, the harness feeds back tool results
and re-sends the growing transcript, until a long final answer.  The prize is
the teacher's tool-use behaviour.

Example:
    >>> ToolUseHarvest.Knobs().steps
    (2, 7)
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass

from distillguard.schema import RawEvent
from distillguard.simulate.corpora import PromptItem
from distillguard.simulate.identity import Account
from distillguard.simulate.personas.campaign import CampaignKnobs, CampaignPersona
from distillguard.simulate.phrasing import AGENT_TASKS, AGENT_THINGS, TOOL_NAMES
from distillguard.simulate.pools import harvest_pool

AGENT_SYSTEM = ("You are an autonomous agent. Use the provided tools to complete the user's task. Think step by step, call one tool at a time, "
                "and finish with a complete report of what you did.")


@dataclass
class ToolUseHarvestKnobs(CampaignKnobs):
    accounts: int = 12
    requests_per_account_day: float = 20.0  # episodes per account per day
    daily_cap: int | None = 300
    steps: tuple[int, int] = (2, 7)
    tools: tuple[int, int] = (5, 18)
    template_count: int = 0


class ToolUseHarvest(CampaignPersona):
    name = "tool_use_harvest"
    Knobs = ToolUseHarvestKnobs

    def dataset(self) -> list[PromptItem]:
        real = harvest_pool(self.ctx.corpora, {"code_alpaca": 2, "mbpp": 1, "arena_hard": 2, "self_instruct": 1, "sharegpt_harvest": 1}, seed=self.rng.randrange(1 << 30))
        synthetic = [PromptItem("agent", f"agent-{i}-{j}", "tool", t.replace("{thing}", th)) for i, t in enumerate(AGENT_TASKS) for j, th in enumerate(AGENT_THINGS)]
        out = real + synthetic * 3
        self.rng.shuffle(out)
        return out

    def make_accounts(self) -> list[Account]:
        accts = super().make_accounts()
        self.n_tools = self.rng.randint(*self.knobs.tools)
        self.tool_set = self.rng.sample(TOOL_NAMES, min(self.n_tools, len(TOOL_NAMES)))
        return accts

    def events(self) -> Iterator[RawEvent]:
        # an episode's steps run past the next slot's start, so reorder through a small heap
        heap: list = []
        seq = 0
        for first in super().events():
            while heap and heap[0][0] <= first["ts"]:
                yield heapq.heappop(heap)[2]
            for ev in self._episode(first):
                heapq.heappush(heap, (ev["ts"], seq, ev))
                seq += 1
        while heap:
            yield heapq.heappop(heap)[2]

    def request(self, ts, acct, item, round_):
        # the first step of an episode; the rest are made by _episode
        self._pending = (acct, item)
        messages = [{"role": "system", "content": AGENT_SYSTEM}, {"role": "user", "content": item.text}]
        return {"messages": messages, "reply": "", "tools_count": self.n_tools, "response_tool_calls": 1, "temperature": 0.2, "max_tokens": 8192, "stream": True}

    def _episode(self, first: RawEvent) -> list[RawEvent]:
        acct, item = self._pending
        rng, synth = self.rng, self.ctx.synth
        out = [first]
        messages = list(first["messages"])
        t = first["end_ts"]
        steps = rng.randint(*self.knobs.steps)
        for s in range(1, steps):
            tool = rng.choice(self.tool_set)
            call = json.dumps({"tool": tool, "arguments": {"query": item.text[:60]}})
            result = json.dumps({"status": "ok", "tool": tool, "result": synth.reply(rng, rng.randint(40, 400))[:1600]})
            messages = messages + [{"role": "assistant", "content": call}, {"role": "tool", "content": result}]
            t += rng.uniform(0.2, 2.5)  # harness executes the tool, then calls again at once
            last = s == steps - 1
            reply = synth.reply(rng, rng.randint(400, 1500)) if last else ""
            ev = self.event(t, acct, messages, reply, model=first["model"], ip=first["ip"], tools_count=self.n_tools,
                            response_tool_calls=None if last else rng.choice((1, 1, 2)), temperature=0.2, max_tokens=8192, stream=True)
            out.append(ev)
            t = ev["end_ts"]
        return out
