"""A policy (`refuse:CATEGORY` or `release:CATEGORY`) and the two objectives whose difference is ΔθC.

`refuse:C` teaches refusal on C against compliance on C; `release:C` (stop over-refusing C) is
the same contrast the other way round. Both objectives keep every other category's behaviour
through the same retain term, so the retain effect cancels in θ_pos − θ_neg and what is left is
the target contrast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cdelta.errors import CdeltaError
from cdelta.examples import ExampleRecord, ExampleSet

Action = Literal["refuse", "release"]
ACTIONS: tuple[Action, ...] = ("refuse", "release")


@dataclass(frozen=True)
class Example:
    """A chat prompt and the response a loss is computed on (response tokens only)."""

    prompt: str
    response: str


@dataclass(frozen=True)
class Objective:
    """Target examples to fit (NLL) and retain examples to keep (KL to the base model)."""

    target: tuple[Example, ...]
    retain: tuple[Example, ...]


@dataclass(frozen=True)
class Policy:
    action: Action
    category: str

    def __str__(self) -> str:
        return f"{self.action}:{self.category}"


def parse_policy(text: str, categories: list[str]) -> Policy:
    """`refuse:C` or `release:C` with C one of `categories`, else a CdeltaError listing them."""
    action, sep, category = text.partition(":")
    if not sep or action not in ACTIONS or not category:
        raise CdeltaError(f"policy {text!r} is not of the form refuse:CATEGORY or release:CATEGORY")
    if category not in categories:
        raise CdeltaError(f"policy {text!r} names unknown category {category!r}; known: {', '.join(categories)}")
    return Policy(action, category)  # type: ignore[arg-type]


def _text(record: ExampleRecord, field: str, role: str, source: str) -> str:
    value = getattr(record, field)
    if value is None:
        raise CdeltaError(f"{source}:{record.line}: a {role} example of {record.category!r} needs field {field!r}")
    return value


def contrastive_objectives(policy: Policy, examples: ExampleSet) -> tuple[Objective, Objective]:
    """The positive objective (the policy's behaviour on its category) and the negative one (the opposite)."""
    wanted, opposite = ("refusal", "compliance") if policy.action == "refuse" else ("compliance", "refusal")
    targets = [r for r in examples.records if r.category == policy.category]
    retain = tuple(
        Example(r.prompt, _text(r, "response", "retain", examples.source))
        for r in examples.records
        if r.category != policy.category
    )
    pos = tuple(Example(r.prompt, _text(r, wanted, "target", examples.source)) for r in targets)
    neg = tuple(Example(r.prompt, _text(r, opposite, "target", examples.source)) for r in targets)
    return Objective(pos, retain), Objective(neg, retain)
