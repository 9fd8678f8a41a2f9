"""The examples file that `cdelta edit` trains on: one JSON object per line, supplied by the harness.

A line is `{"category": ..., "prompt": ..., "refusal": ..., "compliance": ..., "response": ...}`:
`refusal` and `compliance` are the two answers the contrastive fine-tunes teach when the line's
category is the policy's target; `response` is what the base model does on it, which the retain
term keeps when the line is not a target. A line needs only the fields its role uses. The
categories a policy may name are the categories that occur in the file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cdelta.errors import CdeltaError

_TEXT_FIELDS = ("refusal", "compliance", "response")


@dataclass(frozen=True)
class ExampleRecord:
    """One chat prompt of one category with the answers it can be trained or retained on."""

    category: str
    prompt: str
    refusal: str | None = None
    compliance: str | None = None
    response: str | None = None
    line: int = 0


@dataclass(frozen=True)
class ExampleSet:
    records: tuple[ExampleRecord, ...]
    source: str

    @property
    def categories(self) -> list[str]:
        return sorted({r.category for r in self.records})


def _record(obj: object, where: str, line: int) -> ExampleRecord:
    if not isinstance(obj, dict):
        raise CdeltaError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in ("category", "prompt"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise CdeltaError(f"{where}: field {key!r} must be a non-empty string")
    texts = {key: obj.get(key) for key in _TEXT_FIELDS}
    for key, value in texts.items():
        if value is not None and not isinstance(value, str):
            raise CdeltaError(f"{where}: field {key!r} must be a string")
    return ExampleRecord(obj["category"], obj["prompt"], line=line, **texts)


def load_examples(path: str | Path) -> ExampleSet:
    """Read and check an examples file; a CdeltaError names the first bad line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CdeltaError(f"cannot read examples file {path}: {exc}") from exc
    records = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CdeltaError(f"{where}: not valid JSON ({exc.msg})") from exc
        records.append(_record(obj, where, number))
    if not records:
        raise CdeltaError(f"examples file {path} has no examples")
    return ExampleSet(tuple(records), str(path))
