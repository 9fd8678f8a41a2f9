"""`cdelta report LOGDIR [--bench B] [--circuit C] [--study S] [--benign-kl K] [--run NAME] -o OUT`: one evaluation
run's inspect logs (and the artifacts around it) → report.json, report.md, report.html, plots."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cdelta.commands import Command


def make_report(logdir: Path, out: Path, bench: Path | None = None, circuit: Path | None = None,
                study: Path | None = None, run_name: str | None = None, console: Console | None = None,
                benign_kl: Path | None = None) -> Path:
    """Logs + artifacts → the report folder `out`. Imports inspect and matplotlib only when a report
    is asked for, so `cdelta --help` stays quick."""
    from cdelta.circuit.artifact import Circuit
    from harness.reporting.build import Artifacts, build_report, check_artifacts_match
    from harness.reporting.collect import collect
    from harness.reporting.costs import load_study, serving_notes
    from harness.reporting.folder import check_replaceable, write_report_folder
    from harness.reporting.schema import BenchFile, BenignKLFile, read_json_model

    console = console or Console(highlight=False)
    check_replaceable(out)  # before minutes of reading logs
    artifacts = Artifacts(
        bench=read_json_model(bench, BenchFile, "bench") if bench else None,
        circuit=Circuit.load(circuit) if circuit else None,
        study=load_study(study) if study else None,
        benign_kl=read_json_model(benign_kl, BenignKLFile, "benign KL") if benign_kl else None,
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task(f"reading logs in {logdir}", total=None)
        run = collect(logdir, advance=lambda: progress.advance(bar), on_total=lambda n: progress.update(bar, total=n))
    notes = [*run.notes, *check_artifacts_match(run, artifacts), *serving_notes(artifacts.bench)]
    report = build_report(run, artifacts, run_name or out.resolve().name)
    with console.status("drawing plots and writing the report"):
        written = write_report_folder(report, out, notes, artifacts.circuit, artifacts.study)
    for note in notes:
        console.print(f"note: {note}", markup=False)
    console.print(f"[green]report:[/] {out} ({len(report.backends)} backends: "
                  f"{', '.join(b.backend for b in report.backends)}; {len(written)} files)")
    return out


def _run(args: argparse.Namespace) -> int:
    def optional(value: str | None) -> Path | None:
        return Path(value) if value else None

    make_report(Path(args.logdir), Path(args.out), optional(args.bench), optional(args.circuit),
                optional(args.study), args.run, benign_kl=optional(args.benign_kl))
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("logdir", help="the --log-dir of one `cdelta eval` run")
    parser.add_argument("-o", "--out", required=True, help="report folder to write (e.g. reports/RUN)")
    parser.add_argument("--bench", help="bench.json of `cdelta bench`: serving cost and break-even")
    parser.add_argument("--circuit", help="circuit.json of `cdelta localize`: heat map, faithfulness, "
                                          "parameter fraction")
    parser.add_argument("--study", help="study.json of `cdelta demo` (or its folder): offline time, "
                                        "parameters changed, k sweeps")
    parser.add_argument("--benign-kl", help="benign_kl.json of `cdelta demo` or `cdelta run`: each backend's "
                                             "first-token KL to noop on benign prompts")
    parser.add_argument("--run", help="the run's name in the report and the leaderboard (default: the -o folder's name)")


def report_command() -> Command:
    return Command("report", "turn eval logs and artifacts into report.json/md/html with plots", _configure, _run)
