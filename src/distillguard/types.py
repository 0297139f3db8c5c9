"""Type aliases used across the package, in one place."""

from __future__ import annotations

from collections.abc import Iterator
from os import PathLike
from typing import Union

from distillguard.errors import Quarantined
from distillguard.schema import RawAccount, RawEvent

AccountId = str
PathArg = Union[str, "PathLike[str]"]
#: What a reader yields: a usable exchange, or a line set aside with the reason.
ReaderItem = Union[RawEvent, Quarantined]
ReaderStream = Iterator[ReaderItem]
AccountStream = Iterator[Union[RawAccount, Quarantined]]
