"""How many CPUs this process may run on: what sizes the ingest's worker pool and DuckDB's threads.

Example:
    >>> usable_cpus() >= 1
    True
"""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on (``os.cpu_count()`` unless an affinity mask says fewer)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1
