"""A recording worker whose first batch meets a fatal DuckDB error, once per marker file.

Started by a test's ProcessRecorder in place of ``python -m distillguard.gateway.worker``:
``python fatal_store_worker.py MARKER FD``.  The first worker (no marker yet) creates the marker and
gets ``duckdb.FatalException`` from every insert, as from a connection DuckDB has invalidated; the
workers after it run unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

import distillguard.gateway.sink as sink_module
from distillguard.gateway import worker


def invalidated(*args, **kw):
    raise duckdb.FatalException("FATAL Error: Failed: database has been invalidated because of a previous fatal error")


if __name__ == "__main__":
    marker = Path(sys.argv[1])
    if not marker.exists():
        marker.touch()
        sink_module.insert_new = invalidated
    worker.main(sys.argv[2:])
