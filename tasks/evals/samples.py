"""Prompt records → inspect samples: which records a task takes, in an order that `--limit`
samples fairly, with the metadata the scorers' grouped metrics read."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain, zip_longest
from pathlib import Path

from inspect_ai.dataset import MemoryDataset, Sample

from tasks.benchmarks import load_benchmark
from tasks.errors import SuiteFormatError
from tasks.evals.targets import policy_targets, target_label
from tasks.suite.generate import SuiteCounts, generate_suite
from tasks.suite.records import SPLITS, Kind, PromptRecord

EMBEDDED = "embedded"
# The held-out splits do not depend on the train count: skip generating ~40k training items.
_HELD_OUT_COUNTS = SuiteCounts(train=0, train_per_utility_task=0, train_benign=0)


def suite_records(
    suite: str = EMBEDDED,
    data: str | Path | None = None,
    split: str = "test",
    seed: int = 0,
    mapping: str | Path | None = None,
) -> list[PromptRecord]:
    """One split of the embedded suite or of a real benchmark (`data`: local file or hub id)."""
    if split not in SPLITS:
        raise SuiteFormatError(f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")
    if suite == EMBEDDED:
        if data is not None or mapping is not None:
            raise SuiteFormatError("the embedded suite is generated: it takes no data or mapping")
        records = generate_suite(seed, SuiteCounts() if split == "train" else _HELD_OUT_COUNTS)
    else:
        records = load_benchmark(suite, data, mapping=mapping, seed=seed)
    return [r for r in records if r.split == split]


def interleaved(records: Sequence[PromptRecord], key: Callable[[PromptRecord], str]) -> list[PromptRecord]:
    """Round-robin over groups, so the first N samples (`--limit N`) cover every group."""
    groups: dict[str, list[PromptRecord]] = {}
    for record in records:
        groups.setdefault(key(record), []).append(record)
    return [r for r in chain.from_iterable(zip_longest(*groups.values())) if r is not None]


def utility_task(record: PromptRecord) -> str:
    """The embedded suite's utility task, a benchmark's own category, or the source."""
    return str(record.meta.get("task") or record.meta.get("benchmark_category") or record.source)


def answer_format(record: PromptRecord) -> str:
    multiple_choice = "choices" in record.meta or record.meta.get("task") == "choice"
    return "multiple_choice" if multiple_choice else "exact_match"


def to_sample(record: PromptRecord, targets: frozenset[str]) -> Sample:
    """The target is the checkable answer where there is one, else the expected behaviour."""
    metadata = {
        "id": record.id,
        "category": record.category,
        "kind": record.kind,
        "expected": record.expected,
        "target": target_label(record.category, targets),
        "source": record.source,
        "family": record.family,
    }
    if record.kind == "utility":
        metadata |= {"utility_task": utility_task(record), "format": answer_format(record)}
    return Sample(id=record.id, input=record.prompt, target=record.answer or record.expected or "",
                  metadata=metadata)


def task_dataset(
    name: str,
    kinds: tuple[Kind, ...],
    policy: str | None,
    suite: str,
    data: str | None,
    split: str,
    seed: int,
    mapping: str | None,
) -> MemoryDataset:
    """The samples of one task (`name`, for messages): the records of `kinds` in the chosen suite
    and split; utility items only where they have a checkable answer."""
    targets = policy_targets(policy)
    records = [r for r in suite_records(suite, data, split, seed, mapping)
               if r.kind in kinds and (r.kind != "utility" or r.answer is not None)]
    if not records:
        raise SuiteFormatError(
            f"task {name}: suite {suite!r} has no {'/'.join(kinds)} prompts in split {split!r}"
        )
    group = utility_task if kinds == ("utility",) else (lambda r: r.category)
    samples = [to_sample(r, targets) for r in interleaved(records, group)]
    return MemoryDataset(samples, name=f"{suite}:{split}", location=str(data) if data else suite)
