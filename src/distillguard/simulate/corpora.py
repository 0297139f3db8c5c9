"""Real public text the simulator composes traffic from.

Two sources, one shape.  :func:`load_corpora` parses the raw files under
``/work/shared/corpora`` (or a user-given directory) into normalized records;
when that directory is absent it reads the small bundled sample in
``distillguard/data/sample`` instead, which was built from the very same
parsers (:func:`distillguard.data.sample.build.build_sample`), so both paths
yield a :class:`Corpora` with the same fields.

Records:

* :class:`Conversation` - a real multi-turn chat (user turn, assistant turn)
  pairs: OpenAssistant threads, HH-RLHF dialogues, ShareGPT, LMSYS.
* :class:`PromptItem` - one prompt with its reference answer when the source has
  one: benchmark questions, instruction sets, real arena prompts.

Example:
    >>> c = load_corpora()                      # full corpora, else the sample
    >>> c.conversations["oasst"][0].turns[0][0]  # doctest: +SKIP
    'What do you think about ChatGPT?'
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import xxhash

from distillguard.corpusio import read_jsonl as _jsonl

#: Where the shared corpora live unless the caller says otherwise.
DEFAULT_CORPORA = Path(os.environ.get("DISTILLGUARD_CORPORA", "/work/shared/corpora"))
#: The bundled, permissively licensed sample (see its ATTRIBUTION.md).
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "sample"


class Conversation(NamedTuple):
    source: str
    cid: str
    turns: tuple[tuple[str, str], ...]  # (user text, assistant reply) in order


class PromptItem(NamedTuple):
    source: str
    pid: str
    capability: str  # code | math | knowledge | reasoning | writing | chat | other
    text: str
    answer: str | None = None  # reference solution / output, when the source has one
    choices: tuple[str, ...] | None = None  # multiple-choice options (MMLU)
    follow_ups: tuple[str, ...] = ()  # scripted later turns (MT-Bench)
    app: str | None = None  # the app an instruction was written for (Self-Instruct)


@dataclass
class Corpora:
    """Parsed corpora: conversations and prompts keyed by source name."""

    origin: str  # directory read, or "bundled-sample"
    conversations: dict[str, list[Conversation]] = field(default_factory=dict)
    prompts: dict[str, list[PromptItem]] = field(default_factory=dict)

    def convs(self, *sources: str) -> list[Conversation]:
        """Conversations from the named sources that are present (missing ones are skipped)."""
        return [c for s in sources for c in self.conversations.get(s, ())]

    def items(self, *sources: str) -> list[PromptItem]:
        """Prompt items from the named sources that are present (missing ones are skipped)."""
        return [p for s in sources for p in self.prompts.get(s, ())]

    def answer_bank(self) -> list[str]:
        """Real assistant-written texts, used to synthesize replies of a given length."""
        out = [a for c in self.convs("oasst", "hh", "sharegpt_chat", "sharegpt_harvest", "lmsys") for _, a in c.turns if len(a) > 200]
        out += [p.answer for p in self.items("alpaca_eval", "self_instruct") if p.answer and len(p.answer) > 200]
        return out

    def counts(self) -> dict[str, int]:
        return {**{k: len(v) for k, v in self.conversations.items()}, **{k: len(v) for k, v in self.prompts.items()}}


def split_key(ident: str, salt: str = "") -> float:
    """A stable uniform number in [0, 1) for an id: deterministic pool splits without an RNG."""
    return xxhash.xxh64_intdigest((salt + ident).encode()) / 2.0**64


# ---------------------------------------------------------------- raw parsers


def _oasst(path: Path) -> list[Conversation]:
    """Linear threads of OpenAssistant trees: follow the best-ranked reply at each step."""
    msgs = list(_jsonl(path))
    children: dict[str | None, list[dict]] = {}
    for m in msgs:
        if not m.get("deleted"):
            children.setdefault(m.get("parent_id"), []).append(m)

    def rank(m: dict) -> float:
        return m["rank"] if m.get("rank") is not None else 99

    out = []
    for root in children.get(None, []):
        if root.get("role") != "prompter":
            continue
        # one thread per first assistant reply, so a tree gives a few real variants
        for first_reply in sorted(children.get(root["message_id"], []), key=rank)[:2]:
            turns, user, node = [], root, first_reply
            while node is not None:
                turns.append((user["text"], node["text"]))
                nxt_users = sorted(children.get(node["message_id"], []), key=lambda m: m["created_date"])
                if not nxt_users:
                    break
                user = nxt_users[0]
                replies = sorted(children.get(user["message_id"], []), key=rank)
                node = replies[0] if replies else None
            out.append(Conversation("oasst", first_reply["message_id"], tuple(turns)))
    return out


def _hh(path: Path) -> list[Conversation]:
    out = []
    for i, r in enumerate(_jsonl(path)):
        parts = r["chosen"].split("\n\nHuman: ")
        turns = []
        for p in parts[1:]:
            if "\n\nAssistant: " not in p:
                continue
            u, a = p.split("\n\nAssistant: ", 1)
            if u.strip() and a.strip():
                turns.append((u.strip(), a.strip()))
        if turns:
            out.append(Conversation("hh", f"hh-{i}", tuple(turns)))
    return out


def _sharegpt(path: Path) -> Iterator[Conversation]:
    for r in _jsonl(path):
        turns, conv = [], r.get("conversations") or []
        for u, a in zip(conv[0::2], conv[1::2]):
            if u.get("from") != "human" or a.get("from") != "gpt" or not u.get("value") or not a.get("value"):
                break
            turns.append((u["value"], a["value"]))
        if turns:
            yield Conversation("sharegpt", r["id"], tuple(turns))


def _lmsys(path: Path) -> list[Conversation]:
    out = []
    for r in _jsonl(path):
        conv = r["conversation"]
        turns = [(u["content"], a["content"]) for u, a in zip(conv[0::2], conv[1::2]) if u["content"].strip()]
        if turns:
            out.append(Conversation("lmsys", r["conversation_id"], tuple(turns)))
    return out


def _gsm8k(path: Path, name: str) -> list[PromptItem]:
    return [PromptItem(name, f"{name}-{i}", "math", r["question"], r["answer"]) for i, r in enumerate(_jsonl(path))]


def _math(path: Path) -> list[PromptItem]:
    return [PromptItem("math", f"math-{i}", "math", r["problem"], r["solution"]) for i, r in enumerate(_jsonl(path))]


def _qwen_math(path: Path, name: str) -> list[PromptItem]:
    out = []
    for i, r in enumerate(_jsonl(path)):
        q = r.get("problem") or r.get("question")
        if isinstance(r.get("Body"), str):
            q = f"{r['Body']} {r.get('Question', '')}".strip()
        elif isinstance(r.get("body"), str):
            q = f"{r['body']} {q or ''}".strip()
        if not q:
            continue
        ans = r.get("solution") or r.get("rationale") or r.get("answer") or r.get("Answer")
        ans = "\n".join(ans) if isinstance(ans, list) else (str(ans) if ans is not None else None)
        out.append(PromptItem(name, f"{name}-{i}", "math", q, ans))
    return out


def _mmlu(root: Path) -> list[PromptItem]:
    out = []
    for split in ("dev", "test"):
        for f in sorted((root / split).glob("*.csv")):
            subject = f.stem.rsplit("_", 1)[0]
            with open(f, newline="", encoding="utf-8") as fh:
                for i, r in enumerate(csv.DictReader(fh)):
                    choices = tuple(r[f"choice{k}"] for k in range(4))
                    letter = "ABCD"[int(r["answer"])]
                    out.append(PromptItem("mmlu", f"mmlu-{subject}-{split}-{i}", "knowledge", r["question"], letter, choices, app=subject))
    return out


def _humaneval(path: Path) -> list[PromptItem]:
    return [PromptItem("humaneval", r["task_id"], "code", r["prompt"], r["prompt"] + r["canonical_solution"]) for r in _jsonl(path)]


def _mbpp(path: Path) -> list[PromptItem]:
    out = []
    for r in _jsonl(path):
        tests = "\n".join(r.get("test_list") or [])
        out.append(PromptItem("mbpp", f"mbpp-{r['task_id']}", "code", r["text"], r["code"].replace("\r\n", "\n"), app=tests or None))
    return out


def _code_alpaca(path: Path, name: str) -> list[PromptItem]:
    rows = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for i, r in enumerate(rows):
        text = r["instruction"] + (f"\n{r['input']}" if r.get("input") else "")
        out.append(PromptItem(name, f"{name}-{i}", "code", text, r.get("output")))
    return out


def _self_instruct(path: Path, name: str) -> list[PromptItem]:
    out = []
    for r in _jsonl(path):
        inst = (r.get("instances") or [{}])[0]
        text = r["instruction"] + (f"\n\n{inst['input']}" if inst.get("input") else "")
        out.append(PromptItem(name, r["id"], "writing", text, inst.get("output"), app=r.get("motivation_app")))
    return out


def _arena(path: Path) -> list[PromptItem]:
    out = []
    for r in _jsonl(path):
        sub = r.get("subcategory") or ""
        cap = "code" if sub == "coding" or "```" in r["prompt"] else "reasoning" if sub == "math" else "chat"
        out.append(PromptItem("arena_hard", r["uid"], cap, r["prompt"]))
    return out


def _mtbench(path: Path, name: str) -> list[PromptItem]:
    cap_map = {"coding": "code", "math": "math", "reasoning": "reasoning", "writing": "writing", "roleplay": "writing"}
    out = []
    for r in _jsonl(path):
        turns = r["turns"]
        out.append(PromptItem(name, f"{name}-{r['question_id']}", cap_map.get(r.get("category"), "chat"), turns[0], follow_ups=tuple(turns[1:])))
    return out


def _alpaca_eval(path: Path) -> list[PromptItem]:
    return [PromptItem("alpaca_eval", f"alpaca_eval-{i}", "chat", r["instruction"], r.get("output")) for i, r in enumerate(json.loads(path.read_text()))]


def _wizardlm(path: Path) -> list[PromptItem]:
    cap = {"Math": "math", "Code Generation": "code", "Code Debug": "code", "Reasoning": "reasoning"}
    return [PromptItem("wizardlm", f"wizardlm-{r['idx']}", cap.get(r.get("Skill"), "writing"), r["Instruction"]) for r in _jsonl(path)]


#: Which parsed sources may ship in the bundled sample (permissive licenses only).
PERMISSIVE_SOURCES = (
    "oasst", "hh", "gsm8k_train", "gsm8k_test", "math", "mmlu", "humaneval", "mbpp",
    "self_instruct", "self_instruct_seed", "arena_hard", "mtbench", "vicuna",
)


def parse_full(root: Path) -> Corpora:
    """Parse every corpus present under ``root``; absent folders are skipped silently."""
    c = Corpora(origin=str(root))

    def have(rel: str) -> Path | None:
        p = root / rel
        return p if p.exists() else None

    if p := have("oasst1_en_validation/original-data__en-validation.jsonl"):
        c.conversations["oasst"] = _oasst(p)
    if p := have("hh_rlhf/harmless-base__test.jsonl.gz"):
        c.conversations["hh"] = _hh(p)
    if p := have("sharegpt/sharegpt_v3_dev_half.jsonl.gz"):
        # Real people chatted these; Vicuna-style distillers also replayed their first turns.
        # Split by id so the two uses never share a conversation.
        chat, harvest = [], []
        for conv in _sharegpt(p):
            (chat if split_key(conv.cid, "sharegpt") < 0.6 else harvest).append(conv)
        c.conversations["sharegpt_chat"] = chat
        c.conversations["sharegpt_harvest"] = harvest
    if p := have("lmsys_chat_sample/lmsys_1000.jsonl"):
        c.conversations["lmsys"] = _lmsys(p)
    if p := have("gsm8k/grade_school_math__data__train.jsonl"):
        c.prompts["gsm8k_train"] = _gsm8k(p, "gsm8k_train")
    if p := have("gsm8k/grade_school_math__data__test.jsonl"):
        c.prompts["gsm8k_test"] = _gsm8k(p, "gsm8k_test")
    if p := have("math_500_sample/data__math__test.jsonl"):
        c.prompts["math"] = _math(p)
    for name in ("olympiadbench", "college_math", "minerva_math", "aqua", "svamp", "asdiv", "amc23", "aime24"):
        if p := have(f"qwen25math_evalsets/evaluation__data__{name}__test.jsonl"):
            c.prompts[name] = _qwen_math(p, name)
    if p := have("mmlu/data/mmlu"):
        c.prompts["mmlu"] = _mmlu(p)
    if p := have("humaneval/HumanEval.jsonl.gz"):
        c.prompts["humaneval"] = _humaneval(p)
    if p := have("mbpp/mbpp_original_974_derived.jsonl"):
        c.prompts["mbpp"] = _mbpp(p)
    if p := have("code_alpaca/data__new_codealpaca.json"):
        c.prompts["code_alpaca"] = _code_alpaca(p, "code_alpaca")
    if p := have("self_instruct/human_eval__user_oriented_instructions.jsonl"):
        c.prompts["self_instruct"] = _self_instruct(p, "self_instruct")
    if p := have("self_instruct/data__seed_tasks.jsonl"):
        c.prompts["self_instruct_seed"] = _self_instruct(p, "self_instruct_seed")
    arena = []
    for rel in ("arena_hard/data__arena-hard-v0.1__question.jsonl", "arena_hard/data__arena-hard-v2.0__question.jsonl"):
        if p := have(rel):
            arena += _arena(p)
    if arena:
        c.prompts["arena_hard"] = arena
    if p := have("mtbench_vicuna_advbench/evaluation__open_ended__data__mtbench__question.jsonl"):
        c.prompts["mtbench"] = _mtbench(p, "mtbench")
    if p := have("mtbench_vicuna_advbench/evaluation__open_ended__data__vicuna__question.jsonl"):
        c.prompts["vicuna"] = _mtbench(p, "vicuna")
    if p := have("alpaca_eval/results__gpt4__model_outputs.json"):
        c.prompts["alpaca_eval"] = _alpaca_eval(p)
    if p := have("wizardlm_evol_instruct_testset/WizardLM__data__WizardLM_testset.jsonl"):
        c.prompts["wizardlm"] = _wizardlm(p)
    return c


# ---------------------------------------------------------------- normalized (sample) form


def dump_normalized(c: Corpora, out_dir: Path) -> list[Path]:
    """Write ``c`` as one gzipped JSONL per source (byte-reproducible: gzip mtime 0)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, table in (("conversations", c.conversations), ("prompts", c.prompts)):
        for source, rows in sorted(table.items()):
            path = out_dir / f"{kind}.{source}.jsonl.gz"
            buf = io.BytesIO()
            with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as gz:
                for r in rows:
                    d = r._asdict()
                    d = {k: v for k, v in d.items() if v not in (None, ())}
                    gz.write(json.dumps(d, ensure_ascii=False, sort_keys=True).encode() + b"\n")
            path.write_bytes(buf.getvalue())
            paths.append(path)
    return paths


def load_normalized(sample_dir: Path) -> Corpora:
    """Read a directory written by :func:`dump_normalized`."""
    c = Corpora(origin="bundled-sample")
    for path in sorted(sample_dir.glob("*.jsonl.gz")):
        kind, source = path.name.split(".")[:2]
        rows = list(_jsonl(path))
        if kind == "conversations":
            c.conversations[source] = [Conversation(r["source"], r["cid"], tuple(tuple(t) for t in r["turns"])) for r in rows]
        else:
            c.prompts[source] = [
                PromptItem(
                    r["source"], r["pid"], r["capability"], r["text"], r.get("answer"),
                    tuple(r["choices"]) if r.get("choices") else None, tuple(r.get("follow_ups", ())), r.get("app"),
                )
                for r in rows
            ]
    return c


@lru_cache(maxsize=4)
def _load_cached(path: str, use_sample: bool) -> Corpora:
    if use_sample:
        return load_normalized(SAMPLE_DIR)
    return parse_full(Path(path))


def load_corpora(path: str | os.PathLike[str] | None = None, *, sample: bool = False) -> Corpora:
    """The corpora at ``path`` (default ``/work/shared/corpora``), else the bundled sample.

    Parsed once per process and cached; treat the result as read-only.

    Example:
        >>> load_corpora(sample=True).origin
        'bundled-sample'
    """
    if sample:
        return _load_cached("", True)
    root = Path(path) if path is not None else DEFAULT_CORPORA
    if root.is_dir() and any(root.iterdir()):
        return _load_cached(str(root.resolve()), False)
    if path is not None:
        from distillguard.errors import InputError

        raise InputError(str(root), "corpora directory not found or empty")
    return _load_cached("", True)
