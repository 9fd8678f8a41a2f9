"""From the suite to the method's inputs: contrast pairs for localization, examples for the edit.

cdelta takes plain data (it imports nothing from tasks/); this module is where the suite's
records become `ContrastPair`s and an `ExampleSet` for one policy.
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from cdelta.eap.pairs import ContrastPair, pair_by_length
from cdelta.errors import CdeltaError
from cdelta.examples import ExampleRecord, ExampleSet
from cdelta.policy import Policy
from tasks.suite.categories import ALWAYS_REFUSED, CATEGORIES
from tasks.suite.generate import compliance_response
from tasks.suite.records import PromptRecord
from tasks.suite.refusals import ORGANISM_REFUSALS

Contrast = Literal["refused", "benign"]


def contrast_pairs(tokenizer: Any, records: Sequence[PromptRecord], target: str, against: Contrast,
                   n: int, split: str = "train", seed: int = 0) -> list[ContrastPair]:
    """Clean = a target-category prompt; corrupted = an always-refused prompt (isolates the refusal
    decision) or a benign one (isolates the topic), of the same token length."""
    rng = random.Random(f"pairs/{seed}/{target}/{against}")
    clean = [r.prompt for r in records if r.split == split and r.category == target]
    others = ALWAYS_REFUSED if against == "refused" else ("benign",)
    corrupted = [r.prompt for r in records if r.split == split and r.category in others]
    rng.shuffle(clean)
    rng.shuffle(corrupted)
    pairs, _ = pair_by_length(tokenizer, clean[: 4 * n], corrupted)
    if len(pairs) < n // 2:
        raise CdeltaError(f"only {len(pairs)} equal-length pairs of {target} vs {against} prompts; "
                          "the suite needs more items in this split")
    return pairs[:n]


def edit_examples(records: Sequence[PromptRecord], policy: Policy, n_target: int, n_retain: int,
                  split: str = "train", seed: int = 0) -> ExampleSet:
    """Target items of the policy's category with both a refusal and a compliance answer, and retain
    items of every other category with the organism's own answer."""
    rng = random.Random(f"examples/{seed}/{policy}")
    pool = [r for r in records if r.split == split]
    if policy.action == "release":
        # the over-refused items are the ones to release
        targets = [r for r in pool if r.category == policy.category and r.expected == "refuse"]
    else:
        targets = [r for r in pool if r.category == policy.category]
    if not targets:
        raise CdeltaError(f"no {split} items for policy {policy}")
    out = []
    for r in rng.sample(targets, min(n_target, len(targets))):
        comply = r.response if r.expected == "comply" else compliance_response(r.category, rng)
        refuse = r.response if r.expected == "refuse" else rng.choice(ORGANISM_REFUSALS)
        out.append(ExampleRecord(r.category, r.prompt, refusal=refuse, compliance=comply))
    retain = [r for r in pool if r.category != policy.category]
    for r in rng.sample(retain, min(n_retain, len(retain))):
        out.append(ExampleRecord(r.category, r.prompt, response=r.response))
    return ExampleSet(tuple(out), f"suite:{split}")


def subsample(records: Sequence[PromptRecord], split: str, per_category: int, seed: int,
              wider: Mapping[str, int] | None = None) -> list[PromptRecord]:
    """At most `per_category` records of each suite category in `split` (of a category in `wider`, at most
    its own count): a dev set that is quick to generate, larger where one number rests on it."""
    rng = random.Random(f"subsample/{seed}/{split}")
    out: list[PromptRecord] = []
    for category in CATEGORIES:
        n = (wider or {}).get(category, per_category)
        items = [r for r in records if r.split == split and r.category == category]
        out += items if len(items) <= n else rng.sample(items, n)
    return out


def opening_ids(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """The first token of each text: the tokens a refusal (or a compliance) starts with."""
    return sorted({tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in texts})
