"""Input formats: detect a log file's format and stream it as RawEvents (or Quarantined lines).

Example:
    >>> from distillguard.ingest import read_file, detect_format  # doctest: +SKIP
    >>> detect_format("logs/litellm.jsonl.gz")  # doctest: +SKIP
    'litellm'
    >>> for item in read_file("logs/litellm.jsonl.gz"):  # doctest: +SKIP
    ...     ...
    >>> events = read_file("export.csv", mapping="mapping.yml")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distillguard.errors import InputError
from distillguard.ingest.accounts import read_accounts_table
from distillguard.ingest.base import Reader
from distillguard.ingest.lines import first_json_object, open_binary, table_format
from distillguard.ingest.litellm import LiteLLMReader
from distillguard.ingest.mapped import ColumnMapping, MappedReader
from distillguard.ingest.openai import OpenAIReader
from distillguard.ingest.openai_batch import OpenAIBatchReader, read_batch_pair
from distillguard.ingest.otel import OtelReader
from distillguard.types import AccountStream, PathArg, ReaderStream

#: Every reader by its command-line name, in sniffing order (most specific first).
READERS: dict[str, type[Reader]] = {
    reader.name: reader for reader in (OtelReader, OpenAIBatchReader, OpenAIReader, LiteLLMReader, MappedReader)
}

#: How far into a file to look for a pretty-printed OTLP document's ``resourceSpans`` key.
_OTLP_SNIFF_BYTES = 1 << 16

__all__ = [
    "READERS",
    "ColumnMapping",
    "detect_format",
    "make_reader",
    "read_accounts",
    "read_batch_pair",
    "read_file",
]


def _known() -> str:
    return ", ".join(READERS)


def detect_format(path: PathArg) -> str:
    """The name of the reader for ``path``, judged from its first JSON object.

    Raises InputError naming the file when it is missing or empty, when it is a
    CSV/Parquet file (which needs a column mapping), or when no reader recognizes it.

    Example:
        >>> detect_format("traces.otlp.json")  # doctest: +SKIP
        'otel'
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "file not found")
    if table_format(path) in ("csv", "parquet"):
        raise InputError(str(path), "CSV and Parquet logs need a column mapping (mapping=... / --mapping FILE)")
    first = first_json_object(path)
    if first is None:
        # A pretty-printed OTLP export does not parse line by line; look for its top-level key.
        with open_binary(path) as f:
            head = f.read(_OTLP_SNIFF_BYTES)
        if head.lstrip().startswith(b"{") and b'"resourceSpans"' in head:
            return OtelReader.name
    for name, reader in READERS.items():
        if reader.sniff(path, first):
            return name
    raise InputError(
        str(path),
        f"unknown input format; known formats: {_known()} (for any other JSONL/CSV/Parquet, pass a column mapping)",
    )


def make_reader(
    path: PathArg, fmt: str | None = None, mapping: PathArg | dict[str, Any] | None = None, **options: Any
) -> Reader:
    """The reader for ``path``: named by ``fmt``, else ``mapped`` when a ``mapping`` is given, else detected.

    ``options`` go to the reader: for ``openai_batch``, ``output_path``,
    ``default_ts`` and identity (``account_id``, ``api_key``, ...).  Keep the
    reader to look at its counters afterwards (``OtelReader.skipped_spans``).
    Format problems raise InputError here, before any line is read.

    Example:
        >>> reader = make_reader("traces.jsonl")  # doctest: +SKIP
        >>> events = list(reader.read(Path("traces.jsonl"))); reader.skipped_spans  # doctest: +SKIP
        3
    """
    path = Path(path)
    if fmt is None:
        fmt = MappedReader.name if mapping is not None else detect_format(path)
    if fmt not in READERS:
        raise InputError(str(path), f"unknown format {fmt!r}; known formats: {_known()}")
    if fmt == MappedReader.name:
        if mapping is None:
            raise InputError(str(path), "format 'mapped' needs a column mapping (mapping=... / --mapping FILE)")
        return MappedReader(mapping)
    if fmt == OpenAIBatchReader.name:
        return OpenAIBatchReader(**options)
    if options:
        raise TypeError(f"reader {fmt!r} takes no options, got {', '.join(sorted(options))}")
    return READERS[fmt]()


def read_file(
    path: PathArg, fmt: str | None = None, mapping: PathArg | dict[str, Any] | None = None, **options: Any
) -> ReaderStream:
    """Stream ``path`` as RawEvent / Quarantined items (arguments as for :func:`make_reader`).

    Example:
        >>> for item in read_file("batch_1_input.jsonl", account_id="acct-9"):  # doctest: +SKIP
        ...     ...
    """
    return make_reader(path, fmt, mapping, **options).read(Path(path))


def read_accounts(path: PathArg) -> AccountStream:
    """Stream an accounts table (CSV, JSONL or Parquet) as RawAccount / Quarantined items.

    Example:
        >>> accounts = [a for a in read_accounts("accounts.csv")]  # doctest: +SKIP
    """
    return read_accounts_table(path)
