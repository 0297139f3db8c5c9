"""One start-up sequence for recording and enforcement, shared by ``serve`` and the LiteLLM plugin.

Kept apart from the recorders so that the serving process imports neither
DuckDB nor the detectors: with ``recorder_process: true`` (the default) they
load only in the recording worker.

Example:
    >>> from distillguard.gateway.config import GatewayConfig
    >>> import tempfile; d = tempfile.mkdtemp()
    >>> hasher, enforcer, recorder, close = open_recording(GatewayConfig(store_path=d + "/gw.duckdb", wal_dir=d + "/wal"))
    >>> type(recorder).__name__, enforcer.scorer is None   # online scoring runs in the worker
    ('ProcessRecorder', True)
    >>> close()
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from distillguard.gateway.types import Enforcer, Recorder
from distillguard.privacy import Hasher

log = logging.getLogger("distillguard.gateway.recorder")


def open_recording(config: Any) -> tuple[Hasher, Enforcer, Recorder, Callable[[], None]]:
    """The deployment's hasher, the enforcer (:func:`~distillguard.gateway.enforcement.build_enforcer`),
    the started recorder, and the function that shuts them down in order (store what is written,
    stop the enforcer).  The enforcer is closed again if the recorder cannot start.

    With ``config.recorder_process`` (default) the recorder is a
    :class:`~distillguard.gateway.process_recorder.ProcessRecorder`: online scoring runs in its
    worker process and its risk records come back to this enforcer's state.  Otherwise the
    in-process :class:`~distillguard.gateway.recorder.WALRecorder` stores from a thread and the
    enforcer scores in another.
    """
    from distillguard.gateway.enforcement import build_enforcer, enforcer_options

    hasher = Hasher.from_config(config.secret_file)
    if hasher.is_demo:
        log.warning("no hashing secret configured ($DISTILLGUARD_SECRET or secret_file): using the demo secret")
    in_process = not getattr(config, "recorder_process", True)
    enforcer = build_enforcer(config, scorer_in_process=in_process, hasher=hasher)
    recorder: Recorder
    try:
        if in_process:
            from distillguard.gateway.recorder import build_recorder

            recorder = build_recorder(config, hasher, enforcer)
        else:
            from distillguard.gateway.process_recorder import ProcessRecorder

            options = enforcer_options(config)
            recorder = ProcessRecorder.from_config(config, hasher, enforcer.state.risk, options if options["online"] else None)
            recorder.start()
    except BaseException:
        enforcer.close()
        raise

    def close() -> None:
        recorder.close()
        enforcer.close()
        if in_process:  # its store, closed last (the worker closes its own); read now: a fatal error reopens it
            recorder.store.close()  # type: ignore[attr-defined]

    return hasher, enforcer, recorder, close
