"""Benchmark: build an organism (default: the committed one) from scratch and time it (target ≤ 30 minutes on 2 cores).

    python tests/benchmarks/organism_build.py [--out runs/bench-organism] [--config organism-small]

Prints a table and writes organism_build.json: wall time, tokens/s, the weights' sha256 and
whether it equals the committed organism (same seed and versions → same bytes on the same
platform). Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.organism import registry
from harness.organism.build import build_on_suite, read_manifest
from harness.organism.config import DEFAULT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=DEFAULT.name, choices=sorted(registry.NAMED))
    parser.add_argument("--out", default="runs/bench-organism")
    args = parser.parse_args()
    cfg = registry.NAMED[args.config]
    out = Path(args.out)
    began = time.perf_counter()
    folder = build_on_suite(cfg, out / cfg.name, overwrite=True)
    wall = time.perf_counter() - began
    manifest = read_manifest(folder)
    tokens = manifest["train_tokens_per_step"] * cfg.steps
    result = {"config": args.config, "wall_seconds": round(wall, 1), "train_seconds": manifest["train_seconds"],
              "steps": cfg.steps, "approx_train_tokens": tokens, "tokens_per_second": round(tokens / manifest["train_seconds"]),
              "threads": cfg.threads, "weights_sha256": manifest["weights_sha256"], "machine": platform.machine(),
              "processor": platform.processor()}
    if args.config == DEFAULT.name:
        same, _, committed = registry.verify_default(folder)
        result.update(committed_sha256=committed, identical_to_committed=same)
    table = Table(title="organism build benchmark")
    table.add_column("metric")
    table.add_column("value")
    for k, v in result.items():
        table.add_row(k, str(v))
    Console().print(table)
    (out / "organism_build.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
