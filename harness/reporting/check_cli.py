"""`cdelta check NEW --baseline OLD`: the regression gate a model team runs in CI. Exit 0 when
every criterion passes, 1 when any regressed (each named, with how far and against which
limit), 2 when the reports cannot be compared."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from cdelta.atomic import atomic_write_text
from cdelta.commands import Command
from harness.reporting.gate import CheckVerdict, CriterionVerdict, Limits, check
from harness.reporting.log_console import log_console
from harness.reporting.report_input import load_report
from harness.reporting.schema import dump_json_model

DEFAULTS = Limits()


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1 (0.02 = 2 percentage points)")
    return value


def _pts(value: float) -> str:
    return f"{100 * value:.1f} pts"


def _signed_pts(value: float) -> str:
    return f"{100 * value:+.1f} pts"


def _noise(c: CriterionVerdict) -> str:
    if c.noise95 is None:
        return "unknown"
    return f"±{100 * c.noise95:.1f} ({'beyond' if c.beyond_noise else 'within'})"


def verdict_table(verdict: CheckVerdict) -> Table:
    title = f"cdelta check: {verdict.new_run} vs baseline {verdict.baseline_run} ({verdict.policy})"
    table = Table(title=escape(title))
    for name in ("backend", "criterion", "baseline", "new", "change", "limit", "noise 95%", "verdict"):
        table.add_column(name, justify="left" if name in ("backend", "criterion") else "right", no_wrap=True)
    for backend in verdict.backends:
        for c in backend.criteria:
            table.add_row(escape(backend.backend), c.criterion, f"{100 * c.baseline:.1f}%", f"{100 * c.new:.1f}%",
                          _signed_pts(c.change), f"{c.worse_when[:-1]} ≤ {_pts(c.limit)}", _noise(c),
                          "[green]PASS[/]" if c.passed else "[bold red]FAIL[/]")
    return table


def _noise_clause(c: CriterionVerdict) -> str:
    if c.noise95 is None:
        return ""
    if c.beyond_noise:
        return f"; beyond sampling noise ±{_pts(c.noise95)}"
    return f"; within sampling noise ±{_pts(c.noise95)}, so a rerun with more samples may not confirm it"


def verdict_lines(verdict: CheckVerdict) -> list[str]:
    """One plain sentence per regression and a last line with the outcome, for CI logs."""
    lines = []
    for backend in verdict.backends:
        for c in backend.criteria:
            if c.passed:
                continue
            moved = "dropped" if c.worse_when == "drops" else "rose"
            lines.append(f"FAIL {backend.backend}: {c.criterion} {moved} by {_pts(c.regression)} "
                         f"({100 * c.baseline:.1f}% → {100 * c.new:.1f}%), over the limit of {_pts(c.limit)}"
                         + _noise_clause(c))
    failed = sum(not c.passed for b in verdict.backends for c in b.criteria)
    judged = sum(len(b.criteria) for b in verdict.backends)
    names = ", ".join(b.backend for b in verdict.backends)
    lines.append(f"PASS: {judged} criteria within their limits ({names})" if verdict.passed else
                 f"FAIL: {failed} of {judged} criteria regressed beyond their limits ({names})")
    return lines


def _run(args: argparse.Namespace) -> int:
    limits = Limits(target_drop=args.max_target_drop, offtarget_rise=args.max_offtarget_rise,
                    utility_drop=args.max_utility_drop, overrefusal_rise=args.max_overrefusal_rise)
    new, baseline = load_report(Path(args.report)), load_report(Path(args.baseline))
    verdict = check(new, baseline, new_path=str(args.report), baseline_path=str(args.baseline),
                    backends=args.backend, limits=limits)
    console = log_console(120)
    console.print(verdict_table(verdict))
    for note in verdict.notes:
        console.print(f"note: {note}", markup=False, soft_wrap=True)
    for line in verdict_lines(verdict):
        console.print(line, markup=False, soft_wrap=True, style="bold red" if line.startswith("FAIL") else "green")
    if args.json:
        atomic_write_text(Path(args.json), dump_json_model(verdict))
    return 0 if verdict.passed else 1


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", help="the new report.json (or its folder)")
    parser.add_argument("--baseline", required=True, help="the baseline report.json (or its folder)")
    parser.add_argument("--backend", action="append", default=[],
                        help="backend to judge; repeatable (default: every backend in both reports)")
    parser.add_argument("--max-target-drop", type=_fraction, default=DEFAULTS.target_drop,
                        help=f"largest allowed move of target refusal against the policy "
                             f"(fraction; default {DEFAULTS.target_drop})")
    parser.add_argument("--max-offtarget-rise", type=_fraction, default=DEFAULTS.offtarget_rise,
                        help=f"largest allowed rise of the off-target change (default {DEFAULTS.offtarget_rise})")
    parser.add_argument("--max-utility-drop", type=_fraction, default=DEFAULTS.utility_drop,
                        help=f"largest allowed drop of utility accuracy (default {DEFAULTS.utility_drop})")
    parser.add_argument("--max-overrefusal-rise", type=_fraction, default=DEFAULTS.overrefusal_rise,
                        help=f"largest allowed rise of over-refusal (default {DEFAULTS.overrefusal_rise})")
    parser.add_argument("--json", metavar="OUT", help="also write the verdict as JSON to OUT")


def check_command() -> Command:
    return Command("check", "regression gate: compare a report against a baseline report "
                            "(exit 0 pass, 1 regression, 2 unusable input)", _configure, _run)
