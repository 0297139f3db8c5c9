"""Reading the public text corpora's files (used by the simulator and the benchmark-index builder).

Example:
    >>> from pathlib import Path
    >>> rows = list(read_jsonl(Path("gsm8k/train.jsonl")))   # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path


def read_jsonl(path: Path) -> Iterator[dict]:
    """The JSON objects of a JSON-lines file, plain or gzip; blank lines skipped."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                yield json.loads(line)
