"""OpenAI Batch API file pairs: the input file (requests) joined to the output file (responses) on ``custom_id``.

Input lines are ``{custom_id, method, url, body}`` (``body`` a chat.completions
request); output lines are ``{id, custom_id, response: {status_code, request_id,
body}, error}``.  A batch carries no caller identity, and all of it belongs to
one account, so identity is passed as reader options.

The output file is found by convention: the input file's name with its last
``input`` replaced by ``output`` (``batch_123_input.jsonl`` →
``batch_123_output.jsonl``), unless given explicitly.  Reading either file of
a pair finds the other.

Memory: the output file is indexed by ``custom_id`` (its lines held) while the
input file streams; OpenAI caps a batch at 50,000 requests and 200 MB, which
bounds that.

Example:
    >>> reader = OpenAIBatchReader(account_id="acct-42")
    >>> events = list(reader.read(Path("batch_123_input.jsonl")))  # doctest: +SKIP
    >>> events = list(read_batch_pair("in.jsonl", "out.jsonl", account_id="acct-42"))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distillguard.errors import InputError, Quarantined
from distillguard.ingest.base import Reader
from distillguard.ingest.lines import (
    FieldError,
    first_json_object,
    iter_json_objects,
    line_id,
    new_event,
    object_field,
    quarantine,
    str_field,
    to_epoch,
    to_int,
)
from distillguard.ingest.openai import fill_request, fill_response, status_from_code
from distillguard.schema import RawEvent
from distillguard.types import PathArg, ReaderStream

#: Identity options a batch reader accepts; each is copied into every event of the batch.
IDENTITY_OPTIONS = ("account_id", "api_key", "end_user", "team_id", "org_id", "ip", "user_agent")


def batch_output_path(input_path: Path) -> Path:
    """The output file of a batch by naming convention: the last ``input`` in the name → ``output``.

    Example:
        >>> batch_output_path(Path("logs/batch_7_input.jsonl.gz")).name
        'batch_7_output.jsonl.gz'
    """
    name = input_path.name
    at = name.rfind("input")
    if at < 0:
        raise InputError(str(input_path), "cannot find the batch output file: name has no 'input' to replace "
                         "with 'output'; pass the output path explicitly")
    return input_path.with_name(name[:at] + "output" + name[at + len("input"):])


def batch_input_path(output_path: Path) -> Path:
    """The input file of a batch by naming convention (the inverse of :func:`batch_output_path`)."""
    name = output_path.name
    at = name.rfind("output")
    if at < 0:
        raise InputError(str(output_path), "cannot find the batch input file: name has no 'output' to replace")
    return output_path.with_name(name[:at] + "input" + name[at + len("output"):])


def _is_output_line(first: object) -> bool:
    return isinstance(first, dict) and "custom_id" in first and ("response" in first or "error" in first)


class OpenAIBatchReader(Reader):
    """Reads an OpenAI Batch input/output pair as exchanges of one account.

    Options: ``output_path`` (else found by convention), ``default_ts`` (epoch
    seconds used for requests whose output has no ``created``, e.g. failed
    ones; without it they are quarantined) and the identity fields in
    IDENTITY_OPTIONS.
    """

    name = "openai_batch"

    def __init__(self, output_path: PathArg | None = None, default_ts: float | None = None, **identity: str | None):
        unknown = set(identity) - set(IDENTITY_OPTIONS)
        if unknown:
            raise TypeError(f"unknown batch identity option(s): {', '.join(sorted(unknown))}")
        self.output_path = None if output_path is None else Path(output_path)
        self.default_ts = default_ts
        self.identity = identity

    @classmethod
    def sniff(cls, path: Path, first: object) -> bool:
        """A batch input line has ``custom_id`` and ``body``; an output line ``custom_id`` and ``response``."""
        return isinstance(first, dict) and "custom_id" in first and ("body" in first or _is_output_line(first))

    def read(self, path: Path) -> ReaderStream:
        """Yield a RawEvent per request of the batch; Quarantined for unmatched or bad lines."""
        path = Path(path)
        if self.output_path is None and _is_output_line(first_json_object(path)):
            input_path, output_path = batch_input_path(path), path
        else:
            input_path, output_path = path, self.output_path or batch_output_path(path)
        for p in (input_path, output_path):
            if not p.exists():
                raise InputError(str(p), "batch file not found (the other file of the pair was given)")
        yield from self._join(input_path, output_path)

    def _join(self, input_path: Path, output_path: Path) -> ReaderStream:
        outputs: dict[str, tuple[int, bytes, dict[str, Any]]] = {}
        for item in iter_json_objects(output_path):
            if isinstance(item, Quarantined):
                yield item
                continue
            line_no, raw, record = item
            custom_id = record.get("custom_id")
            if not isinstance(custom_id, str):
                yield quarantine(output_path, line_no, "custom_id", "expected a string", raw)
            elif custom_id in outputs:
                yield quarantine(output_path, line_no, "custom_id", f"duplicate custom_id {custom_id!r}", raw)
            else:
                outputs[custom_id] = item
        for item in iter_json_objects(input_path):
            if isinstance(item, Quarantined):
                yield item
                continue
            line_no, raw, record = item
            custom_id = record.get("custom_id")
            if not isinstance(custom_id, str):
                yield quarantine(input_path, line_no, "custom_id", "expected a string", raw)
                continue
            output = outputs.pop(custom_id, None)
            if output is None:
                yield quarantine(input_path, line_no, "custom_id",
                                 f"no output line for custom_id {custom_id!r} in {output_path}", raw)
                continue
            try:
                yield self._event(record, output, input_path, line_no, raw)
            except FieldError as e:
                yield quarantine(input_path, line_no, e.field, e.reason, raw)
        for custom_id, (line_no, raw, _) in outputs.items():
            yield quarantine(output_path, line_no, "custom_id",
                             f"no input line for custom_id {custom_id!r} in {input_path}", raw)

    def _event(self, record: dict[str, Any], output: tuple[int, bytes, dict[str, Any]],
               input_path: Path, line_no: int, raw: bytes) -> RawEvent:
        out_line, out_raw, out_record = output
        response = object_field(out_record, "response", "output.response")
        body = object_field(response, "body", "output.response.body")
        ts = to_epoch(body.get("created"), "output.response.body.created", allow_iso=False)
        if ts is None:
            ts = self.default_ts
        if ts is None:
            error = out_record.get("error") or body.get("error")
            raise FieldError("output.response.body.created",
                             f"missing (output line {out_line}; error: {error!r}); pass default_ts to keep it")
        ev = new_event("openai_batch", input_path, line_no)
        ev.update(self.identity)  # type: ignore[typeddict-item]
        fill_request(ev, object_field(record, "body"))
        if ev["end_user"] is None:
            ev["end_user"] = self.identity.get("end_user")
        fill_response(ev, body, "output.response.body")
        code = to_int(response.get("status_code"), "output.response.status_code")
        ev["status"] = "failure" if out_record.get("error") else status_from_code(code)
        ev["event_id"] = (str_field(body, "id", "output.response.body.id")
                          or str_field(out_record, "id", "output.id") or line_id(out_raw))
        ev["ts"] = ts
        ev["model"] = ev["model"] or str_field(body, "model", "output.response.body.model")
        return ev


def read_batch_pair(input_path: PathArg, output_path: PathArg, **options: Any) -> ReaderStream:
    """Read one Batch input/output pair given both paths; ``options`` as for OpenAIBatchReader.

    Example:
        >>> for ev in read_batch_pair("in.jsonl", "out.jsonl", account_id="acct-1"):  # doctest: +SKIP
        ...     ...
    """
    return OpenAIBatchReader(output_path=output_path, **options).read(Path(input_path))
