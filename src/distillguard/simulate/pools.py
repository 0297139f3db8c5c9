"""Prompt pools: which real text each kind of customer draws from.

Genuine chat comes from real conversations (OpenAssistant, HH-RLHF, half of
ShareGPT, LMSYS).  Harvesters draw from what distillers actually used:
instruction sets, the other half of ShareGPT, arena prompts, benchmarks and
their training splits, code and math sets.  Overlap is deliberate where reality
has it: OpenAssistant first turns are a popular instruction set, eval runs
sweep the same benchmarks, and real users ask math questions.

Pools are cached on the :class:`Corpora` object.

Example:
    >>> from distillguard.simulate.corpora import load_corpora
    >>> len(harvest_pool(load_corpora(sample=True))) > 1000
    True
"""

from __future__ import annotations

import random

from distillguard.simulate.corpora import Conversation, Corpora, PromptItem, split_key

CHAT_SOURCES = ("oasst", "hh", "sharegpt_chat", "lmsys")

#: Source -> weight in a broad harvesting mix (weights are per source, so a small
#: set is not drowned by a big one; coverage of capabilities is what matters).
HARVEST_WEIGHTS: dict[str, float] = {
    "sharegpt_harvest": 3.0, "arena_hard": 2.0, "alpaca_eval": 1.5, "self_instruct": 1.0, "self_instruct_seed": 0.6,
    "wizardlm": 0.6, "code_alpaca": 2.0, "mbpp": 1.0, "humaneval": 0.4, "gsm8k_train": 2.0, "math": 1.0,
    "olympiadbench": 0.5, "college_math": 0.6, "mmlu": 1.5, "vicuna": 0.3, "mtbench": 0.3, "oasst_first": 1.0, "hh_first": 0.5,
}

BENCHMARK_SOURCES: dict[str, tuple[str, ...]] = {
    "math": ("gsm8k_train", "gsm8k_test", "math", "minerva_math", "olympiadbench", "college_math", "aqua", "svamp", "asdiv", "amc23", "aime24"),
    "code": ("humaneval", "mbpp", "code_alpaca"),
    "knowledge": ("mmlu",),
}


def first_turns(convs: list[Conversation], source: str) -> list[PromptItem]:
    return [PromptItem(source, c.cid, "chat", c.turns[0][0], c.turns[0][1]) for c in convs]


def _cached(c: Corpora, key: str, build):
    cache = c.__dict__.setdefault("_pool_cache", {})
    if key not in cache:
        cache[key] = build()
    return cache[key]


def chat_conversations(c: Corpora) -> list[Conversation]:
    """Real conversations genuine chat users replay."""
    return _cached(c, "chat", lambda: c.convs(*CHAT_SOURCES))


def by_source(c: Corpora) -> dict[str, list[PromptItem]]:
    """Every prompt source, including first turns of conversation sets that harvesters also use."""

    def build():
        d = {k: v for k, v in c.prompts.items() if v}
        if c.conversations.get("sharegpt_harvest"):
            d["sharegpt_harvest"] = first_turns(c.conversations["sharegpt_harvest"], "sharegpt_harvest")
        # a share of public conversation sets doubles as instruction data (as OASST does in practice)
        if c.conversations.get("oasst"):
            d["oasst_first"] = first_turns([x for x in c.conversations["oasst"] if split_key(x.cid, "harvest") < 0.5], "oasst_first")
        if c.conversations.get("hh"):
            d["hh_first"] = first_turns([x for x in c.conversations["hh"] if split_key(x.cid, "harvest") < 0.3], "hh_first")
        return d

    return _cached(c, "by_source", build)


def harvest_pool(c: Corpora, weights: dict[str, float] | None = None, size: int | None = None, seed: int = 0) -> list[PromptItem]:
    """A broad, shuffled harvesting dataset: sources mixed by weight, each item at most once.

    ``size`` caps the dataset (default: as many as the weights allow without repeats).
    """
    weights = weights or HARVEST_WEIGHTS
    src = by_source(c)
    avail = {k: w for k, w in weights.items() if w > 0 and src.get(k)}
    if not avail:
        raise ValueError("no prompt source available for this pool")
    rng = random.Random(seed)
    total_w = sum(avail.values())
    # take from each source in proportion to its weight, limited by what it has
    cap = size or sum(len(src[k]) for k in avail)
    out: list[PromptItem] = []
    for k, w in sorted(avail.items()):
        items = list(src[k])
        rng.shuffle(items)
        out.extend(items[: max(1, min(len(items), int(cap * w / total_w)))])
    out = _dedupe(out)  # a harvester dedupes its dataset: identical texts recur across public sets
    rng.shuffle(out)
    return out[:cap] if size else out


def _dedupe(items: list[PromptItem]) -> list[PromptItem]:
    seen: set[str] = set()
    out = []
    for p in sorted(items, key=lambda p: (p.source, p.pid)):
        key = p.text.strip()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def benchmark_pool(c: Corpora, capabilities: tuple[str, ...] = ("math", "code", "knowledge"), seed: int = 0) -> list[PromptItem]:
    """Benchmark and training-set items (with reference answers) for the given capabilities."""
    src = by_source(c)
    out = _dedupe([p for cap in capabilities for s in BENCHMARK_SOURCES[cap] for p in src.get(s, ())])
    random.Random(seed).shuffle(out)
    return out
