"""The benchmark's fixed prompt set: the same prompts, in the same order, for every backend."""
from __future__ import annotations

import random
from dataclasses import replace

from cdelta.errors import CdeltaError
from tasks.suite.categories import CATEGORIES
from tasks.suite.generate import SuiteCounts, generate_suite

DEFAULT_PROMPTS = 64
PROMPT_SEED = 0
# Each (category, split) of the suite draws from its own random stream, so the test split with no
# training items is the test split of the default counts, generated in a fraction of the time.
TEST_ONLY = replace(SuiteCounts(), train=0, train_per_utility_task=0, train_benign=0)


def check_batch_sizes(batch_sizes: tuple[int, ...], prompts: int) -> None:
    """A batch size above the run's prompt count would be measured as a batch of the prompt count, and labelled
    with the larger size."""
    too_large = [b for b in batch_sizes if b > prompts]
    if too_large:
        raise CdeltaError(f"batch size {too_large[0]} is larger than the {prompts} prompts of a run: its batches "
                          f"would hold {prompts}; ask for at least {max(too_large)} prompts, or smaller batch sizes")


def bench_prompts(n: int = DEFAULT_PROMPTS, seed: int = PROMPT_SEED) -> list[str]:
    """`n` test-split prompts of the embedded suite, dealt round-robin over the categories so each
    category weighs the same, in a seeded order: prompt length and CAST's condition see a fixed mix."""
    if n < 1:
        raise CdeltaError(f"--prompts must be at least 1, got {n}")
    by_category: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for record in generate_suite(0, TEST_ONLY):
        if record.split == "test":
            by_category[record.category].append(record.prompt)
    rng = random.Random(f"bench/{seed}")
    for prompts in by_category.values():
        rng.shuffle(prompts)
    dealt = [prompts[i] for i in range(max(map(len, by_category.values())))
             for prompts in by_category.values() if i < len(prompts)]
    if n > len(dealt):
        raise CdeltaError(f"--prompts {n} is more than the {len(dealt)} prompts of the suite's test split; ask for fewer")
    return dealt[:n]
