"""The method's subcommands (localize, edit, apply); the `cdelta` entry point adds the rest."""
from __future__ import annotations

import argparse

from cdelta.commands import Command, not_yet


def commands() -> list[Command]:
    """Subcommands that need nothing but the method itself."""
    return [
        not_yet("localize", "find the refusal circuit of a category with EAP-IG", issue=3),
        not_yet("edit", "compute a circuit-restricted weight update (ΔθC) for a policy", issue=4),
        not_yet("apply", "add one or more patches to a base model and write a plain checkpoint", issue=4),
    ]


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    for command in commands():
        command.add_to(sub)
