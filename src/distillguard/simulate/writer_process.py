"""Writing simulated traffic in a second process, so generation and serialization overlap.

Generating events and turning them into gzipped JSON lines cost about the same; on two cores,
running them side by side nearly halves the time to write a scenario.  Events cross to the
writer in order, in batches, through a bounded queue, so the file is byte-identical to a
single-process write and memory stays bounded.

Example:
    >>> n = write_events_in_child(iter([]), "/tmp/empty.litellm.jsonl.gz")   # doctest: +SKIP
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Iterable
from pathlib import Path

from distillguard.schema import RawEvent

_BATCH = 2_000
_POLL_S = 1.0


def _writer_main(inbox, outbox, path: str, fmt: str) -> None:
    from distillguard.ingest.writers import write_events

    def stream():
        while (batch := inbox.get()) is not None:
            yield from batch

    try:
        outbox.put(write_events(stream(), path, fmt=fmt))
    except BaseException as exc:  # report any failure to the parent instead of dying silently
        outbox.put(f"{type(exc).__name__}: {exc}")


def write_events_in_child(events: Iterable[RawEvent], path: str | Path, fmt: str = "litellm") -> int:
    """Like :func:`distillguard.ingest.writers.write_events`, with the writing done by a child process."""
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    inbox, outbox = ctx.Queue(maxsize=8), ctx.Queue()
    proc = ctx.Process(target=_writer_main, args=(inbox, outbox, str(path), fmt), daemon=True)
    proc.start()

    def send(item) -> None:
        while True:
            try:
                inbox.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                if not proc.is_alive():
                    break
        raise RuntimeError(f"the writer process for {path} stopped: {_result(outbox)}")

    try:
        batch: list[RawEvent] = []
        for ev in events:
            batch.append(ev)
            if len(batch) >= _BATCH:
                send(batch)
                batch = []
        if batch:
            send(batch)
        send(None)
        result = outbox.get()
    finally:
        proc.join(timeout=60)
        if proc.is_alive():
            proc.kill()
    if isinstance(result, str):
        raise RuntimeError(f"writing {path} failed: {result}")
    return int(result)


def _result(outbox) -> str:
    try:
        return str(outbox.get(timeout=_POLL_S))
    except queue.Empty:
        return "no reason given"
