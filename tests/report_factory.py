"""Small report.json files built in code, for the tests of `cdelta check` and `cdelta leaderboard`."""
from __future__ import annotations

import argparse
from pathlib import Path

from cdelta.commands import Command
from cdelta.errors import CdeltaError
from harness.reporting.schema import (BackendResult, BenchBackend, BenchPoint, MeanStat, RateStat, ReportFile,
                                      dump_json_model)
from harness.stats import Rate

N = 200


def rate(value: float, n: int = N) -> RateStat:
    r = Rate(round(value * n), n)
    return RateStat(value=r.value, k=r.k, n=n, ci95=r.interval)


def result(backend: str, target: float = 0.9, off: float = 0.02, over: float = 0.1, utility: float = 0.8,
           **extra: object) -> BackendResult:
    return BackendResult(
        backend=backend, artifact=None, refusal={"health_consultation": rate(target), "benign": rate(over)},
        target_refusal=rate(target),
        off_target_change=MeanStat(value=off, n=4, ci95=(max(0.0, off - 0.01), off + 0.01)),
        over_refusal=rate(over), utility=rate(utility), utility_retention=1.0, **extra,
    )


def serving(tokens_per_s: float, p50: float, ratio: float | None = None) -> BenchBackend:
    """A bench at batch size 1; `ratio` is tokens/s against noop's, as a non-noop backend has it."""
    point = BenchPoint(batch_size=1, repeats=3, output_tokens_per_s=tokens_per_s, latency_p50_s=p50,
                       latency_p95_s=p50 * 1.2, ttft_p50_s=None, peak_memory_mb=100.0, hook_overhead_per_step_ms=None,
                       throughput_ratio_vs_noop=ratio, throughput_ratio_range=None if ratio is None else (ratio, ratio))
    return BenchBackend(backend="x", artifact=None, points=[point])


def report(run: str, backends: list[BackendResult], policy: str = "refuse:health_consultation",
           targets: tuple[str, ...] = ("health_consultation",), fingerprint: str = "f" * 64) -> ReportFile:
    return ReportFile(
        schema=1, run=run, policy=policy, targets=list(targets), model="organism-v1", model_fingerprint=fingerprint,
        engine="hf", log_dir=f"runs/{run}/logs", logs=[], selectivity_score="stated formula",
        backends=backends, versions={"cdelta": "test"},
    )


def write(tmp: Path, rep: ReportFile) -> Path:
    path = tmp / rep.run / "report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_json_model(rep), encoding="utf-8")
    return path


def invoke(command: Command, argv: list[str]) -> int:
    """Parse and run one command as `cdelta` does (harness.cli.main): a CdeltaError becomes its exit code."""
    parser = argparse.ArgumentParser(prog="cdelta")
    command.add_to(parser.add_subparsers())
    args = parser.parse_args([command.name, *argv])
    try:
        return int(args._handler(args) or 0)
    except CdeltaError as exc:
        print(f"error: {exc}")
        return exc.exit_code
