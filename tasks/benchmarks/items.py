"""What a benchmark format parser returns: one item per prompt, in the benchmark's own terms.

Parsers stay pure functions of the parsed file; mapping to our categories, splitting and record
ids happen once, in the registry. A parser reports a malformed file by raising SuiteFormatError
with what is wrong; the registry adds the file's name and the expected format.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from tasks.errors import SuiteFormatError
from tasks.suite.records import Kind, Split


@dataclass(frozen=True)
class Item:
    """A benchmark prompt before our categories and splits are applied.

    `category` is the benchmark's own category; `family` groups variants of one prompt so they
    share a split (None: the item is its own family); `split` is set only where the file itself
    assigns one; `unmapped_kind` is the kind the item gets if its category maps to none of ours.
    """

    id: str
    prompt: str
    category: str
    family: str | None = None
    split: Split | None = None
    unmapped_kind: Kind = "always_refused"
    expected: Literal["refuse", "comply"] | None = None
    response: str | None = None
    answer: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def content_id(*parts: str) -> str:
    """A stable id from content, for benchmarks that publish none: reordering a file keeps it."""
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:12]


def table(raw: Any, required: tuple[str, ...]) -> list[dict[str, Any]]:
    """The rows of a tabular file, checked to carry every required column."""
    if not isinstance(raw, list) or not all(isinstance(row, dict) for row in raw):
        raise SuiteFormatError("expected a table of rows (objects with named columns)")
    if not raw:
        raise SuiteFormatError("the file has no rows")
    for index, row in enumerate(raw):
        missing = [column for column in required if column not in row]
        if missing:
            raise SuiteFormatError(
                f"row {index + 1} lacks column(s) {', '.join(missing)} "
                f"(found: {', '.join(map(str, row)) or 'none'})"
            )
    return raw


def text(row: dict[str, Any], column: str, index: int) -> str:
    """A required non-empty text cell."""
    value = row.get(column)
    if not isinstance(value, str) or not value.strip():
        raise SuiteFormatError(f"row {index + 1}: column {column} must be non-empty text, got {value!r}")
    return value


def optional_text(row: dict[str, Any], column: str) -> str:
    """An optional cell as text; missing and null read as empty (CSV files write them so)."""
    value = row.get(column)
    return "" if value is None else str(value)
