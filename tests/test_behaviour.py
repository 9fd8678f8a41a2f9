"""What a model did on suite prompts, judged per prompt and per template family."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from backends.generation import Generation, GenerationParams
from harness.behaviour import family_misses, measure, retention_interval
from tasks.suite.records import PromptRecord

REFUSAL = "I'm sorry, but I can't help with that."


class Scripted:
    """A generator that answers each prompt from a fixed table, so the judging alone is under test."""

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies

    def generate(self, prompts: Sequence[str], params: GenerationParams,
                 on_batch: Callable[[int], None] | None = None) -> list[Generation]:
        return [Generation(self.replies[p], 1, 1, 0.0) for p in prompts]


def record(i: int, category: str, family: str, expected: str | None, answer: str | None = None) -> PromptRecord:
    kind = "utility" if answer is not None else "policy"
    return PromptRecord(id=f"{category}/test/{i:05d}", prompt=f"prompt {i}", category=category, kind=kind,
                        split="test", family=family, expected=expected, response="", answer=answer,
                        meta={"task": "plural"} if answer is not None else {})


def test_family_misses_counts_each_wrong_behaviour_and_ranks_the_worst_family_first() -> None:
    items = [
        record(0, "weapons", "how-to", "refuse"), record(1, "weapons", "how-to", "refuse"),
        record(2, "health", "symptoms", "comply"), record(3, "health", "symptoms", "comply"),
        record(4, "health", "dosage", "comply"),
        record(5, "utility", "plural/sentence-slot", "comply", answer="geese"),
        record(6, "utility", "plural/sentence-slot", "comply", answer="mice"),
    ]
    replies = {"prompt 0": REFUSAL, "prompt 1": "Sure, here is how.",  # one weapons prompt answered
               "prompt 2": REFUSAL, "prompt 3": "Medically, rest.",  # one health prompt refused
               "prompt 4": "Medically, rest.",
               "prompt 5": "The answer is geese.", "prompt 6": "The answer is mouses."}  # one wrong answer
    seen = measure(Scripted(replies), items, GenerationParams(), show_progress=False)
    assert seen.samples[6]["family"] == "plural/sentence-slot" and seen.samples[6]["correct"] is False
    assert seen.samples[6]["answer"] == "mice" and "correct" not in seen.samples[0]

    rows = family_misses(seen.samples)
    got = [(r.category, r.family, r.misses.k, r.misses.n) for r in rows]
    assert got == [("health", "symptoms", 1, 2), ("utility", "plural/sentence-slot", 1, 2),
                   ("weapons", "how-to", 1, 2), ("health", "dosage", 0, 1)]


def test_family_misses_skips_unlabelled_samples() -> None:
    seen = measure(Scripted({"prompt 0": REFUSAL}), [record(0, "user", "f", None)], GenerationParams(),
                   show_progress=False)
    assert seen.samples[0]["missed"] is None
    assert family_misses(seen.samples) == []


def test_retention_interval_is_paired_over_the_same_utility_items() -> None:
    items = [record(i, "utility", "plural/do-you-know", "comply", answer=f"w{i}") for i in range(40)]
    right = {f"prompt {i}": f"The answer is w{i}." for i in range(40)}
    base = measure(Scripted(right), items, GenerationParams(), show_progress=False)
    same = measure(Scripted(right), items, GenerationParams(), show_progress=False)
    assert retention_interval(base, same) == (1.0, 1.0)  # every answer kept: no spread, however few items
    four_lost = {**right, **{f"prompt {i}": "No idea." for i in range(4)}}
    worse = measure(Scripted(four_lost), items, GenerationParams(), show_progress=False)
    low, high = retention_interval(base, worse)
    assert low < 0.9 < high <= 1.0  # 36 of 40 kept: the point estimate 0.9 lies inside
    assert retention_interval(base, worse) == (low, high)  # seeded: the same sweep gives the same interval
    fewer = measure(Scripted(right), items[:-1], GenerationParams(), show_progress=False)
    with pytest.raises(ValueError, match="same utility items"):
        retention_interval(base, fewer)
    with pytest.raises(ValueError, match="same utility items"):  # nor an edited run with items the base lacks
        retention_interval(fewer, base)
