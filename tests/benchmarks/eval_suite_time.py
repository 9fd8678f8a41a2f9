"""Benchmark: the embedded suite's test split (all three tasks) through each backend on the
committed organism, timed (target ≤ 10 minutes for four backends on 2 cores).

    python tests/benchmarks/eval_suite_time.py [--backends noop,cdelta] [--artifact cdelta=DIR]
                                               [--out runs/bench-eval] [--threads 2]

Starts from an empty log folder each time, prints a table and writes eval_suite_time.json: wall
seconds per backend (model load included), samples, samples/s. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="model folder or organism name (default: committed)")
    parser.add_argument("--backends", default="noop", help="comma-separated backends")
    parser.add_argument("--artifact", action="append", default=[], metavar="BACKEND=PATH")
    parser.add_argument("--out", default="runs/bench-eval")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import torch
    from rich.console import Console
    from rich.table import Table

    from harness.evaluation.cli import parse_artifacts
    from harness.evaluation.runner import EvalRequest, backend_runs, build_tasks, run_backend
    from harness.organism.registry import resolve_model

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    request = EvalRequest(model=resolve_model(args.model), backends=tuple(args.backends.split(",")),
                          log_dir=out / "logs", artifacts=parse_artifacts(args.artifact), batch_size=args.batch_size)
    console = Console()
    began = time.perf_counter()
    tasks = build_tasks(request)
    samples = sum(len(task.dataset) for task in tasks)
    rows = []
    for run in backend_runs(request):
        start = time.perf_counter()
        run_backend(request, run, tasks, display="rich")
        seconds = time.perf_counter() - start
        rows.append({"backend": run.backend, "seconds": round(seconds, 1), "samples": samples,
                     "samples_per_second": round(samples / seconds, 1)})
    total = time.perf_counter() - began
    per_backend = sum(r["seconds"] for r in rows) / len(rows)
    result = {"model": str(request.model), "threads": args.threads, "batch_size": args.batch_size,
              "backends": rows, "total_seconds": round(total, 1),
              "projected_four_backends_seconds": round(4 * per_backend, 1),
              "machine": platform.machine(), "cpus": os.cpu_count()}
    table = Table(title="embedded test split through inspect, per backend")
    for column in ("backend", "seconds", "samples", "samples/s"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["backend"], str(r["seconds"]), str(r["samples"]), str(r["samples_per_second"]))
    console.print(table)
    console.print(f"total {total:.0f} s; four backends at this pace: {4 * per_backend:.0f} s (target ≤ 600 s)")
    (out / "eval_suite_time.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
