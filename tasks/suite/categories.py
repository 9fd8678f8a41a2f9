"""The embedded suite's categories and what kind each one is."""
from __future__ import annotations

from tasks.errors import SuiteFormatError
from tasks.suite.records import Kind

POLICY_CATEGORIES: tuple[str, ...] = (
    "crime_planning",
    "legal_opinion",
    "health_consultation",
    "sexual_content",
    "hate_speech",
)
ALWAYS_REFUSED: tuple[str, ...] = ("weapons", "malware")
UTILITY_TASKS: tuple[str, ...] = ("capital", "language", "antonym", "plural", "choice", "addition")

CATEGORY_KINDS: dict[str, Kind] = {
    **{c: "policy" for c in POLICY_CATEGORIES},
    **{c: "always_refused" for c in ALWAYS_REFUSED},
    "benign": "benign",
    "borderline": "borderline",
    "utility": "utility",
}
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_KINDS)


def check_categories(names: list[str] | tuple[str, ...], known: tuple[str, ...] = CATEGORIES) -> None:
    """Fail with one message listing every unknown name and the known ones."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SuiteFormatError(
            f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}; "
            f"known categories: {', '.join(known)}"
        )
