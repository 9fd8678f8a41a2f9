"""One way to name what is wrong in a file that pydantic rejected: the first problem, by key."""
from __future__ import annotations

from pydantic import ValidationError


def first_problem(exc: ValidationError) -> str:
    """`key.path: message (N problems)` — enough to find and fix the first mistake."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return f"{where}: {first['msg']} ({exc.error_count()} problems)"
