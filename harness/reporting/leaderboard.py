"""The leaderboard's rows: one per (run, backend), ranked by the selectivity score within each
policy. Scores of different policies measure different things, so each policy (with its target
categories) is its own section and is never ranked against another."""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from harness.reporting.costs import batch1
from harness.reporting.report_input import UnusableReport, policy_direction
from harness.reporting.schema import BackendResult, MeanStat, RateStat, ReportFile
from harness.reporting.score import selectivity_score

NOOP = "noop"


@dataclass(frozen=True)
class Row:
    rank: int
    run: str
    backend: str
    score: float
    target_refusal: RateStat
    off_target_change: MeanStat
    over_refusal: RateStat
    utility: RateStat
    utility_retention: float | None
    parameters_changed: float | None
    tokens_per_s_b1: float | None  # serving at batch size 1, where measured
    throughput_ratio_b1: float | None  # tokens/s ÷ noop's at batch size 1, median over the bench's rounds
    latency_p50_s_b1: float | None
    break_even_requests: dict[str, float | None]


@dataclass(frozen=True)
class Section:
    policy: str
    targets: tuple[str, ...]
    rows: list[Row]
    notes: list[str]


def _row(report: ReportFile, result: BackendResult, noop: BackendResult | None, release: bool) -> Row:
    point = batch1(result.serving)
    return Row(
        rank=0, run=report.run, backend=result.backend, score=selectivity_score(result, noop, release=release),
        target_refusal=result.target_refusal, off_target_change=result.off_target_change,
        over_refusal=result.over_refusal, utility=result.utility, utility_retention=result.utility_retention,
        parameters_changed=result.parameters_changed,
        tokens_per_s_b1=point.output_tokens_per_s if point else None,
        throughput_ratio_b1=point.throughput_ratio_vs_noop if point else None,
        latency_p50_s_b1=point.latency_p50_s if point else None,
        break_even_requests=dict(result.break_even_requests),
    )


def ranked(rows: Sequence[Row]) -> list[Row]:
    """Score descending (an unmeasured NaN score last); equal scores share a rank (1, 1, 3);
    ties are listed by run and backend so the order never depends on the input order."""
    def key(row: Row) -> tuple[bool, float, str, str]:
        nan = math.isnan(row.score)
        return (nan, 0.0 if nan else -row.score, row.run, row.backend)

    out: list[Row] = []
    for i, row in enumerate(sorted(rows, key=key)):
        tied = bool(out) and _same(out[-1].score, row.score)
        out.append(replace(row, rank=out[-1].rank if tied else i + 1))
    return out


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def sections(reports: Sequence[ReportFile]) -> list[Section]:
    """Group the reports' backends by (policy, targets) and rank each group; sections sorted by policy."""
    duplicated = sorted(run for run, count in Counter(r.run for r in reports).items() if count > 1)
    if duplicated:
        raise UnusableReport(f"several reports name the same run {duplicated}: their rows could not be told apart; "
                             f"give each run its own name (or pass each report once)")
    groups: dict[tuple[str, tuple[str, ...]], tuple[list[Row], list[str]]] = {}
    for report in reports:
        release = policy_direction(report) == "release"
        names = [b.backend for b in report.backends]
        noop = report.backend(NOOP) if NOOP in names else None
        rows, notes = groups.setdefault((report.policy, tuple(sorted(report.targets))), ([], []))
        if noop is None:
            notes.append(f"run {report.run} has no noop backend: its scores have no over-refusal term")
        rows.extend(_row(report, result, noop, release) for result in report.backends)
    return [Section(policy, targets, ranked(rows), notes)
            for (policy, targets), (rows, notes) in sorted(groups.items())]
