"""The `cdelta` console script: the method's subcommands plus the harness's."""
from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape

import cdelta.cli
from cdelta.commands import Command
from cdelta.errors import CdeltaError


def harness_commands() -> list[Command]:
    from harness.bench.cli import bench_command
    from harness.demo import demo_command
    from harness.evaluation.cli import eval_command
    from harness.organism.cli import organism_command
    from harness.reporting.check_cli import check_command
    from harness.reporting.cli import report_command
    from harness.run_cli import run_command
    from harness.reporting.leaderboard_cli import leaderboard_command
    from harness.steer_cli import steer_command

    return [
        organism_command(),
        demo_command(),
        steer_command(),
        eval_command(),
        bench_command(),
        report_command(),
        check_command(),
        leaderboard_command(),
        run_command(),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdelta",
        description="C-Δθ: circuit-restricted weight arithmetic for selective refusal, and its harness.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    cdelta.cli.register(sub)
    for command in harness_commands():
        command.add_to(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "_handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except CdeltaError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        Console(stderr=True).print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
