"""Which categories a policy targets, so that every sample can be labelled target or non-target.

tasks/ may not import cdelta, where policies drive editing; here only the label matters. A policy
is `refuse:CATEGORY` or `release:CATEGORY`, several joined by commas, or empty (no target).
"""
from __future__ import annotations

from typing import Literal

from tasks.errors import SuiteFormatError
from tasks.suite.categories import check_categories

ACTIONS = ("refuse", "release")
TargetLabel = Literal["target", "non_target"]


def policy_targets(policy: str | None) -> frozenset[str]:
    """The categories a policy names, checked to be ours."""
    if not policy:
        return frozenset()
    categories = []
    for part in policy.split(","):
        action, sep, category = part.strip().partition(":")
        if not sep or action not in ACTIONS or not category:
            raise SuiteFormatError(
                f"policy {part.strip()!r} is not of the form refuse:CATEGORY or release:CATEGORY "
                "(several joined by commas)"
            )
        categories.append(category)
    check_categories(categories)
    return frozenset(categories)


def target_label(category: str, targets: frozenset[str]) -> TargetLabel:
    return "target" if category in targets else "non_target"
