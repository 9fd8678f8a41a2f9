"""The one record type every prompt source produces: the embedded suite and real benchmarks."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Split = Literal["train", "dev", "test"]
Kind = Literal["policy", "always_refused", "benign", "borderline", "utility"]
SPLITS: tuple[Split, ...] = ("train", "dev", "test")


@dataclass(frozen=True)
class PromptRecord:
    """A labelled chat prompt.

    `expected` is the reference organism's intended behaviour ("refuse" or "comply"), or None
    where a source has no such label; `response` is the training target where one exists;
    `answer` is the checkable answer of a utility item.
    """

    id: str
    prompt: str
    category: str
    kind: Kind
    split: Split
    family: str
    source: str = "embedded"
    expected: Literal["refuse", "comply"] | None = None
    response: str | None = None
    answer: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
