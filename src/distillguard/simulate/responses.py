"""What the model answers: reply text of a target length, reasoning traces, token counts.

The simulator has no model, so replies are assembled from real assistant-written
text (the corpora's answer bank) or from a source's reference solution, cut to
the persona's length habit and to ``max_tokens``.  Token counts follow the usual
~4 bytes of UTF-8 per token (≈ 4 chars of English, ≈ 1 CJK character).

Example:
    >>> import random
    >>> synth = ReplySynth(["First paragraph.\\n\\nSecond one here."] * 3)
    >>> est_tokens("abcd" * 10)
    10
    >>> len(synth.reply(random.Random(0), 20)) > 0
    True
"""

from __future__ import annotations

import random

from distillguard.simulate.phrasing import LANG_REASONING


def est_tokens(text: str | None) -> int:
    """Approximate tokenizer count: UTF-8 bytes / 4, at least 1 for non-empty text."""
    if not text:
        return 0
    return max(1, len(text.encode("utf-8")) // 4)


def prompt_tokens(messages: list[dict]) -> int:
    """Chat-format prompt size: content tokens plus ~4 framing tokens per message."""
    return 3 + sum(est_tokens(m.get("content")) + 4 for m in messages)


def cut_to_tokens(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """Truncate ``text`` to about ``max_tokens`` tokens; returns (text, was_truncated)."""
    if not max_tokens or est_tokens(text) <= max_tokens:
        return text, False
    # byte budget -> char budget: scale by this text's bytes-per-char
    ratio = len(text) / max(1, len(text.encode("utf-8")))
    return text[: max(1, int(max_tokens * 4 * ratio))], True


class ReplySynth:
    """Builds plausible replies from a bank of real assistant texts."""

    def __init__(self, bank: list[str]):
        if not bank:
            bank = ["I can help with that. Here is a short overview of the main points to consider."]
        self.bank = bank
        # sentences for stitching reasoning steps; a bounded sample keeps start-up fast
        sents: list[str] = []
        for text in bank[:4000]:
            for s in text.replace("\n", " ").split(". "):
                if 40 <= len(s) <= 240:
                    sents.append(s.strip() + ".")
        self.sentences = sents or ["We check each condition in turn."]

    def reply(self, rng: random.Random, target_tokens: int) -> str:
        """A reply of about ``target_tokens`` tokens stitched from whole bank texts."""
        target_chars = max(8, target_tokens * 4)
        parts, size = [], 0
        while size < target_chars:
            t = self.bank[rng.randrange(len(self.bank))]
            parts.append(t)
            size += len(t) + 2
            if len(parts) > 40:
                break
        text = "\n\n".join(parts)
        if len(text) > target_chars * 1.15:
            cut = text.rfind(". ", 0, target_chars)
            text = text[: cut + 1] if cut > target_chars // 2 else text[:target_chars]
        return text

    def short_answer(self, rng: random.Random, reference: str | None, max_chars: int = 60) -> str:
        """A terse answer (eval runs, classification): the reference's last line, else a bank fragment."""
        if reference:
            last = reference.strip().splitlines()[-1]
            return last.replace("####", "").strip()[:max_chars] or reference[:max_chars]
        t = self.bank[rng.randrange(len(self.bank))]
        return t[:max_chars]

    def reasoning_trace(self, rng: random.Random, lang: str, solution: str | None, target_tokens: int, final: str | None = None) -> str:
        """A long numbered, step-by-step trace in ``lang``, ending with a final answer.

        Steps interleave the reference solution's lines (equations, code) with
        reasoning sentences, under the language's own step headers and connectives.
        """
        lex = LANG_REASONING.get(lang, LANG_REASONING["en"])
        sol_lines = [ln.strip() for ln in (solution or "").splitlines() if ln.strip() and not ln.startswith("####")]
        target_bytes = max(200, target_tokens * 4)
        out = [rng.choice(lex["open"])]
        size, step, i = len(out[0].encode()), 1, 0
        while size < target_bytes and step < 80:
            body = [rng.choice(lex["connect"])]
            if i < len(sol_lines):
                body.append(sol_lines[i])
                i += 1
            else:
                body.append(self.sentences[rng.randrange(len(self.sentences))])
            if rng.random() < 0.3:
                body.append(rng.choice(lex["check"]))
            chunk = lex["step"].format(n=step) + " " + " ".join(body)
            out.append(chunk)
            size += len(chunk.encode())
            step += 1
        out.append(lex["final"].format(answer=final or (sol_lines[-1] if sol_lines else "")))
        return "\n\n".join(out)
