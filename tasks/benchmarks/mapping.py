"""From a benchmark's own categories to ours, through a JSON file a user can replace.

File format (schema_version 1):

    {"schema_version": 1, "benchmark": "xstest",
     "categories": {"homonyms": "borderline", ...},
     "default": null}

A name listed in `categories` maps to its value; a name that already is one of our categories
maps to itself; anything else maps to `default` when it is set, and otherwise stays visible as
`other:<name>`. Values must be our categories. A user mapping replaces the packaged one whole.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tasks.errors import SuiteFormatError
from tasks.suite.categories import CATEGORIES

SCHEMA_VERSION = 1
MAPPINGS_DIR = Path(__file__).parent / "mappings"
UNMAPPED_PREFIX = "other:"
MAPPING_FORMAT = (
    'a JSON object {"schema_version": 1, "benchmark": NAME, "categories": {BENCHMARK_CATEGORY: '
    f'OUR_CATEGORY}}, "default": OUR_CATEGORY or null}}, our categories being {", ".join(CATEGORIES)}'
)


@dataclass(frozen=True)
class CategoryMapping:
    """A benchmark's category names mapped to ours."""

    benchmark: str
    categories: dict[str, str]
    default: str | None = None

    def resolve(self, name: str) -> str:
        """Our category for a benchmark category (or `other:<name>` when nothing maps it)."""
        if name in self.categories:
            return self.categories[name]
        if name in CATEGORIES:
            return name
        return self.default or f"{UNMAPPED_PREFIX}{name}"


def packaged_mapping_path(benchmark: str) -> Path:
    """The mapping shipped with the package for a benchmark."""
    return MAPPINGS_DIR / f"{benchmark}.json"


def load_mapping(benchmark: str, path: str | Path | None = None) -> CategoryMapping:
    """Read the user's mapping at `path`, or the packaged one for `benchmark`."""
    where = Path(path) if path is not None else packaged_mapping_path(benchmark)
    if not where.is_file():
        raise SuiteFormatError(f"{where}: no such mapping file; expected {MAPPING_FORMAT}")
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise SuiteFormatError(f"{where}: not valid JSON ({error.msg}); expected {MAPPING_FORMAT}") from error
    try:
        return _parse(data)
    except SuiteFormatError as error:
        raise SuiteFormatError(f"{where}: {error}; expected {MAPPING_FORMAT}") from error


def _parse(data: object) -> CategoryMapping:
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise SuiteFormatError(f"schema_version must be {SCHEMA_VERSION}")
    categories = data.get("categories", {})
    if not isinstance(categories, dict) or not all(isinstance(k, str) for k in categories):
        raise SuiteFormatError("categories must be an object of names")
    default = data.get("default")
    unknown = sorted({str(v) for v in categories.values() if v not in CATEGORIES})
    if default is not None and default not in CATEGORIES:
        unknown.append(str(default))
    if unknown:
        raise SuiteFormatError(f"not our categories: {', '.join(unknown)}")
    return CategoryMapping(benchmark=str(data.get("benchmark", "")), categories=dict(categories), default=default)
