"""`cdelta bench`: serving cost per backend on a fixed prompt set, into bench.json and a table."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from cdelta.atomic import atomic_write_text
from cdelta.commands import Command
from cdelta.errors import CdeltaError
from harness.bench.prompts import DEFAULT_PROMPTS
from harness.cli_args import add_model_argument, comma_names, parse_artifacts


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(n) for n in text.split(",") if n.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected batch sizes separated by commas, e.g. 1,8,32; got {text!r}") from None
    if not sizes or min(sizes) < 1 or len(set(sizes)) != len(sizes):
        raise argparse.ArgumentTypeError(f"expected distinct batch sizes of at least 1, got {text!r}")
    return sizes


def _run(args: argparse.Namespace) -> int:
    from harness.bench.runner import BenchRequest, run_bench
    from harness.bench.table import bench_table
    from harness.organism.registry import resolve_model
    from harness.reporting.schema import dump_json_model

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CdeltaError(f"{out} exists; pass --overwrite to replace it")
    if args.shape is not None and args.model != "default":
        raise CdeltaError("--shape measures a random model of that shape instead of --model: give one of them")
    request = BenchRequest(
        model=resolve_model(args.model),
        backends=args.backends, artifacts=parse_artifacts(args.artifact), engine=args.engine,
        batch_sizes=args.batch_sizes, repeats=args.repeats, warmup=args.warmup, max_new_tokens=args.max_new_tokens,
        prompts=args.prompts, shape=args.shape, threads=args.threads, device=args.device, schedule=args.schedule,
    )
    bench = run_bench(request, show_progress=not args.no_progress)
    atomic_write_text(out, dump_json_model(bench))
    console = Console()
    console.print(bench_table(bench))
    console.print(f"[green]bench:[/] {out}")
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument("--backends", type=comma_names, default=("noop",),
                        help="comma-separated backends: noop, actadd, cast, cdelta, dense, random (default noop)")
    parser.add_argument("--artifact", action="append", default=[], metavar="BACKEND=PATH",
                        help="a backend's artifact: steering artifact (actadd, cast) or patch file "
                             "(cdelta, dense, random); repeatable")
    parser.add_argument("--engine", default="hf", help="inference engine: hf (default) or vllm")
    parser.add_argument("--device", default="cpu", help="where the transformers engine runs: cpu (default), cuda or "
                                                        "cuda:N; on cuda, peak memory is what torch allocated there")
    parser.add_argument("--batch-sizes", type=_sizes, default=(1, 8, 32), help="comma-separated (default 1,8,32)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per point; medians are reported (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before them (default 1)")
    parser.add_argument("--max-new-tokens", type=int, default=32,
                        help="output tokens per request, forced: every backend does the same work (default 32)")
    parser.add_argument("--prompts", type=int, default=DEFAULT_PROMPTS,
                        help=f"prompts per run, category-balanced from the suite's test split (default {DEFAULT_PROMPTS})")
    parser.add_argument("--shape", metavar="CONFIG",
                        help="measure a randomly initialised model of this shape instead of --model: a built-in name "
                             "(qwen2.5-0.5b) or a Hugging Face config.json; cost only, no artifacts")
    parser.add_argument("--schedule", choices=("rounds", "sequential"),
                        help="rounds: every backend's worker loaded at once, each round one timed run per backend, "
                             "ratios vs noop paired by round; sequential: one backend after another (unpaired "
                             "ratios), for vLLM on a GPU, where engines cannot share the GPU (default: sequential "
                             "for vLLM on CUDA, else rounds)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1: stable timings)")
    parser.add_argument("-o", "--out", required=True, help="bench.json to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def bench_command() -> Command:
    return Command("bench", "measure serving cost per backend: tok/s, latency, TTFT, peak memory, "
                            "overhead vs noop", _configure, _run)
