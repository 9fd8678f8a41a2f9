"""The real benchmarks by name, and the one path every one of them takes to PromptRecords:
read (local file or hub) → parse (its format) → map categories → split → records."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tasks.benchmarks import formats
from tasks.benchmarks.items import Item
from tasks.benchmarks.mapping import UNMAPPED_PREFIX, CategoryMapping, load_mapping
from tasks.benchmarks.sources import HubSource, is_hub_id, read_hub, read_local
from tasks.benchmarks.splits import check_dev_fraction, hash_split
from tasks.errors import SuiteFormatError
from tasks.suite.categories import CATEGORY_KINDS
from tasks.suite.records import PromptRecord


@dataclass(frozen=True)
class BenchmarkSpec:
    """A benchmark: its parser, the published format (named in every error), its hub copy and,
    for a CSV that may come without a header row, the columns it stands for."""

    name: str
    parse: Callable[[Any], list[Item]]
    expected: str
    hub: HubSource = field(default_factory=HubSource)
    csv_header: tuple[str, ...] | None = None


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec(
            "xstest",
            formats.parse_xstest,
            "XSTest xstest_prompts.csv: CSV with columns id, prompt, type, label (safe/unsafe), focus, note",
            HubSource("walledai/XSTest", split="test"),
        ),
        BenchmarkSpec(
            "catqa",
            formats.parse_catqa,
            "CatQA catqa_english.json: JSON {category: {subcategory: [questions]}}, "
            "or rows of Category, Subcategory, Question",
            HubSource("declare-lab/CategoricalHarmfulQA", split="en"),
        ),
        BenchmarkSpec(
            "sorry_bench",
            formats.parse_sorry_bench,
            "SORRY-Bench question.jsonl: one JSON object per line with question_id, category "
            "(number 1-44), turns (list of one prompt), optional prompt_style",
            HubSource("sorry-bench/sorry-bench-202503"),
        ),
        BenchmarkSpec(
            "advbench",
            formats.parse_advbench,
            "AdvBench harmful_behaviors.csv: CSV with columns goal, target",
            HubSource("walledai/AdvBench", renames={"prompt": "goal"}),
        ),
        BenchmarkSpec(
            "harmbench",
            formats.parse_harmbench,
            "HarmBench behaviors CSV: columns Behavior, FunctionalCategory, SemanticCategory, Tags, "
            "ContextString, BehaviorID",
            HubSource(
                "walledai/HarmBench",
                config="standard",
                renames={"prompt": "Behavior", "category": "SemanticCategory", "context": "ContextString"},
            ),
        ),
        BenchmarkSpec(
            "strongreject",
            formats.parse_strongreject,
            "StrongREJECT strongreject_dataset.csv: CSV with columns category, source, forbidden_prompt",
            HubSource("walledai/StrongREJECT", renames={"prompt": "forbidden_prompt"}),
        ),
        BenchmarkSpec(
            "cast",
            formats.parse_cast,
            "CAST-style rewrites: JSON list of rows {category: prompt, ...} (one key per category), "
            'or {"train": [rows], "test": [rows]}',
        ),
        BenchmarkSpec(
            "alpaca",
            formats.parse_alpaca,
            "Alpaca-style instructions: JSON list of {instruction, input (optional), output (optional)}",
            HubSource("tatsu-lab/alpaca"),
        ),
        BenchmarkSpec(
            "mmlu",
            formats.parse_mmlu,
            "MMLU-style multiple choice: CSV or JSON rows of question, A, B, C, D, answer (letter), "
            "or question, choices (list of 4), answer (letter or index), optional subject; "
            "a header-less CSV is read as question, A, B, C, D, answer",
            HubSource("cais/mmlu", config="all", split="test"),
            csv_header=formats.MMLU_HEADERLESS,
        ),
        BenchmarkSpec(
            "jsonl",
            formats.parse_jsonl_suite,
            "prompt suite JSONL: one JSON object per line with prompt, category, optional split "
            "(train/dev/test), optional id",
        ),
    )
}


def load_benchmark(
    name: str,
    source: str | Path | None = None,
    *,
    mapping: str | Path | None = None,
    seed: int = 0,
    dev_fraction: float = 0.5,
    hub_config: str | None = None,
    hub_split: str | None = None,
) -> list[PromptRecord]:
    """Records of benchmark `name` read from `source`: a local file, a hub id, or (None) the
    benchmark's default hub copy. `mapping` replaces the packaged category mapping; `seed` and
    `dev_fraction` fix the dev/test split of benchmarks whose file assigns none."""
    spec = benchmark_spec(name)
    check_dev_fraction(dev_fraction)
    category_mapping = load_mapping(name, mapping)
    where, read = _reader(spec, source, hub_config, hub_split)
    try:
        items = spec.parse(read())
    except SuiteFormatError as error:
        raise SuiteFormatError(f"{where}: {error}; expected {spec.expected}") from error
    if not items:
        raise SuiteFormatError(f"{where}: no prompts found; expected {spec.expected}")
    return [
        _record(spec.name, item, category_mapping, seed, dev_fraction) for item in _unique_ids(items)
    ]


def benchmark_spec(name: str) -> BenchmarkSpec:
    """The spec of a benchmark by name, with a clear error listing the known ones."""
    if name not in BENCHMARKS:
        raise SuiteFormatError(f"unknown benchmark {name!r}; known benchmarks: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def _reader(
    spec: BenchmarkSpec, source: str | Path | None, hub_config: str | None, hub_split: str | None
) -> tuple[str, Callable[[], Any]]:
    """Where the data is, for messages, and how to read it."""
    hub_id = spec.hub.id if source is None else str(source) if is_hub_id(source) else None
    if hub_id is not None:
        hub = replace(spec.hub, config=hub_config or spec.hub.config, split=hub_split or spec.hub.split)
        return hub_id, lambda: read_hub(hub_id, hub)
    if source is None:
        raise SuiteFormatError(f"{spec.name} has no hub copy: give a local file ({spec.expected})")
    path = Path(source)
    return str(path), lambda: read_local(path, spec.csv_header)


def _unique_ids(items: list[Item]) -> list[Item]:
    """Number repeated ids (benchmarks do repeat prompts) so every record id is unique; a repeat
    keeps the first one's family, so the same prompt never lands in two splits."""
    seen: dict[str, int] = {}
    unique = []
    for item in items:
        seen[item.id] = seen.get(item.id, 0) + 1
        count = seen[item.id]
        unique.append(item if count == 1 else replace(item, id=f"{item.id}~{count}", family=item.family or item.id))
    return unique


def _record(
    benchmark: str, item: Item, mapping: CategoryMapping, seed: int, dev_fraction: float
) -> PromptRecord:
    category = mapping.resolve(item.category)
    kind = item.unmapped_kind if category.startswith(UNMAPPED_PREFIX) else CATEGORY_KINDS[category]
    family = item.family or item.id
    return PromptRecord(
        id=f"{benchmark}-{item.id}",
        prompt=item.prompt,
        category=category,
        kind=kind,
        split=item.split or hash_split(benchmark, family, seed, dev_fraction),
        family=family,
        source=benchmark,
        expected=item.expected,
        response=item.response,
        answer=item.answer,
        meta={"benchmark_category": item.category, **item.meta},
    )
