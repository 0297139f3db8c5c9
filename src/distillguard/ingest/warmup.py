"""Imported by the ingest workers' fork server: readies the compiled code every worker needs, once.

Numba compiles a kernel on its first call (or loads it from its on-disk cache, ~0.6 s for the LiteLLM
scanner); the benchmark index is loaded on first use too.  Done here, in the fork server, before any
worker exists, each worker forks with all of it in place (and shares its pages) instead of paying for
it on its first block; on a machine whose cache is still empty (a fresh install) it is compiled once
instead of once per worker.  Importing this module has that effect and nothing else; a failure here
only means workers do it themselves.

Example:
    >>> import distillguard.ingest.warmup  # doctest: +SKIP
"""

from __future__ import annotations

#: One ordinary LiteLLM line: the compiled scanner is specialized on argument types, not content.
_LINE = (b'{"id": "warm-up", "startTime": 1700000000.5, "endTime": 1700000001.25, "model": "m", '
         b'"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "Warm up \\u00e9."}], '
         b'"response": {"choices": [{"message": {"content": "ok"}}]}, '
         b'"metadata": {"user_api_key_user_id": "a", "user_agent": "x"}}\n')  # fmt: skip


def warm_up() -> None:
    """Compile (or load) the block scanner and the text kernels by running them on one line."""
    from distillguard.ingest.litellm_columns import litellm_columns
    from distillguard.normalize import normalize_exchanges
    from distillguard.privacy import Hasher

    table, _ = litellm_columns(_LINE, 1, "warm-up")
    normalize_exchanges(table, Hasher(b"warm-up"))


try:
    warm_up()
except Exception:  # noqa: BLE001 - see the module docstring: workers will do it themselves
    pass
