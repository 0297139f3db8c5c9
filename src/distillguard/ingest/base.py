"""The reader abstraction: one input format per module, two methods each.

A reader turns one file into a stream of :class:`~distillguard.schema.RawEvent`
(or :class:`~distillguard.errors.Quarantined` for a line it cannot use).  It
does no hashing, no feature work and no storage: :mod:`distillguard.ingest.pipeline`
does that for every format alike.

Example:
    >>> from distillguard.ingest import detect_format   # doctest: +SKIP
    >>> reader = detect_format("logs/litellm.jsonl.gz")  # doctest: +SKIP
    >>> for item in reader.read("logs/litellm.jsonl.gz"):  # doctest: +SKIP
    ...     ...
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from distillguard.types import ReaderStream


class Reader(ABC):
    """Reads one input format.

    ``sniff`` decides from the first parsed record whether a file is in this
    format; ``read`` streams the file in bounded memory.
    """

    #: Short name used on the command line (``--format NAME``).
    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def sniff(cls, path: Path, first: object) -> bool:
        """True if ``first`` (the first parsed JSON object, CSV header row, ...) looks like this format."""

    @abstractmethod
    def read(self, path: Path) -> ReaderStream:
        """Yield one RawEvent per exchange, or a Quarantined per unusable line; never raise for a bad line."""
