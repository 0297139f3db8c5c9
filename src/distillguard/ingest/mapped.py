"""Any JSONL, CSV or Parquet log, read through a declared YAML column mapping.

A mapping names, for each RawEvent field, the source column (a dotted path
into nested JSON/Parquet structs) it comes from::

    format: csv            # csv | jsonl | parquet; default: from the data file's suffix
    ts_unit: ms            # unit of numeric timestamps: s | ms | us | ns | iso8601 (default s)
    columns:
      ts: created_at
      account_id: user
      prompt: input_text   # the user message (or `messages:` for a whole list)
      completion: output_text
      model: request.model # dotted path into a nested object

Targets are RawEvent field names plus ``prompt``, ``system`` (one user/system
message each), ``messages`` (a list of {role, content}, or its JSON text in CSV)
and ``completion`` (= completion_text).  The mapping is checked against the data
file before any row is read: an unknown target or a source column the file does
not have raises InputError naming the mapping file and the field.

Example:
    >>> reader = MappedReader("mapping.yml")  # doctest: +SKIP
    >>> events = list(reader.read(Path("export.csv")))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from distillguard.errors import InputError, Quarantined
from distillguard.ingest.base import Reader
from distillguard.ingest.lines import (
    TABLE_FORMATS,
    UNITS_PER_SECOND,
    FieldError,
    describe,
    dig,
    iter_rows,
    line_id,
    new_event,
    quarantine,
    table_columns,
    table_format,
    to_bool,
    to_epoch,
    to_float,
    to_int,
    to_messages,
)
from distillguard.schema import Message, RawEvent
from distillguard.types import PathArg, ReaderStream

TS_UNITS = (*UNITS_PER_SECOND, "iso8601")
_TIME_FIELDS = ("ts", "end_ts", "first_token_ts")
_STR_FIELDS = ("event_id", "account_id", "api_key", "end_user", "team_id", "org_id", "ip", "user_agent",
               "model", "status", "reasoning_effort", "completion_text", "reasoning_text")
_INT_FIELDS = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "max_tokens", "n", "top_logprobs", "seed")
_COUNT_FIELDS = ("tools_count", "response_tool_calls")  # an int, or a list whose length is the count
_FLOAT_FIELDS = ("temperature", "top_p")
_BOOL_FIELDS = ("logprobs", "stream")
_MESSAGE_FIELDS = ("messages", "prompt", "system")
#: Every name a mapping may use on its left-hand side.
TARGETS = (*_TIME_FIELDS, *_STR_FIELDS, *_INT_FIELDS, *_COUNT_FIELDS, *_FLOAT_FIELDS, *_BOOL_FIELDS,
           *_MESSAGE_FIELDS, "completion")
_ALIASES = {"completion": "completion_text"}


@dataclass(frozen=True)
class ColumnMapping:
    """A validated mapping file: target field → source column (dotted path)."""

    path: str  # the mapping file, named in errors
    columns: dict[str, str]
    format: str | None = None
    ts_unit: str = "s"


def load_mapping(source: PathArg | dict[str, Any]) -> ColumnMapping:
    """Parse and check a mapping (YAML file or an already-loaded dict).

    Example:
        >>> load_mapping({"columns": {"ts": "t", "completion": "out"}}).columns
        {'ts': 't', 'completion_text': 'out'}
    """
    where = "<mapping>" if isinstance(source, dict) else str(source)
    if isinstance(source, dict):
        spec = source
    else:
        try:
            spec = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise InputError(where, f"cannot read the column mapping: {e}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("columns"), dict):
        raise InputError(where, "a column mapping needs a 'columns:' map of field: source_column")
    unknown_keys = set(spec) - {"format", "ts_unit", "columns"}
    if unknown_keys:
        raise InputError(where, f"unknown key(s) {', '.join(sorted(unknown_keys))}; known: format, ts_unit, columns")
    fmt, ts_unit = spec.get("format"), spec.get("ts_unit", "s")
    if fmt is not None and fmt not in TABLE_FORMATS:
        raise InputError(where, f"unknown format {fmt!r}; known: {', '.join(TABLE_FORMATS)}", field="format")
    if ts_unit not in TS_UNITS:
        raise InputError(where, f"unknown unit {ts_unit!r}; known: {', '.join(TS_UNITS)}", field="ts_unit")
    columns: dict[str, str] = {}
    for target, column in spec["columns"].items():
        if target not in TARGETS:
            raise InputError(where, f"unknown target field; known: {', '.join(TARGETS)}", field=str(target))
        if not isinstance(column, str) or not column:
            raise InputError(where, f"expected a source column name, got {describe(column)}", field=target)
        columns[_ALIASES.get(target, target)] = column
    if "ts" not in columns:
        raise InputError(where, "must be mapped: every event needs a timestamp", field="ts")
    if "messages" in columns and ("prompt" in columns or "system" in columns):
        raise InputError(where, "map either 'messages' or 'prompt'/'system', not both", field="messages")
    return ColumnMapping(where, columns, fmt, ts_unit)


class MappedReader(Reader):
    """Reads a CSV/JSONL/Parquet file through a :class:`ColumnMapping`."""

    name = "mapped"

    def __init__(self, mapping: PathArg | dict[str, Any] | ColumnMapping):
        self.mapping = mapping if isinstance(mapping, ColumnMapping) else load_mapping(mapping)

    @classmethod
    def sniff(cls, path: Path, first: object) -> bool:
        """Never: a mapped file is read only when a mapping is given."""
        return False

    def check_columns(self, path: Path, fmt: str) -> None:
        """Raise InputError (naming the mapping file and field) for a source column the file lacks."""
        available = table_columns(path, fmt)
        for target, column in self.mapping.columns.items():
            top = column.split(".", 1)[0]
            if column not in available and top not in available:
                shown = ", ".join(sorted(available)[:20])
                raise InputError(self.mapping.path, f"source column '{column}' is not in {path} (columns: {shown})",
                                 field=target)

    def read(self, path: Path) -> ReaderStream:
        """Yield a RawEvent per row, a Quarantined per unusable row; InputError if the mapping does not fit."""
        path = Path(path)
        fmt = self.mapping.format or table_format(path)
        self.check_columns(path, fmt)
        parquet_columns = sorted({c.split(".", 1)[0] for c in self.mapping.columns.values()})
        for item in iter_rows(path, fmt, parquet_columns if fmt == "parquet" else None):
            if isinstance(item, Quarantined):
                yield item
                continue
            line_no, raw, row = item
            try:
                yield self.event(row, raw, str(path), line_no)
            except FieldError as e:
                yield quarantine(path, line_no, e.field, e.reason, raw)

    def event(self, row: dict[str, Any], raw: bytes, source_file: str, line_no: int) -> RawEvent:
        """Map one row to a RawEvent; raises FieldError naming the source column."""
        ev = new_event("mapped", source_file, line_no)
        unit = self.mapping.ts_unit
        messages: list[Message] = []
        for target, column in self.mapping.columns.items():
            value = row[column] if column in row else dig(row, column)
            if value is None:
                continue
            if target in _TIME_FIELDS:
                ev[target] = to_epoch(value, column, unit, allow_iso=True)  # type: ignore[literal-required]
            elif target in _STR_FIELDS:
                ev[target] = value if isinstance(value, str) else _scalar_text(value, column)  # type: ignore[literal-required]
            elif target in _INT_FIELDS:
                ev[target] = to_int(value, column)  # type: ignore[literal-required]
            elif target in _COUNT_FIELDS:
                ev[target] = len(value) if isinstance(value, list) else to_int(value, column)  # type: ignore[literal-required]
            elif target in _FLOAT_FIELDS:
                ev[target] = to_float(value, column)  # type: ignore[literal-required]
            elif target in _BOOL_FIELDS:
                ev[target] = to_bool(value, column)  # type: ignore[literal-required]
            elif target == "messages":
                messages = to_messages(_json_text(value, column), column)
        if "prompt" in self.mapping.columns or "system" in self.mapping.columns:
            messages = _prompt_messages(row, self.mapping.columns)
        ev["messages"] = messages
        if ev["ts"] is None:
            raise FieldError(self.mapping.columns["ts"], "missing (mapped to ts)")
        ev["event_id"] = ev["event_id"] or line_id(raw)
        return ev


def _scalar_text(value: Any, column: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise FieldError(column, f"expected a string, got {describe(value)}")


def _json_text(value: Any, column: str) -> Any:
    """A CSV cell holding JSON (messages) parsed; other values as they are."""
    if isinstance(value, str) and value.lstrip().startswith(("[", "{")):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as e:
            raise FieldError(column, f"expected a JSON list of messages: {e}") from None
    return value


def _prompt_messages(row: dict[str, Any], columns: dict[str, str]) -> list[Message]:
    messages: list[Message] = []
    for target, role in (("system", "system"), ("prompt", "user")):
        column = columns.get(target)
        value = None if column is None else (row[column] if column in row else dig(row, column))
        if value is not None:
            text = value if isinstance(value, str) else _scalar_text(value, column)  # type: ignore[arg-type]
            messages.append({"role": role, "content": text})
    return messages
