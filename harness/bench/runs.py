"""What the parent makes of the workers' timed runs: a BenchPoint of medians per backend and batch size,
and the comparison with noop from paired runs (same batch size, same round).

Pairing is what makes the comparison hold on a machine whose speed drifts: within one round every
backend runs back to back, so a slow minute slows all of them and cancels in their ratio, where the
ratio of two medians taken minutes apart keeps it (see docs/bench.md).
"""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.reporting.schema import BenchPoint


@dataclass(frozen=True)
class Batch:
    requests: int
    seconds: float  # wall time of its generate call
    ttft: float | None  # from the call to the first logits; None where the engine does not show them


@dataclass(frozen=True)
class Run:
    """One pass over the prompts."""

    seconds: float
    output_tokens: int
    batches: tuple[Batch, ...]

    def tokens_per_s(self) -> float:
        return self.output_tokens / self.seconds

    def latencies(self) -> list[float]:
        """Per request: the wall time of the batch it was in."""
        return [b.seconds for b in self.batches for _ in range(b.requests)]

    def ttfts(self) -> list[float] | None:
        if any(b.ttft is None for b in self.batches):
            return None
        return [b.ttft for b in self.batches for _ in range(b.requests)]  # type: ignore[misc]


@dataclass(frozen=True)
class VersusNoop:
    """A backend against noop over paired rounds: medians over rounds, and the range of the ratio."""

    ratio: float  # tokens/s ÷ noop's tokens/s in the same round
    ratio_range: tuple[float, float]
    overhead_per_step_ms: float  # 1000·B·(1/tok_s − 1/tok_s(noop)) in the same round


def versus_noop(batch_size: int, tokens_per_s: Sequence[float], noop_tokens_per_s: Sequence[float]) -> VersusNoop:
    """Round i of the backend against round i of noop. A full batch of B makes B tokens a decode step, so a
    step takes B / (tokens/s); the overhead is the difference of those (prefill and CAST's prompt read
    spread over the steps)."""
    if not tokens_per_s or len(tokens_per_s) != len(noop_tokens_per_s):
        raise ValueError(f"paired rounds need as many runs as noop's, at least one: got {len(tokens_per_s)} "
                         f"and {len(noop_tokens_per_s)}")
    ratios = [t / n for t, n in zip(tokens_per_s, noop_tokens_per_s)]
    steps = [1000 * batch_size * (1 / t - 1 / n) for t, n in zip(tokens_per_s, noop_tokens_per_s)]
    return VersusNoop(statistics.median(ratios), (min(ratios), max(ratios)), statistics.median(steps))


def bench_point(batch_size: int, runs: Sequence[Run], peak_memory_mb: float,
                noop_runs: Sequence[Run] | None) -> BenchPoint:
    """Medians over the timed runs (in round order); against noop's runs of the same rounds where given."""
    ttfts = [t for t in (r.ttfts() for r in runs) if t is not None]
    versus = None if noop_runs is None else versus_noop(batch_size, [r.tokens_per_s() for r in runs],
                                                        [r.tokens_per_s() for r in noop_runs])
    return BenchPoint(
        batch_size=batch_size,
        repeats=len(runs),
        output_tokens_per_s=statistics.median(r.tokens_per_s() for r in runs),
        latency_p50_s=statistics.median(float(np.percentile(r.latencies(), 50)) for r in runs),
        latency_p95_s=statistics.median(float(np.percentile(r.latencies(), 95)) for r in runs),
        ttft_p50_s=statistics.median(float(np.percentile(t, 50)) for t in ttfts) if len(ttfts) == len(runs) else None,
        peak_memory_mb=peak_memory_mb,
        hook_overhead_per_step_ms=None if versus is None else versus.overhead_per_step_ms,
        throughput_ratio_vs_noop=None if versus is None else versus.ratio,
        throughput_ratio_range=None if versus is None else versus.ratio_range,
    )
