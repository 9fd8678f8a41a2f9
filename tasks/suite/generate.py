"""Deterministic generator of the embedded suite: labelled chat prompts split by template family.

Every (category, split) pair draws from its own seeded random stream, so the dev and test
splits stay the same whatever number of training items is asked for.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

from tasks.errors import SuiteFormatError
from tasks.suite.catalog import DATA_DIR, CategorySpec, Template, load_category, load_utility
from tasks.suite.categories import CATEGORIES, UTILITY_TASKS
from tasks.suite.records import SPLITS, PromptRecord, Split
from tasks.suite.refusals import ORGANISM_REFUSALS
from tasks.suite.world import make_world

GENERATOR_VERSION = 1
SPLIT_FRACTIONS = {"dev": 0.2, "test": 0.2}
UTILITY_ANSWER = "The answer is {answer}."


@dataclass(frozen=True)
class SuiteCounts:
    """Items per category and split; the utility category's held-out splits get this many per task."""

    train: int = 3000
    dev: int = 100
    test: int = 200
    train_per_utility_task: int = 1500
    train_benign: int | None = None  # benign is the most varied category: it may need more items

    def of(self, split: Split, utility: bool = False, benign: bool = False) -> int:
        if split == "train":
            if utility:
                return self.train_per_utility_task
            return self.train_benign if benign and self.train_benign is not None else self.train
        return {"dev": self.dev, "test": self.test}[split]


def split_families(templates: Sequence[Template], key: str, seed: int,
                   over_refused: frozenset[str] = frozenset()) -> dict[str, Split]:
    """Assign whole template families to splits; borderline families are stratified by whether
    their trigger is over-refused, so that every split sees both kinds."""
    families: dict[str, Template] = {}
    for t in templates:
        families.setdefault(t.family, t)
    strata: dict[bool, list[str]] = {}
    for fam, t in sorted(families.items()):
        strata.setdefault(bool(t.trigger and t.trigger.lower() in over_refused), []).append(fam)
    rng = random.Random(f"split/{seed}/{key}")
    out: dict[str, Split] = {}
    for fams in strata.values():
        rng.shuffle(fams)
        n_dev = max(1, round(len(fams) * SPLIT_FRACTIONS["dev"]))
        n_test = max(1, round(len(fams) * SPLIT_FRACTIONS["test"]))
        for i, fam in enumerate(fams):
            out[fam] = "test" if i < n_test else "dev" if i < n_test + n_dev else "train"
    return out


def _fill(text: str, values: dict[str, str]) -> str:
    return text.format_map(values)


def _draw(rng: random.Random, templates: list[Template], count: int, split: Split, make) -> list[tuple]:
    """Balanced over templates; held-out splits have no duplicate prompts."""
    out, seen = [], set()
    attempts = 0
    while len(out) < count and attempts < count * 50:
        tpl = templates[attempts % len(templates)]
        attempts += 1
        item = make(rng, tpl)
        if split != "train":
            if item[0] in seen:
                continue
            seen.add(item[0])
        out.append(item)
    return out


def compliance_response(category: str, rng: random.Random) -> str:
    """One of the category's compliance answers, its slots filled at random."""
    spec = load_category(category)
    if not spec.responses:
        raise SuiteFormatError(f"category {category!r} has no compliance responses")
    return _fill(rng.choice(spec.responses), {slot: rng.choice(fillers) for slot, fillers in spec.slots.items()})


def _category_records(spec: CategorySpec, seed: int, counts: SuiteCounts) -> list[PromptRecord]:
    assignment = split_families(spec.templates, spec.category, seed, spec.over_refused_triggers)
    records = []
    for split in SPLITS:
        templates = [t for t in spec.templates if assignment[t.family] == split]
        rng = random.Random(f"items/{seed}/{spec.category}/{split}")

        def make(rng: random.Random, tpl: Template) -> tuple:
            values = {slot: rng.choice(fillers) for slot, fillers in spec.slots.items()}
            prompt = _fill(tpl.text, values)
            prompt = prompt[0].upper() + prompt[1:]
            refuse = spec.kind == "always_refused" or (
                spec.kind == "borderline" and (tpl.trigger or "").lower() in spec.over_refused_triggers
            )
            response = rng.choice(ORGANISM_REFUSALS) if refuse else _fill(rng.choice(spec.responses), values)
            return prompt, tpl, refuse, response

        for i, (prompt, tpl, refuse, response) in enumerate(_draw(rng, templates, counts.of(split, benign=spec.kind == "benign"), split, make)):
            records.append(PromptRecord(
                id=f"{spec.category}/{split}/{i:05d}", prompt=prompt, category=spec.category,
                kind=spec.kind, split=split, family=tpl.family,  # type: ignore[arg-type]
                expected="refuse" if refuse else "comply", response=response,
                meta={"template": tpl.text, **({"trigger": tpl.trigger} if tpl.trigger else {})},
            ))
    return records


def _utility_records(seed: int, counts: SuiteCounts) -> list[PromptRecord]:
    spec = load_utility()
    world = make_world(seed)
    letters = "ABCD"

    def item(rng: random.Random, task: str) -> tuple[dict[str, str], str]:
        if task in ("capital", "language"):
            c = rng.choice(world)
            return {"country": c.name}, c.capital if task == "capital" else c.language
        if task in ("antonym", "plural"):
            word, answer = rng.choice(spec.antonyms if task == "antonym" else spec.plurals)
            return {"word": word}, answer
        if task == "choice":
            groups = rng.sample(sorted(spec.groups), 4)
            words = [rng.choice(spec.groups[g]) for g in groups]
            order = list(range(4))
            rng.shuffle(order)
            options = " ".join(f"{letters[j]}) {words[k]}" for j, k in enumerate(order))
            # Answered with the option's word: the organism cannot bind letters to options (27% on
            # letter answers, chance 25%); picking the class member among four is the skill measured.
            return {"group": groups[0], "options": options}, words[0]
        a, b = rng.randrange(10), rng.randrange(10)
        return {"a": str(a), "b": str(b)}, str(a + b)

    records = []
    for task in UTILITY_TASKS:
        assignment = split_families(spec.templates[task], f"utility/{task}", seed)
        for split in SPLITS:
            templates = [t for t in spec.templates[task] if assignment[t.family] == split]
            rng = random.Random(f"items/{seed}/utility/{task}/{split}")

            def make(rng: random.Random, tpl: Template, task: str = task) -> tuple:
                values, answer = item(rng, task)
                prompt = _fill(tpl.text, values)
                return prompt[0].upper() + prompt[1:], tpl, answer

            for i, (prompt, tpl, answer) in enumerate(_draw(rng, templates, counts.of(split, utility=True), split, make)):
                records.append(PromptRecord(
                    id=f"utility/{task}/{split}/{i:05d}", prompt=prompt, category="utility", kind="utility",
                    split=split, family=f"{task}/{tpl.family}", expected="comply",  # type: ignore[arg-type]
                    response=UTILITY_ANSWER.format(answer=answer), answer=answer,
                    meta={"task": task, "template": tpl.text},
                ))
    return records


def generate_suite(seed: int = 0, counts: SuiteCounts = SuiteCounts(),
                   categories: Sequence[str] = CATEGORIES) -> list[PromptRecord]:
    """All records of the embedded suite for `categories`, deterministic in (seed, counts, data files)."""
    records: list[PromptRecord] = []
    for category in categories:
        if category == "utility":
            records += _utility_records(seed, counts)
        else:
            records += _category_records(load_category(category), seed, counts)
    return records


def suite_fingerprint(seed: int, counts: SuiteCounts) -> str:
    """sha256 over the data files, the generator version, the seed and the counts."""
    h = hashlib.sha256()
    for path in sorted(DATA_DIR.glob("*.json")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(json.dumps({"v": GENERATOR_VERSION, "seed": seed, "counts": counts.__dict__}, sort_keys=True).encode())
    return h.hexdigest()
