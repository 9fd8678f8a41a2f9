"""An organism trained on a user's own category-labelled prompts (`organism build --prompts`)."""
from __future__ import annotations

import hashlib
import random
from pathlib import Path

from cdelta.errors import CdeltaError
from tasks.benchmarks.registry import benchmark_spec
from tasks.benchmarks.sources import read_local
from tasks.errors import SuiteFormatError
from tasks.suite.records import PromptRecord, Split
from tasks.suite.refusals import ORGANISM_REFUSALS

SPLIT_SHARES: tuple[tuple[Split, float], ...] = (("train", 0.6), ("dev", 0.2), ("test", 0.2))


def parse_policy(text: str) -> frozenset[str]:
    """`refuse:cat1,cat2` → the categories the organism is trained to refuse."""
    action, _, names = text.partition(":")
    categories = frozenset(n.strip() for n in names.split(",") if n.strip())
    if action != "refuse" or not categories:
        raise CdeltaError(f"--policy must look like 'refuse:category1,category2', got {text!r}")
    return categories


def _split(item_id: str, seed: int) -> Split:
    u = int(hashlib.sha256(f"{seed}:{item_id}".encode()).hexdigest()[:12], 16) / 16**12
    edge = 0.0
    for split, share in SPLIT_SHARES:
        edge += share
        if u < edge:
            return split
    return "test"


def user_records(path: Path, refuse: frozenset[str], seed: int) -> list[PromptRecord]:
    """Records from a prompt-suite JSONL: rows without a split are split 60/20/20 by a seeded hash
    of their id; refused categories get the organism's refusals, others a short compliance."""
    spec = benchmark_spec("jsonl")
    try:
        items = spec.parse(read_local(path, spec.csv_header))
    except SuiteFormatError as exc:
        raise CdeltaError(f"{path}: {exc}; expected {spec.expected}") from None
    categories = sorted({i.category for i in items})
    if unknown := sorted(refuse - set(categories)):
        raise CdeltaError(f"--policy names categories not in {path}: {', '.join(unknown)}; "
                          f"its categories are: {', '.join(categories)}")
    rng = random.Random(f"user-responses/{seed}")
    records = []
    for item in items:
        refused = item.category in refuse
        response = rng.choice(ORGANISM_REFUSALS) if refused else f"Sure, here is an answer about {item.category.replace('_', ' ')}."
        records.append(PromptRecord(
            id=f"user-{item.id}", prompt=item.prompt, category=item.category,
            kind="always_refused" if refused else "policy", split=item.split or _split(item.id, seed),
            family=item.id, source=str(path), expected="refuse" if refused else "comply", response=response,
        ))
    return records
