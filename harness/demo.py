"""`cdelta demo`: the whole comparison on the embedded default — the committed organism, one policy
category, every backend — ending in a report. `cdelta run` is the same pipeline from a config file."""
from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

from rich.console import Console

from cdelta.commands import Command
from cdelta.edit_config import EditConfig
from harness.edit_study import StudyConfig
from harness.organism import registry
from harness.organism.config import DEFAULT, SMALL
from harness.pipeline import BenchSettings, Pipeline, run_pipeline
from harness.steer import SteerConfig
from tasks.suite.categories import POLICY_CATEGORIES
from tasks.suite.generate import generate_suite, suite_fingerprint

# Samples per inspect task in the demo: every category of the test split gets about 57 prompts
# (category_refusal), over_refusal is whole (400), utility about 67 per task. `cdelta run` with
# `eval.limit` unset evaluates the whole split. (600 took the demo to 14 min 58 s on a quiet machine when
# it localized whole MLPs; 500 took the evaluation 238–243 s, and the demo to 15 min 37 s once it
# localized MLP unit groups.)
DEMO_EVAL_LIMIT = 400
# MLPs split into 172 groups of 4 units: a 5% budget cannot hold a whole MLP of the organism (10.3% each),
# so at G = 1 the circuit is heads only, with faithfulness about 0 (docs/eap-ig.md); groups let it take
# the parts of MLP 0 that carry refusal. Localizing at G = 172 took the study from 314 s to 489 s and the
# demo to 15 min 37 s, so the faithfulness curve has 5 points instead of 12 (each point is a patched
# pass over the 64 pairs, about 9 s here) and the evaluation 400 samples a task instead of 500.
DEMO_STUDY = dict(mlp_groups=172, curve_points=5)
# The --small organism is too weak for the default budget and samples: smaller settings, same code path.
SMALL_STUDY = dict(n_pairs=16, n_target=64, n_retain=128, ks=(1.0, 4.0), dev_per_category=10, dev_utility=10,
                   edit=EditConfig(lr=1e-3, steps=10, batch_size=8), budget=0.2)
# Two layers: the 80% layer cut of the refusal-direction filters would leave only the embeddings.
SMALL_STEER = dict(n_train=64, condition_dev_per_category=20, dev_per_category=10, coefficients=(0.5, 1.0, 1.5),
                   max_layer_fraction=1.0)
SMALL_BENCH = BenchSettings(batch_sizes=(1, 4), repeats=1, warmup=1, max_new_tokens=8, prompts=8)
# The demo's serving bench: an eighth of `cdelta bench`'s prompts at batch sizes 1 and 8, in three paired
# rounds (docs/bench.md), so that it takes about 1.5 of the demo's minutes (16 prompts took 132 s and the
# demo to 14 min 48 s); `cdelta bench` with its defaults (64 prompts, batch sizes 1, 8, 32) is the
# measurement to quote. Pairing the rounds is what makes so few prompts usable: measured one backend after
# another, 16 prompts gave the same checkpoint shape 138 and 98 tokens/s in one run.
DEMO_BENCH = BenchSettings(batch_sizes=(1, 8), repeats=3, prompts=8)
# The demo evaluates on transformers unless asked: on 2 cores vLLM's CPU build took 124 s for one backend's
# 700-sample evaluation where transformers took 93 s, and it runs backends one at a time where transformers
# runs two, so the demo would take about 7 minutes longer (`--engine vllm` or `auto` to choose it).
DEMO_ENGINE = "hf"


def _organism(small: bool, console: Console) -> Path:
    if not small:
        return registry.resolve_model(DEFAULT.name)
    from harness.organism.build import build_on_suite

    path = registry.cached_path(SMALL)
    if not registry.is_complete(path):
        registry.check_writable(path.parent)
        console.print("building the --small organism (about a minute)")
        build_on_suite(SMALL, path)
    return path


def demo_engine(choice: str, small: bool) -> str:
    """The engine the evaluation and the bench run on: vLLM when asked, or with "auto" when it is installed
    and the model suits its CPU attention (heads of at least 32 dimensions: not the --small organism)."""
    if choice != "auto":
        return choice
    if small or importlib.util.find_spec("vllm") is None:
        return "hf"
    return "vllm"


def demo_pipeline(model: Path, category: str, out: Path, small: bool, budget: float | None,
                  engine: str = "hf") -> Pipeline:
    cfg = registry.organism_config(model)
    study = dict(SMALL_STUDY) if small else dict(DEMO_STUDY)
    if budget is not None:
        study["budget"] = budget
    return Pipeline(
        model=model, records=generate_suite(cfg.suite_seed, cfg.suite_counts),
        suite_fingerprint=suite_fingerprint(cfg.suite_seed, cfg.suite_counts),
        study=StudyConfig(policy=f"refuse:{category}", **study),  # type: ignore[arg-type]
        steer=SteerConfig(category=category, **(SMALL_STEER if small else {})),  # type: ignore[arg-type]
        out=out, eval_limit=40 if small else DEMO_EVAL_LIMIT, parallel=1 if small else 2,
        bench=SMALL_BENCH if small else DEMO_BENCH, engine=engine,
    )


def _run(args: argparse.Namespace) -> int:
    console = Console()
    began = time.perf_counter()
    model = _organism(args.small, console)
    out = Path(args.out)
    engine = demo_engine(args.engine, args.small)
    console.print(f"[bold]C-Δθ demo[/]: refuse:{args.category} on {model} → {out} (evaluation and bench on the "
                  f"{engine} engine)")
    report = run_pipeline(demo_pipeline(model, args.category, out, args.small, args.budget, engine), console)
    console.print(f"[green]report:[/] {report / 'report.html'}  ({time.perf_counter() - began:.0f} s in all)")
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--category", default="health_consultation", choices=POLICY_CATEGORIES,
                        help="the policy category to make the model refuse")
    parser.add_argument("--out", default="reports/demo", help="folder for the report and artifacts")
    parser.add_argument("--budget", type=float, help="circuit parameter budget, a fraction (default 0.05; 0.2 with --small)")
    parser.add_argument("--small", action="store_true", help="use the --small organism (for tests; weak)")
    parser.add_argument("--engine", choices=("auto", "hf", "vllm"), default=DEMO_ENGINE,
                        help="engine of the evaluation and the bench: hf (transformers), vllm, or auto (vllm when "
                             "installed, except with --small) (default: %(default)s)")


def demo_command() -> Command:
    return Command("demo", "run the whole pipeline on the embedded default", _configure, _run)
