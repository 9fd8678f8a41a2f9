"""`cdelta demo`: the embedded default end to end — organism, circuit, ΔθC, ablations, report."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console

from cdelta.commands import Command
from cdelta.edit_config import EditConfig
from harness.edit_study import StudyConfig, run_study
from harness.organism import registry
from harness.organism.config import DEFAULT, OrganismConfig
from harness.study_report import write_report
from tasks.suite.categories import POLICY_CATEGORIES
from tasks.suite.generate import generate_suite

# The --small organism is too weak for the default budget and samples: smaller study, same code path.
SMALL_STUDY = dict(n_pairs=16, n_target=64, n_retain=128, ks=(1.0, 4.0), dev_per_category=10,
                   edit=EditConfig(lr=1e-3, steps=10, batch_size=8), budget=0.2)


def _organism(small: bool, console: Console) -> Path:
    if not small:
        return registry.resolve_model(DEFAULT.name)
    from harness.organism.build import build
    from harness.organism.config import SMALL
    from tasks.suite.generate import suite_fingerprint

    path = registry.cached_path(SMALL)
    if not registry.is_complete(path):
        registry.check_writable(path.parent)
        console.print("building the --small organism (about a minute)")
        build(SMALL, generate_suite(SMALL.suite_seed, SMALL.suite_counts),
              suite_fingerprint(SMALL.suite_seed, SMALL.suite_counts), path)
    return path


def _run(args: argparse.Namespace) -> int:
    console = Console()
    began = time.perf_counter()
    model = _organism(args.small, console)
    cfg = OrganismConfig.from_dict(registry.read_manifest(model)["config"])
    records = generate_suite(cfg.suite_seed, cfg.suite_counts)
    overrides = dict(SMALL_STUDY) if args.small else {}
    if args.budget is not None:
        overrides["budget"] = args.budget
    study = StudyConfig(policy=f"refuse:{args.category}", **overrides)
    out = Path(args.out)
    console.print(f"[bold]C-Δθ demo[/]: policy {study.policy} on {model} → {out}")
    summary = run_study(model, records, study, out, console)
    report = write_report(summary, out)
    console.print(f"[green]report:[/] {report}  ({time.perf_counter() - began:.0f} s in all)")
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--category", default="health_consultation", choices=POLICY_CATEGORIES,
                        help="the policy category to make the model refuse")
    parser.add_argument("--out", default="reports/demo", help="folder for the report and artifacts")
    parser.add_argument("--budget", type=float, help="circuit parameter budget, a fraction (default 0.05; 0.2 with --small)")
    parser.add_argument("--small", action="store_true", help="use the --small organism (for tests; weak)")


def demo_command() -> Command:
    return Command("demo", "run the whole pipeline on the embedded default", _configure, _run)
