"""A tiny registry for CLI subcommands, so each module declares its own without a central switch."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    """One `cdelta <name>` subcommand: how to parse its arguments and what to run."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Handler

    def add_to(self, sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
        parser = sub.add_parser(self.name, help=self.help, description=self.help)
        self.configure(parser)
        parser.set_defaults(_handler=self.run)
