"""Rebuild the bundled corpus sample from the full corpora, deterministically.

Only permissively licensed sources go in (see ``ATTRIBUTION.md``).  Records are
chosen by a stable hash of their id, so the same corpora always give the same
bytes.  Run::

    python -m distillguard.data.sample.build [/work/shared/corpora]

Example:
    >>> from distillguard.data.sample.build import build_sample   # doctest: +SKIP
    >>> build_sample("/work/shared/corpora")                       # doctest: +SKIP
"""

from __future__ import annotations

import sys
from pathlib import Path

from distillguard.simulate.corpora import (
    DEFAULT_CORPORA,
    PERMISSIVE_SOURCES,
    SAMPLE_DIR,
    Corpora,
    dump_normalized,
    parse_full,
    split_key,
)

#: How many records of each source the sample keeps (None = all).  Sized so the
#: sample stays well under 1.5 MB compressed while every persona has enough to draw on.
SAMPLE_SIZES: dict[str, int | None] = {
    "oasst": None,
    "hh": 400,
    "gsm8k_train": 1200,
    "gsm8k_test": 300,
    "math": 250,
    "mmlu": 1200,
    "humaneval": None,
    "mbpp": 400,
    "self_instruct": None,
    "self_instruct_seed": None,
    "arena_hard": 350,
    "mtbench": None,
    "vicuna": None,
}

#: Long texts are cut so a few giant records do not dominate the size budget.
MAX_CHARS = 6000


def _trim(text: str | None) -> str | None:
    return text if text is None or len(text) <= MAX_CHARS else text[:MAX_CHARS]


def build_sample(corpora_dir: str | Path = DEFAULT_CORPORA, out_dir: str | Path = SAMPLE_DIR) -> list[Path]:
    """Parse the full corpora, keep a stable subset of the permissive sources, write gz JSONL files.

    Returns the written paths.  Existing ``*.jsonl.gz`` in ``out_dir`` are replaced.
    """
    full = parse_full(Path(corpora_dir))
    out = Corpora(origin="bundled-sample")
    for source in PERMISSIVE_SOURCES:
        n = SAMPLE_SIZES.get(source)
        if source in full.conversations:
            rows = sorted(full.conversations[source], key=lambda r: split_key(r.cid, "sample"))
            rows = rows if n is None else rows[:n]
            rows.sort(key=lambda r: r.cid)
            out.conversations[source] = [r._replace(turns=tuple((_trim(u), _trim(a)) for u, a in r.turns)) for r in rows]
        elif source in full.prompts:
            rows = sorted(full.prompts[source], key=lambda r: split_key(r.pid, "sample"))
            rows = rows if n is None else rows[:n]
            rows.sort(key=lambda r: r.pid)
            out.prompts[source] = [r._replace(text=_trim(r.text), answer=_trim(r.answer)) for r in rows]
    out_dir = Path(out_dir)
    for old in out_dir.glob("*.jsonl.gz"):
        old.unlink()
    return dump_normalized(out, out_dir)


if __name__ == "__main__":
    paths = build_sample(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_CORPORA)
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} files, {total / 1e6:.2f} MB")
