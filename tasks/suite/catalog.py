"""Loads and validates the hand-written category files in tasks/suite/data/ (see FORMAT.md)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tasks.errors import SuiteFormatError
from tasks.suite.categories import CATEGORY_KINDS, UTILITY_TASKS

DATA_DIR = Path(__file__).parent / "data"
_SLOT = re.compile(r"\{(\w+)\}")
MIN_TEMPLATES = 30


@dataclass(frozen=True)
class Template:
    family: str
    text: str
    trigger: str | None = None

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(_SLOT.findall(self.text))


@dataclass(frozen=True)
class CategorySpec:
    """One prompt category: its templates, slot fillers and compliance responses."""

    category: str
    kind: str
    templates: tuple[Template, ...]
    slots: dict[str, tuple[str, ...]]
    responses: tuple[str, ...]
    over_refused_triggers: frozenset[str] = frozenset()


@dataclass(frozen=True)
class UtilitySpec:
    """The utility category: templates per task and the word lists its answers come from."""

    templates: dict[str, tuple[Template, ...]]
    antonyms: tuple[tuple[str, str], ...]
    plurals: tuple[tuple[str, str], ...]
    groups: dict[str, tuple[str, ...]]


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteFormatError(f"suite data file {path} is missing; see {DATA_DIR / 'FORMAT.md'}") from None
    except json.JSONDecodeError as exc:
        raise SuiteFormatError(f"{path} is not valid JSON ({exc}); see {DATA_DIR / 'FORMAT.md'}") from None
    if not isinstance(data, dict):
        raise SuiteFormatError(f"{path} must hold a JSON object; see {DATA_DIR / 'FORMAT.md'}")
    return data


def _templates(raw: Any, where: str, declared: set[str] | None) -> tuple[Template, ...]:
    if not isinstance(raw, list) or not raw:
        raise SuiteFormatError(f"{where}: 'templates' must be a non-empty list of {{family, text}} objects")
    out = []
    for i, t in enumerate(raw):
        if not isinstance(t, dict) or not isinstance(t.get("family"), str) or not isinstance(t.get("text"), str):
            raise SuiteFormatError(f"{where}: template #{i} needs string fields 'family' and 'text'")
        tpl = Template(t["family"], t["text"], t.get("trigger"))
        if not tpl.slots:
            raise SuiteFormatError(f"{where}: template {tpl.text!r} uses no slot")
        if declared is not None and (missing := set(tpl.slots) - declared):
            raise SuiteFormatError(f"{where}: template {tpl.text!r} uses undeclared slots {sorted(missing)}")
        out.append(tpl)
    return tuple(out)


@lru_cache(maxsize=None)
def load_category(category: str, data_dir: Path = DATA_DIR) -> CategorySpec:
    """Read and validate one prompt category file."""
    path = data_dir / f"{category}.json"
    data = _read(path)
    where = str(path)
    kind = CATEGORY_KINDS.get(category)
    if data.get("category") != category or data.get("kind") != kind:
        raise SuiteFormatError(f"{where}: expected category {category!r} of kind {kind!r}")
    slots_raw = data.get("slots")
    if not isinstance(slots_raw, dict) or not all(
        isinstance(v, list) and v and all(isinstance(x, str) for x in v) for v in slots_raw.values()
    ):
        raise SuiteFormatError(f"{where}: 'slots' must map slot names to non-empty lists of strings")
    slots = {k: tuple(v) for k, v in slots_raw.items()}
    templates = _templates(data.get("templates"), where, set(slots))
    if len(templates) < MIN_TEMPLATES:
        raise SuiteFormatError(f"{where}: {len(templates)} templates, at least {MIN_TEMPLATES} are required")
    responses = tuple(data.get("responses", ()))
    if kind != "always_refused":
        if not responses:
            raise SuiteFormatError(f"{where}: 'responses' (compliance answers) are required for kind {kind}")
        for r in responses:
            if missing := set(_SLOT.findall(r)) - set(slots):
                raise SuiteFormatError(f"{where}: response {r!r} uses undeclared slots {sorted(missing)}")
    triggers = frozenset(data.get("over_refused_triggers", ()))
    if kind == "borderline":
        for t in templates:
            if not t.trigger or t.trigger.lower() not in t.text.lower():
                raise SuiteFormatError(f"{where}: borderline template {t.text!r} needs a 'trigger' found in its text")
        if not triggers:
            raise SuiteFormatError(f"{where}: borderline needs 'over_refused_triggers'")
    return CategorySpec(category, kind, templates, slots, responses, triggers)


@lru_cache(maxsize=None)
def load_utility(data_dir: Path = DATA_DIR) -> UtilitySpec:
    """Read and validate the utility file: templates per task and its word lists."""
    path = data_dir / "utility.json"
    data = _read(path)
    tasks = data.get("tasks")
    if not isinstance(tasks, dict) or set(tasks) != set(UTILITY_TASKS):
        raise SuiteFormatError(f"{path}: 'tasks' must have exactly the tasks {', '.join(UTILITY_TASKS)}")
    required = {
        "capital": {"country"}, "language": {"country"}, "antonym": {"word"},
        "plural": {"word"}, "choice": {"group", "options"}, "addition": {"a", "b"},
    }
    templates = {}
    for task, spec in tasks.items():
        tpls = _templates(spec.get("templates") if isinstance(spec, dict) else None, f"{path} task {task}", None)
        for t in tpls:
            if set(t.slots) != required[task]:
                raise SuiteFormatError(f"{path}: {task} template {t.text!r} must use exactly {sorted(required[task])}")
        templates[task] = tpls

    def pairs(key: str) -> tuple[tuple[str, str], ...]:
        raw = data.get(key)
        if not isinstance(raw, list) or not all(isinstance(p, list) and len(p) == 2 for p in raw):
            raise SuiteFormatError(f"{path}: {key!r} must be a list of [word, answer] pairs")
        return tuple((str(a), str(b)) for a, b in raw)

    groups = data.get("groups")
    if not isinstance(groups, dict) or len(groups) < 4:
        raise SuiteFormatError(f"{path}: 'groups' must map at least 4 classes to lists of member words")
    return UtilitySpec(templates, pairs("antonyms"), pairs("plurals"), {k: tuple(v) for k, v in groups.items()})
