"""`cdelta organism build|eval`: the reference model organism."""
from __future__ import annotations

from cdelta.commands import Command, not_yet


def organism_command() -> Command:
    return not_yet("organism", "build or evaluate the reference model organism", issue=2)
