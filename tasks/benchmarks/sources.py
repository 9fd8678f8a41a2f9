"""Where benchmark data comes from: a local file in its published format, or a hub dataset.

Local files are parsed by extension (.csv, .json, .jsonl) into plain Python data; a hub dataset
is read through `datasets.load_dataset` into rows, its columns renamed back to the published
names. The parsers then see the same shape either way.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.errors import SuiteFormatError

LOCAL_SUFFIXES = (".csv", ".json", ".jsonl")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclass(frozen=True)
class HubSource:
    """How a benchmark is read from the hub: default dataset id (None: no canonical copy),
    config, split, and the renames from the hub's column names back to the published ones."""

    id: str | None = None
    config: str | None = None
    split: str = "train"
    renames: dict[str, str] = field(default_factory=dict)


def is_hub_id(source: str | Path) -> bool:
    """A string naming `owner/dataset` that is not a local path: the hub is asked for it."""
    text = str(source)
    return (
        not Path(text).exists()
        and _HUB_ID.fullmatch(text) is not None
        and not text.endswith(LOCAL_SUFFIXES)
    )


def read_local(path: Path, header: tuple[str, ...] | None = None) -> Any:
    """Parse a local file by its extension; `header` names the columns of a header-less CSV."""
    if not path.is_file():
        raise SuiteFormatError("no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, header)
    if suffix == ".jsonl":
        return _read_jsonl(path.read_text(encoding="utf-8"))
    if suffix == ".json":
        content = path.read_text(encoding="utf-8")
        try:
            return json.loads(content)
        except json.JSONDecodeError:
            # Some published .json files hold one object per line (the hub copy of CatQA).
            return _read_jsonl(content)
    raise SuiteFormatError(f"unsupported file type {suffix or '(none)'}: use one of {', '.join(LOCAL_SUFFIXES)}")


def _read_csv(path: Path, header: tuple[str, ...] | None) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise SuiteFormatError("the file is empty")
    first = [cell.strip() for cell in rows[0]]
    if header is not None and header[0] not in first and len(first) == len(header):
        columns, body = list(header), rows
    else:
        columns, body = first, rows[1:]
    return [dict(zip(columns, row, strict=False)) for row in body if any(cell.strip() for cell in row)]


def _read_jsonl(content: str) -> list[Any]:
    rows = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise SuiteFormatError(f"line {number} is not valid JSON ({error.msg})") from error
    return rows


def read_hub(hub_id: str, hub: HubSource) -> list[dict[str, Any]]:
    """Rows of a hub dataset, its columns renamed to the benchmark's published names."""
    import datasets  # heavy: imported only when the hub is actually used

    try:
        dataset = datasets.load_dataset(hub_id, hub.config, split=hub.split)
    except Exception as error:  # offline, gated, missing: all end the same way for the user
        raise SuiteFormatError(
            f"not a local file, and the hub could not load it as a dataset "
            f"(config {hub.config!r}, split {hub.split!r}): {error}"
        ) from error
    return [{hub.renames.get(key, key): value for key, value in row.items()} for row in dataset]
