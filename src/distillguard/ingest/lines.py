"""Small pure helpers every reader shares: opening, line iteration, JSON parsing, typed fields.

A reader is a loop over :func:`iter_json_objects` (or :func:`iter_rows` for
tables) that maps each object to a :class:`~distillguard.schema.RawEvent` with
the ``to_*`` / ``*_field`` helpers and :class:`FieldTypes` below.  A helper
either returns a clean value or raises :class:`FieldError` naming the field; the reader turns that into a :class:`~distillguard.errors.Quarantined`
with :func:`quarantine`, so every format reports bad input the same way.

Example:
    >>> to_int(2.0, "model_parameters.n")
    2
    >>> try:
    ...     epoch_field({"startTime": 1.7e12}, "startTime")
    ... except FieldError as e:
    ...     print(e.field, "-", e.reason)
    startTime - expected epoch seconds, got 1700000000000.0 (looks like milliseconds)
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import xxhash

try:  # ISA-L inflates ~3x faster than zlib: decompression is the floor of a gzipped ingest
    from isal import isal_zlib as _inflate_module

    _INFLATE_ERRORS: tuple[type[BaseException], ...] = (zlib.error, _inflate_module.error)
except ImportError:  # pragma: no cover - isal is a dependency; zlib reads the same files, slower
    _inflate_module = zlib
    _INFLATE_ERRORS = (zlib.error,)

from distillguard.errors import InputError, Quarantined
from distillguard.schema import Message, RawEvent

#: The raw text kept with a quarantined line, so one huge line cannot bloat the quarantine file.
MAX_RAW_CHARS = 65536
GZIP_MAGIC = b"\x1f\x8b"
#: Epoch values above this are not seconds (1e11 s is the year 5138).
MAX_EPOCH_SECONDS = 1e11
#: Units per second, for timestamps declared (mapped format) in another unit.
UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}

#: Every field of RawEvent; readers fill them all (None where the format has no value)
#: so downstream code never has to guess whether a key is missing or empty.
RAW_EVENT_FIELDS: tuple[str, ...] = tuple(RawEvent.__annotations__)


class FieldError(Exception):
    """A field of one record with a wrong type or value; readers turn it into a Quarantined."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"field '{field}': {reason}")
        self.field, self.reason = field, reason


# ---------------------------------------------------------------- files and lines


def is_gzip(path: Path) -> bool:
    """True if ``path`` starts with the gzip magic bytes (whatever its suffix)."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


class _GzipStream(io.RawIOBase):
    """gzip decompression as a raw stream that *ends* where the data is truncated or corrupt, keeping the error.

    Raising from deep inside a large read buffer would lose every line already
    decompressed into it; ending the stream instead lets the caller use them and
    then report the problem (see :func:`stream_error`).  Inflates with ISA-L
    when available (``gzip.GzipFile`` is zlib); members of a multi-member file
    are read one after another, as ``gzip`` does.
    """

    _COMPRESSED_READ = 1 << 18

    def __init__(self, path: Path):
        self._file = open(path, "rb")  # buffered: peek() tells whether more bytes follow
        self._carry = b""  # compressed bytes held over to the next read
        self._inflater = self._new_member()
        self._in_member = False  # inside a member whose end-of-stream marker has not been seen
        self._pending = memoryview(b"")
        self._done = False
        self.error: Exception | None = None

    @staticmethod
    def _new_member():
        return _inflate_module.decompressobj(wbits=31)  # 31: gzip header and trailer

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if self._done or self.error is not None:
                return 0
            self._pending = memoryview(self._inflate_more())
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def pieces(self) -> Iterator[bytes]:
        """The rest of the stream in the pieces it inflates to (~1 MB each), without copying them again.

        For a reader that only needs whole bytes objects (:func:`iter_line_blocks`); do not mix with
        ``read`` on a buffered wrapper (what the wrapper buffered would be skipped).
        """
        if self._pending:
            yield bytes(self._pending)
            self._pending = memoryview(b"")
        while not self._done and self.error is None:
            piece = self._inflate_more()
            if piece:
                yield piece

    def _inflate_more(self) -> bytes:
        compressed = self._carry + self._file.read(self._COMPRESSED_READ)
        self._carry = b""
        if not compressed:
            if self._in_member:
                self.error = EOFError("Compressed file ended before the end-of-stream marker was reached")
            self._done = True
            return b""
        out = []
        try:
            while compressed:
                if not self._in_member and len(compressed) < 2 and self._file.peek(1):
                    self._carry = compressed  # a member header split by the read: check it whole
                    break
                if not self._in_member and compressed[:2] != GZIP_MAGIC:
                    raise gzip.BadGzipFile(f"Not a gzipped file ({compressed[:2]!r})")
                self._in_member = True
                out.append(self._inflater.decompress(compressed))
                if not self._inflater.eof:
                    break
                compressed = self._inflater.unused_data  # the next member, if any
                self._inflater = self._new_member()
                self._in_member = False
        except (gzip.BadGzipFile, *_INFLATE_ERRORS) as e:
            self.error = e  # keep what inflated before the bad bytes
        return b"".join(out)  # one piece: joined without a copy

    def close(self) -> None:
        self._file.close()
        super().close()


def open_binary(path: Path) -> IO[bytes]:
    """Open ``path`` for reading bytes, decompressing gzip transparently (by magic bytes, not name).

    A truncated or corrupt gzip stream reads as a shorter file; check
    :func:`stream_error` after reading to the end.

    Example:
        >>> with open_binary(Path("logs.jsonl.gz")) as f:  # doctest: +SKIP
        ...     first = f.readline()
    """
    # Large buffers: per-call overhead, not decompression, dominates with small reads.
    if is_gzip(path):
        return io.BufferedReader(_GzipStream(path), buffer_size=1 << 20)
    return open(path, "rb", buffering=1 << 20)


def stream_error(f: IO[bytes]) -> Exception | None:
    """The error that ended a stream from :func:`open_binary` early (truncated/corrupt gzip), else None."""
    return getattr(getattr(f, "raw", None), "error", None)


def truncation(path: Path, line_no: int, error: Exception, fragment: bytes = b"") -> Quarantined:
    """The Quarantined reporting a stream cut short after ``line_no`` (the last complete line)."""
    return quarantine(path, line_no, None, f"compressed stream truncated or corrupt after line {line_no}: {error}",
                      fragment)


def iter_lines(path: Path) -> Iterator[tuple[int, bytes] | Quarantined]:
    """Yield ``(line_no, line)`` for each non-blank line (1-based), in bounded memory.

    A gzip stream that ends early or is corrupt ends the iteration with one
    Quarantined naming the last complete line (its raw text is the cut-off
    fragment, if any); the lines before it are kept.  A file without a single
    non-blank line raises ``InputError(path, "file is empty")``.

    Example:
        >>> for item in iter_lines(Path("logs.jsonl")):  # doctest: +SKIP
        ...     line_no, raw = item
    """
    line_no = 0
    seen_content = False
    with open_binary(path) as f:
        for line_no, raw in enumerate(f, 1):
            # Only the final line can lack its newline; if the stream was cut, it is a fragment.
            if raw[-1] != 10 and (error := stream_error(f)) is not None:
                yield truncation(path, line_no - 1, error, raw)
                return
            if raw.isspace():
                continue
            seen_content = True
            yield line_no, raw
        error = stream_error(f)
    if error is not None:
        yield truncation(path, line_no, error)
    elif not seen_content:
        raise InputError(str(path), "file is empty")


def iter_line_blocks(path: Path, block_bytes: int = 8 << 20) -> Iterator[tuple[int, bytes] | Quarantined]:
    """Yield ``(first_line_no, block)``: runs of whole lines of about ``block_bytes``, in bounded memory.

    What :func:`iter_lines` yields, in bulk: :func:`block_lines` splits a block into
    the same ``(line_no, line)`` pairs (blank lines skipped), so a process that only
    hands work out copies bytes and counts newlines instead of touching every line.
    Truncation and empty files are reported exactly as :func:`iter_lines` does.

    Example:
        >>> for item in iter_line_blocks(Path("logs.jsonl.gz")):  # doctest: +SKIP
        ...     first_line_no, block = item
        ...     lines = block_lines(first_line_no, block)
    """
    next_line = 1  # number of the first line of the next block
    seen_content = False
    carry = b""
    with open_binary(path) as f:
        for run in _line_runs(_pieces(f, block_bytes), block_bytes):
            if run[-1] != 10:  # only the last run can lack its newline: a last line, or a cut-off fragment
                carry = run
                break
            if not seen_content:
                seen_content = not run.isspace()
            yield next_line, run
            next_line += newlines(run)
        error = stream_error(f)
    if carry:
        if error is not None:  # a cut-off fragment, as iter_lines reports it
            yield truncation(path, next_line - 1, error, carry)
            return
        seen_content = seen_content or not carry.isspace()
        yield next_line, carry  # a last line without its newline
        next_line += 1
    if error is not None:
        yield truncation(path, next_line - 1, error)
    elif not seen_content:
        raise InputError(str(path), "file is empty")


def newlines(data: bytes) -> int:
    """How many b"\\n" ``data`` holds (numpy compares 16 bytes at once: ~2x ``bytes.count``).

    Example:
        >>> newlines(b"a\\nb\\n")
        2
    """
    return int(np.count_nonzero(np.frombuffer(data, np.uint8) == 10))


def _pieces(f: IO[bytes], block_bytes: int) -> Iterator[bytes]:
    """What ``f`` (from :func:`open_binary`) reads: a gzip stream's inflated pieces as they come, other files
    ``block_bytes`` at a time."""
    raw = getattr(f, "raw", None)
    if isinstance(raw, _GzipStream):
        yield from raw.pieces()
        return
    while data := f.read(block_bytes):
        yield data


def _line_runs(pieces: Iterator[bytes], block_bytes: int) -> Iterator[bytes]:
    """``pieces`` joined into runs of whole lines of at least ``block_bytes`` (the last run may be shorter
    and may lack its final newline); each byte is copied once."""
    parts: list[Any] = []
    size = 0
    for piece in pieces:
        parts.append(piece)
        size += len(piece)
        if size < block_bytes:
            continue
        cut = piece.rfind(b"\n") + 1
        if cut == 0:  # a line longer than what is held: keep collecting
            continue
        if cut == len(piece):
            run, parts, size = b"".join(parts), [], 0
        else:
            parts[-1] = memoryview(piece)[:cut]
            run = b"".join(parts)
            parts, size = [piece[cut:]], len(piece) - cut
        yield run
    tail = b"".join(parts)
    cut = tail.rfind(b"\n") + 1
    if cut:
        yield tail[:cut] if cut < len(tail) else tail
    if cut < len(tail):
        yield tail[cut:]


def block_lines(first_line_no: int, block: bytes) -> list[tuple[int, bytes]]:
    """The non-blank ``(line_no, line)`` pairs of a block from :func:`iter_line_blocks` (lines keep their newline).

    Example:
        >>> block_lines(7, b'{"a": 1}\\n\\n{"b": 2}\\n')
        [(7, b'{"a": 1}\\n'), (9, b'{"b": 2}\\n')]
    """
    # BytesIO iteration splits on b"\n" only and keeps it, exactly as iterating the file does
    return [(n, raw) for n, raw in enumerate(io.BytesIO(block), first_line_no) if not raw.isspace()]


def iter_json_objects(path: Path) -> Iterator[tuple[int, bytes, dict[str, Any]] | Quarantined]:
    """Yield ``(line_no, raw_line, object)`` for each JSON-object line; a Quarantined for any other line.

    Example:
        >>> for item in iter_json_objects(Path("logs.jsonl")):  # doctest: +SKIP
        ...     if isinstance(item, Quarantined): continue
        ...     line_no, raw, obj = item
    """
    loads = orjson.loads
    for item in iter_lines(path):
        if isinstance(item, Quarantined):
            yield item
            continue
        line_no, raw = item
        try:
            obj = loads(raw)
        except orjson.JSONDecodeError as e:
            yield quarantine(path, line_no, None, f"not valid JSON: {e}", raw)
            continue
        if type(obj) is not dict:
            yield quarantine(path, line_no, None, f"expected a JSON object, got {type(obj).__name__}", raw)
            continue
        yield line_no, raw, obj


def json_object(path: Path | str, line_no: int, raw: bytes) -> dict[str, Any] | Quarantined:
    """One line from :func:`iter_lines` as a JSON object, else its Quarantined (as :func:`iter_json_objects`).

    For readers that parse lines handed to them in batches (the parallel ingest path).
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return quarantine(path, line_no, None, f"not valid JSON: {e}", raw)
    if type(obj) is not dict:
        return quarantine(path, line_no, None, f"expected a JSON object, got {type(obj).__name__}", raw)
    return obj


def first_json_object(path: Path) -> Any:
    """The first non-blank line of ``path`` parsed as JSON, or None if it is not JSON (used to sniff)."""
    for item in iter_lines(path):
        if isinstance(item, Quarantined):
            return None
        try:
            return orjson.loads(item[1])
        except orjson.JSONDecodeError:
            return None
    return None


def quarantine(path: Path | str, line_no: int, field: str | None, reason: str, raw: bytes | str) -> Quarantined:
    """Build the Quarantined for one line, keeping at most MAX_RAW_CHARS of it."""
    if isinstance(raw, bytes):
        raw = raw[:MAX_RAW_CHARS].decode("utf-8", errors="replace")
    return Quarantined(str(path), line_no, field, reason, raw[:MAX_RAW_CHARS].rstrip("\r\n"))


def line_id(raw: bytes | str) -> str:
    """A stable event id for a record whose source has none: a 128-bit hash of its line."""
    return xxhash.xxh3_128_hexdigest(raw.encode() if isinstance(raw, str) else raw)


def new_event(source_format: str, path: Path | str, line_no: int) -> RawEvent:
    """A RawEvent with every field None (``messages`` empty) and its provenance set."""
    ev: dict[str, Any] = dict.fromkeys(RAW_EVENT_FIELDS)
    ev["messages"] = []
    ev["source_format"] = source_format
    ev["source_file"] = str(path)
    ev["source_line"] = line_no
    return ev  # type: ignore[return-value]


# ---------------------------------------------------------------- tables (CSV, JSONL, Parquet)

TABLE_FORMATS = ("csv", "jsonl", "parquet")
#: Rows per Parquet batch: bounded memory, large enough to amortize Arrow → Python conversion.
PARQUET_BATCH_ROWS = 8192
#: JSON lines whose keys make up a JSONL file's "header" (fields may be absent from any one line).
JSONL_HEADER_LINES = 1000


def table_format(path: Path) -> str:
    """csv | parquet | jsonl, from the file name (``.gz`` ignored).

    Example:
        >>> table_format(Path("accounts.csv.gz")), table_format(Path("x.parquet")), table_format(Path("x.jsonl"))
        ('csv', 'parquet', 'jsonl')
    """
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return "jsonl"


def _csv_dialect(path: Path) -> dict[str, str]:
    return {"delimiter": "\t"} if path.name.lower().removesuffix(".gz").endswith(".tsv") else {}


def table_columns(path: Path, fmt: str) -> set[str]:
    """The column names of a table file: CSV header, Parquet schema, or keys of the first JSON lines.

    Raises InputError if the file is empty.
    """
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return set(pq.ParquetFile(path).schema_arrow.names)
    if fmt == "csv":
        with io.TextIOWrapper(open_binary(path), encoding="utf-8", newline="") as f:
            header = next(csv.reader(f, **_csv_dialect(path)), None)
        if not header:
            raise InputError(str(path), "file is empty")
        return set(header)
    columns: set[str] = set()
    for n, item in enumerate(iter_json_objects(path)):
        if n >= JSONL_HEADER_LINES:
            break
        if not isinstance(item, Quarantined):
            columns.update(item[2])
    return columns


def iter_rows(
    path: Path, fmt: str, columns: list[str] | None = None
) -> Iterator[tuple[int, bytes, dict[str, Any]] | Quarantined]:
    """Yield ``(line_no, raw, row)`` per row of a CSV, JSONL or Parquet file, in bounded memory.

    ``line_no`` is the CSV line, the JSONL line or the 1-based Parquet row;
    ``raw`` is the row as JSON for CSV/Parquet (what a Quarantined keeps).  CSV
    empty cells are None.  ``columns`` limits what Parquet decodes (others are ignored anyway).

    Example:
        >>> for item in iter_rows(Path("accounts.csv"), "csv"):  # doctest: +SKIP
        ...     line_no, raw, row = item
    """
    if fmt == "jsonl":
        yield from iter_json_objects(path)
    elif fmt == "csv":
        yield from _iter_csv_rows(path)
    elif fmt == "parquet":
        yield from _iter_parquet_rows(path, columns)
    else:
        raise ValueError(f"unknown table format {fmt!r}; known: {', '.join(TABLE_FORMATS)}")


def _iter_csv_rows(path: Path) -> Iterator[tuple[int, bytes, dict[str, Any]] | Quarantined]:
    binary = open_binary(path)
    with io.TextIOWrapper(binary, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, **_csv_dialect(path))
        header = next(reader, None)
        if not header:
            raise InputError(str(path), "file is empty")
        width = len(header)
        # Held back one row: if the stream turns out truncated, the last row read may be cut short.
        pending: tuple[int, bytes, dict[str, Any]] | None = None
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                yield Quarantined(str(path), reader.line_num, None, f"not valid CSV: {e}", "")
                continue
            if not cells:
                continue
            if pending is not None:
                yield pending
                pending = None
            raw = orjson.dumps(cells)
            if len(cells) > width:
                yield quarantine(path, reader.line_num, None, f"row has {len(cells)} fields, header has {width}", raw)
                continue
            pending = reader.line_num, raw, {k: (v if v != "" else None) for k, v in zip(header, cells)}
        error = stream_error(binary)
    if error is not None:
        last_line = pending[0] - 1 if pending is not None else reader.line_num
        yield truncation(path, last_line, error, pending[1] if pending is not None else b"")
    elif pending is not None:
        yield pending


def _iter_parquet_rows(
    path: Path, columns: list[str] | None
) -> Iterator[tuple[int, bytes, dict[str, Any]] | Quarantined]:
    import pyarrow.parquet as pq

    row_no = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
        for row in batch.to_pylist():
            row_no += 1
            yield row_no, orjson.dumps(row, default=str), row
    if row_no == 0:
        raise InputError(str(path), "file is empty")


# ---------------------------------------------------------------- typed field helpers


def describe(value: Any) -> str:
    """A short repr of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def dig(obj: Any, dotted: str) -> Any:
    """The value at a dotted path in nested dicts, or None if any step is missing.

    Example:
        >>> dig({"a": {"b": 1}}, "a.b"), dig({"a": 1}, "a.b")
        (1, None)
    """
    for key in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def object_field(obj: Mapping[str, Any], key: str, field: str | None = None) -> dict[str, Any]:
    """``obj[key]`` as a dict; missing or null gives {} (so nested lookups need no None checks)."""
    value = obj.get(key)
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise FieldError(field or key, f"expected an object, got {describe(value)}")


def str_field(obj: Mapping[str, Any], key: str, field: str | None = None) -> str | None:
    """``obj[key]`` as a string; numbers (ids often are) become their decimal text.

    Example:
        >>> str_field({"user": 42}, "user")
        '42'
    """
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise FieldError(field or key, f"expected a string, got {describe(value)}")


#: What a stored integer column holds; ``x in INT64`` is a C-level bounds check.
INT64 = range(-(1 << 63), 1 << 63)


def to_int(value: Any, field: str) -> int | None:
    """``value`` as a 64-bit int: ints, integral floats and integer strings are accepted."""
    if value is None:
        return value
    if type(value) is int:
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip():
        try:
            number = int(value)
        except ValueError:
            raise FieldError(field, f"expected an integer, got {describe(value)}") from None
    else:
        raise FieldError(field, f"expected an integer, got {describe(value)}")
    if number not in INT64:
        raise FieldError(field, f"integer out of the 64-bit range, got {describe(value)}")
    return number


def to_float(value: Any, field: str) -> float | None:
    """``value`` as a float: numbers and numeric strings are accepted, booleans are not."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            return float(value)
        except ValueError:
            pass
    raise FieldError(field, f"expected a number, got {describe(value)}")


_TRUE = {"true", "1", "yes", "t"}
_FALSE = {"false", "0", "no", "f"}


def to_bool(value: Any, field: str) -> bool | None:
    """``value`` as a bool: booleans, 0/1 and 'true'/'false' (CSV) are accepted."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    raise FieldError(field, f"expected a boolean, got {describe(value)}")


#: One entry of a type spec for :class:`FieldTypes`: (RawEvent key, expected type, field name for errors).
FieldSpec = tuple[str, type, str]
_NONE_TYPE = type(None)


def _to_str(value: Any, field: str) -> str | None:
    return str_field({"v": value}, "v", field)


_CONVERTERS = {str: _to_str, int: to_int, float: to_float, bool: to_bool}


class FieldTypes:
    """Checks (and where harmless converts) the types of mapped values, in place.

    Readers map a record with plain ``dict.get`` and check types afterwards.  The
    tuple of value types ("signature") of a record is looked up in a small set of
    signatures already seen to be clean, so a typical line costs one C-level
    pass instead of a Python loop over every field; anything else takes the
    field-by-field path, which converts (``2.0`` → ``2``) or raises FieldError.

    Example:
        >>> types = FieldTypes((("n", int, "model_parameters.n"), ("model", str, "model")))
        >>> ev = {"n": 2.0, "model": "m"}; types.coerce(ev); ev
        {'n': 2, 'model': 'm'}
    """

    #: Enough for every pattern of present/absent fields real logs show; bounds memory.
    MAX_SIGNATURES = 4096

    def __init__(self, spec: tuple[FieldSpec, ...]):
        self.spec = spec
        self._values = itemgetter(*(key for key, _, _ in spec))
        self._clean_signatures: set[tuple[type, ...]] = set()
        self._ints = [(i, key, field) for i, (key, kind, field) in enumerate(spec) if kind is int]

    def coerce(self, ev: dict[str, Any]) -> None:
        """Raise FieldError naming the first field of a wrong type; convert harmless ones."""
        values = self._values(ev)
        signature = tuple(map(type, values))
        for i, _, field in self._ints:  # an int of a clean type can still be too large to store
            if type(values[i]) is int and values[i] not in INT64:
                to_int(values[i], field)  # raises, naming the field
        if signature in self._clean_signatures:
            return
        clean = True
        for (key, kind, field), value_type in zip(self.spec, signature):
            if value_type is not kind and value_type is not _NONE_TYPE:
                ev[key] = _CONVERTERS[kind](ev[key], field)
                clean = False
        if clean and len(self._clean_signatures) < self.MAX_SIGNATURES:
            self._clean_signatures.add(signature)


def epoch_seconds(value: Any, field: str) -> float | None:
    """Fast :func:`to_epoch` for the common case: a float (or int) already in seconds."""
    if (type(value) is float or type(value) is int) and -MAX_EPOCH_SECONDS < value < MAX_EPOCH_SECONDS:
        return float(value)
    return to_epoch(value, field)


def list_len_field(obj: Mapping[str, Any], key: str, field: str | None = None) -> int | None:
    """The length of the list ``obj[key]`` (tools, tool_calls), None when absent."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, list):
        return len(value)
    raise FieldError(field or key, f"expected a list, got {describe(value)}")


# ---------------------------------------------------------------- timestamps


def unit_of_epoch(value: float) -> str:
    """The unit an epoch number most likely is in, judged by its magnitude (for error messages)."""
    magnitude = abs(value)
    if magnitude < MAX_EPOCH_SECONDS:
        return "seconds"
    if magnitude < 1e14:
        return "milliseconds"
    if magnitude < 1e17:
        return "microseconds"
    return "nanoseconds"


def parse_iso8601(text: str, field: str) -> float:
    """An ISO-8601 timestamp as epoch seconds; no offset means UTC.

    Example:
        >>> parse_iso8601("2024-01-01T00:00:00Z", "ts")
        1704067200.0
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise FieldError(field, f"expected epoch seconds or an ISO-8601 time, got {describe(text)}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def to_epoch(value: Any, field: str, unit: str = "s", allow_iso: bool = True) -> float | None:
    """``value`` as epoch seconds.

    Numbers are taken in ``unit`` (s, ms, us, ns); with ``unit="s"`` a number
    too large to be seconds is refused, naming the unit it looks like, rather
    than silently placing the event millennia ahead.  Strings may be numeric or,
    if ``allow_iso``, ISO-8601.  ``unit="iso8601"`` accepts ISO strings only.

    Example:
        >>> to_epoch(1700000000123, "ts", unit="ms")
        1700000000.123
    """
    if value is None:
        return None
    if isinstance(value, datetime):  # Parquet timestamp columns arrive as datetimes
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, str):
        stripped = value.strip()
        try:
            value = float(stripped)
        except ValueError:
            if allow_iso or unit == "iso8601":
                return parse_iso8601(stripped, field)
            raise FieldError(field, f"expected a number, got {describe(value)}") from None
    if unit == "iso8601":
        raise FieldError(field, f"expected an ISO-8601 time, got {describe(value)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldError(field, f"expected a number, got {describe(value)}")
    if unit != "s":
        return value / UNITS_PER_SECOND[unit]  # division, not * 1e-3: exact to the last digit
    if abs(value) >= MAX_EPOCH_SECONDS:
        raise FieldError(
            field, f"expected epoch seconds, got {float(value)!r} (looks like {unit_of_epoch(float(value))})"
        )
    return float(value)


def epoch_field(obj: Mapping[str, Any], key: str, field: str | None = None, allow_iso: bool = True) -> float | None:
    """``obj[key]`` through :func:`to_epoch` in seconds."""
    return to_epoch(obj.get(key), field or key, "s", allow_iso)


# ---------------------------------------------------------------- messages


def content_text(content: Any, field: str) -> str:
    """Message content as plain text: a string, or the text of a list of content parts.

    Parts are OpenAI-style (``{"type": "text", "text": ...}``) or OTel-style
    (``{"type": "text", "content": ...}``); non-text parts (images, audio) carry
    no text and are dropped.

    Example:
        >>> content_text([{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}], "c")
        'a\\nb'
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                text = part.get("text", part.get("content"))
                if isinstance(text, str) and part.get("type", "text") in ("text", "input_text", "output_text"):
                    texts.append(text)
            else:
                raise FieldError(field, f"expected content parts, got {describe(part)}")
        return "\n".join(texts)
    raise FieldError(field, f"expected a string or a list of parts, got {describe(content)}")


def to_messages(value: Any, field: str) -> list[Message]:
    """A request's messages as a list of ``{role, content}`` with content flattened to text.

    A bare string (LiteLLM logs text completions that way) becomes one user message.

    Example:
        >>> to_messages([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "messages")
        [{'role': 'user', 'content': 'hi'}]
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise FieldError(field, f"expected a list of messages, got {describe(value)}")
    messages: list[Message] = []
    append = messages.append
    for i, message in enumerate(value):
        if type(message) is dict:
            role, content = message.get("role"), message.get("content")
            if type(role) is str and type(content) is str:  # the common case, kept cheap
                append({"role": role, "content": content})
                continue
        append(_to_message(message, f"{field}[{i}]"))
    return messages


def _to_message(message: Any, field: str) -> Message:
    if not isinstance(message, dict):
        raise FieldError(field, f"expected a message object, got {describe(message)}")
    role = message.get("role")
    if not isinstance(role, str):
        raise FieldError(f"{field}.role", f"expected a string, got {describe(role)}")
    return {"role": role, "content": content_text(message.get("content"), f"{field}.content")}
