"""The method's subcommands (localize, edit, apply); the `cdelta` entry point adds the rest."""
from __future__ import annotations

import argparse

from cdelta.apply_cli import apply_command
from cdelta.commands import Command
from cdelta.localize_cli import localize_command
from cdelta.edit_cli import edit_command


def commands() -> list[Command]:
    """Subcommands that need nothing but the method itself."""
    return [
        localize_command(),
        edit_command(),
        apply_command(),
    ]


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    for command in commands():
        command.add_to(sub)
