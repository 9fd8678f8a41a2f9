"""`cdelta run experiment.toml`: the demo's pipeline on any model, from one validated config file."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console

from cdelta.commands import Command


def _run(args: argparse.Namespace) -> int:
    from harness.experiment import read_experiment
    from harness.organism import registry
    from harness.pipeline import run_pipeline
    from tasks.suite.generate import generate_suite, suite_fingerprint

    experiment = read_experiment(Path(args.config))
    model = registry.resolve_model(experiment.model)
    organism = registry.organism_config(model)
    records = generate_suite(organism.suite_seed, organism.suite_counts)
    fingerprint = suite_fingerprint(organism.suite_seed, organism.suite_counts)
    console = Console()
    began = time.perf_counter()
    out = Path(args.out) if args.out else None
    report = run_pipeline(experiment.pipeline(model, records, fingerprint, out), console)
    console.print(f"[green]report:[/] {report / 'report.html'}  ({time.perf_counter() - began:.0f} s in all)")
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment.toml (keys: docs/run.md; examples in examples/)")
    parser.add_argument("--out", help="override the config's `out` folder")


def run_command() -> Command:
    return Command("run", "run the pipeline from an experiment.toml", _configure, _run)
