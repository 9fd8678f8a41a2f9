"""Benchmark: the embedded suite's test split (all three tasks) through each backend on the
committed organism, timed (target ≤ 10 minutes for four backends on 2 cores).

    python tests/benchmarks/eval_suite_time.py [--backends noop,actadd,cast,cdelta]
        [--artifact actadd=runs/steering/artifacts/actadd.json ...] [--parallel 2] [--out runs/bench-eval]

Starts from an empty log folder each time, prints a table and writes eval_suite_time.json: the
whole run's wall time (model loads and fingerprints included) and, from the logs, each backend's
evaluation time and samples/s. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from datetime import datetime
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="model folder or organism name (default: committed)")
    parser.add_argument("--backends", default="noop", help="comma-separated backends")
    parser.add_argument("--artifact", action="append", default=[], metavar="BACKEND=PATH")
    parser.add_argument("--policy", default="refuse:health_consultation", help="labels target vs non-target")
    parser.add_argument("--parallel", type=int, default=2, help="backends at once (default 2)")
    parser.add_argument("--out", default="runs/bench-eval")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.parallel)))

    from rich.console import Console
    from rich.table import Table

    from harness.cli_args import parse_artifacts
    from harness.evaluation.runner import EvalRequest, run_eval
    from harness.organism.registry import resolve_model

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    request = EvalRequest(model=resolve_model(args.model), backends=tuple(args.backends.split(",")),
                          log_dir=out / "logs", artifacts=parse_artifacts(args.artifact), policy=args.policy)
    console = Console()
    began = time.perf_counter()
    logs = run_eval(request, display="rich", console=console, parallel=args.parallel)
    total = time.perf_counter() - began

    rows = []
    for backend in request.backends:
        mine = [log for log in logs if log.eval.metadata["backend"] == backend]
        start = min(datetime.fromisoformat(log.stats.started_at) for log in mine)
        end = max(datetime.fromisoformat(log.stats.completed_at) for log in mine)
        seconds = (end - start).total_seconds()
        samples = sum(log.results.completed_samples for log in mine if log.results)
        rows.append({"backend": backend, "seconds": round(seconds, 1), "samples": samples,
                     "samples_per_second": round(samples / seconds, 1)})
    result = {"model": str(request.model), "parallel": args.parallel, "omp_threads": os.environ["OMP_NUM_THREADS"],
              "backends": rows, "total_seconds": round(total, 1), "machine": platform.machine(),
              "cpus": os.cpu_count()}
    table = Table(title=f"embedded test split through inspect ({args.parallel} backends at a time)")
    for column in ("backend", "seconds", "samples", "samples/s"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["backend"], str(r["seconds"]), str(r["samples"]), str(r["samples_per_second"]))
    console.print(table)
    console.print(f"total wall time {total:.0f} s for {len(rows)} backends (target ≤ 600 s for four)")
    (out / "eval_suite_time.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
