"""`cdelta leaderboard REPORT... [-o OUT]...`: rank runs' backends by selectivity, one table per
policy, on the console and into Markdown, HTML and CSV files."""
from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from cdelta.atomic import atomic_write_text
from cdelta.commands import Command
from harness.reporting.leaderboard import Section, sections
from harness.reporting.leaderboard_formats import to_csv, to_html, to_markdown, to_rich
from harness.reporting.log_console import log_console
from harness.reporting.report_input import load_report
from harness.reporting.score import SCORE_FORMULA

WRITERS: dict[str, Callable[[Sequence[Section]], str]] = {".md": to_markdown, ".html": to_html, ".csv": to_csv}


def outputs(paths: Sequence[str]) -> list[Path]:
    """A path ending in .md, .html or .csv is that file; any other path is a stem that gets all three."""
    out: list[Path] = []
    for text in paths:
        path = Path(text)
        out += [path] if path.suffix in WRITERS else [path.with_name(path.name + suffix) for suffix in WRITERS]
    return list(dict.fromkeys(out))


def _run(args: argparse.Namespace) -> int:
    board = sections([load_report(Path(p)) for p in args.reports])
    console = log_console(240)
    for section in board:
        console.print(to_rich(section))
        for note in section.notes:
            console.print(f"note: {note}", markup=False, soft_wrap=True)
    console.print(f"score = {SCORE_FORMULA}", markup=False, soft_wrap=True)
    for path in outputs(args.output):
        atomic_write_text(path, WRITERS[path.suffix](board))
        console.print(f"wrote {path}", markup=False, soft_wrap=True)
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports", nargs="+", help="report.json files (or their folders), e.g. reports/*/report.json")
    parser.add_argument("-o", "--output", action="append", default=[], metavar="OUT",
                        help="leaderboard.md, leaderboard.html or leaderboard.csv; a path with any other ending "
                             "is a stem that gets all three; repeatable (default: console only)")


def leaderboard_command() -> Command:
    return Command("leaderboard", "rank reports' backends by selectivity score, one table per policy",
                   _configure, _run)
