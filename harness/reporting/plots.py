"""The report's pictures, as PNG files: refusal per backend and category, selectivity against
capability, serving cost, and (reused from where they are drawn for the method) the circuit's
heat map and faithfulness curve and the k sweeps."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # Agg through Figure.savefig: no pyplot, no display
from matplotlib.patches import Rectangle

from cdelta.circuit.artifact import Circuit
from cdelta.circuit.plots import plot_faithfulness, plot_heatmap
from cdelta.sweep import KSweep
from harness.reporting.costs import batch1
from harness.reporting.schema import BenchBackend, ReportFile

DPI = 120


@dataclass(frozen=True)
class Plot:
    """A PNG the report shows, with its caption."""

    file: str
    caption: str


def refusal_heatmap(report: ReportFile, path: Path) -> None:
    """Refusal (%) per backend × category; target categories outlined, unmeasured cells blank."""
    rows = [b.backend for b in report.backends]
    cols = list(dict.fromkeys(c for b in report.backends for c in b.refusal))
    grid = [[b.refusal[c].value if c in b.refusal else math.nan for c in cols] for b in report.backends]
    fig = Figure(figsize=(1.5 + 0.9 * len(cols), 1.2 + 0.5 * len(rows)), layout="constrained")
    ax = fig.subplots()
    ax.imshow(grid, cmap="Reds", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), [c.replace("_", "\n") for c in cols], fontsize=8)
    ax.set_yticks(range(len(rows)), rows)
    for i, line in enumerate(grid):
        for j, value in enumerate(line):
            if not math.isnan(value):
                ax.text(j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if value > 0.6 else "black")
    for j, category in enumerate(cols):
        if category in report.targets:
            ax.add_patch(Rectangle((j - 0.5, -0.5), 1, len(rows), fill=False, lw=2.5, ec="tab:blue"))
    ax.set_title(f"refusal rate (%) — policy {report.policy} (target outlined)", fontsize=9)
    fig.savefig(path, dpi=DPI)


def selectivity_capability(report: ReportFile, scores: dict[str, float], path: Path) -> None:
    """One point per backend: capability (retention, or utility where there is no noop) against the score."""
    use_retention = all(b.utility_retention is not None for b in report.backends)
    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.subplots()
    points: dict[tuple[float, float], list[str]] = {}  # backends that land on one point share one label
    for b in report.backends:
        x = b.utility_retention if use_retention else b.utility.value
        y = scores[b.backend]
        if x is not None and not math.isnan(x) and not math.isnan(y):
            points.setdefault((x, y), []).append(b.backend)
    for (x, y), names in points.items():  # a legend, not labels beside the points: close points made labels overlap
        ax.scatter([x], [y], s=40, label=", ".join(names))
    if points:
        ax.legend(fontsize=8, loc="best")
    ax.set_xlabel("utility retention (vs noop)" if use_retention else "utility accuracy")
    ax.set_ylabel("selectivity score")
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_title("selectivity vs capability (up and right is better)", fontsize=9)
    fig.savefig(path, dpi=DPI)


def serving_bars(report: ReportFile, path: Path) -> bool:
    """Output tokens/s and p50 request latency at batch size 1, and tokens/s against noop at every batch size
    (median and min–max over the paired rounds); False when no backend was benchmarked."""
    measured = [(b.backend, b.serving, point) for b in report.backends if (point := batch1(b.serving)) is not None]
    if not measured:
        return False
    names = [name for name, _, _ in measured]
    points = [point for _, _, point in measured]
    ratios = {name: by_size for name, serving, _ in measured if serving is not None and (by_size := _ratios(serving))}
    fig = Figure(figsize=(max(6.0, 1.2 * len(names) + 3) * (1.5 if ratios else 1), 3.6), layout="constrained")
    axes = fig.subplots(1, 3 if ratios else 2)
    speed, latency = axes[0], axes[1]
    speed.bar(names, [p.output_tokens_per_s for p in points], color="tab:green")
    speed.set_ylabel("output tokens/s (batch size 1)")
    latency.bar(names, [p.latency_p50_s for p in points], color="tab:orange",
                yerr=[[0] * len(points), [p.latency_p95_s - p.latency_p50_s for p in points]], capsize=3)
    latency.set_ylabel("request latency p50 (s), bar to p95")
    if ratios:
        _ratio_bars(axes[2], ratios)
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.suptitle("serving cost: batch size 1, and tokens/s against noop measured in the same rounds", fontsize=9)
    fig.savefig(path, dpi=DPI)
    return True


def _ratios(serving: BenchBackend) -> dict[int, tuple[float, float, float]]:
    """(median, min, max) of tokens/s against noop per batch size, where the bench paired it with noop."""
    return {p.batch_size: (p.throughput_ratio_vs_noop, *p.throughput_ratio_range) for p in serving.points
            if p.throughput_ratio_vs_noop is not None and p.throughput_ratio_range is not None}


def _ratio_bars(ax: Any, ratios: dict[str, dict[int, tuple[float, float, float]]]) -> None:
    """Grouped bars: one group per backend, one bar per batch size, whiskers from the rounds' min to max."""
    sizes = sorted({size for by_size in ratios.values() for size in by_size})
    width = 0.8 / len(sizes)
    for i, size in enumerate(sizes):
        xs = [j + (i - (len(sizes) - 1) / 2) * width for j, by_size in enumerate(ratios.values()) if size in by_size]
        got = [by_size[size] for by_size in ratios.values() if size in by_size]
        ax.bar(xs, [m for m, _, _ in got], width, yerr=[[m - lo for m, lo, _ in got], [hi - m for m, _, hi in got]],
               capsize=2, label=f"batch {size}")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(ratios)), list(ratios))
    ax.set_ylabel("tokens/s ÷ noop's (paired rounds)")
    ax.legend(fontsize=7)


def draw_all(report: ReportFile, scores: dict[str, float], out: Path, circuit: Circuit | None,
             study: dict[str, Any] | None) -> list[Plot]:
    """Every plot the inputs allow, written under `out`."""
    plots = [Plot("refusal_heatmap.png", "Refusal per backend and category (target categories outlined)")]
    refusal_heatmap(report, out / plots[-1].file)
    plots.append(Plot("selectivity_capability.png", "Selectivity score against capability, one point per backend"))
    selectivity_capability(report, scores, out / plots[-1].file)
    if serving_bars(report, out / "serving.png"):
        plots.append(Plot("serving.png", "Serving cost per backend at batch size 1, and tokens/s against noop "
                                          "per batch size (bench.json)"))
    if circuit is not None:
        plot_heatmap(circuit, out / "circuit_heatmap.png")
        plots.append(Plot("circuit_heatmap.png", "Circuit: node scores, heads × layers (members dotted)"))
        if circuit.faithfulness is not None:
            plot_faithfulness(circuit, out / "faithfulness.png")
            plots.append(Plot("faithfulness.png", "Circuit faithfulness against the number of edges kept"))
    if study is not None:
        for variant, sweep in study["k_sweeps"].items():
            KSweep.from_dict(sweep).plot(out / f"k_sweep_{variant}.png")
            plots.append(Plot(f"k_sweep_{variant}.png", f"k sweep on the dev split: {variant} edit"))
    return plots
