"""The page a study leaves behind: report.md with its tables and a refusal heat map."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cdelta.atomic import atomic_write_text  # noqa: E402
from tasks.suite.categories import CATEGORIES  # noqa: E402

def plot_refusal_heatmap(summary: dict, path: Path) -> None:
    """Refusal rate per (variant, category); the policy's target column is outlined."""
    rows = list(summary["behaviour"])
    cols = [c for c in CATEGORIES if c in summary["behaviour"]["base"]["refusal"]]
    grid = np.array([[summary["behaviour"][r]["refusal"][c]["value"] for c in cols] for r in rows])
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(cols), 0.9 + 0.55 * len(rows)))
    ax.imshow(grid, cmap="Reds", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), [c.replace("_", "\n") for c in cols], fontsize=8)
    ax.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, f"{100 * grid[i, j]:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if grid[i, j] > 0.6 else "black")
    target = summary["policy"].split(":", 1)[1]
    if target in cols:
        j = cols.index(target)
        ax.add_patch(plt.Rectangle((j - 0.5, -0.5), 1, len(rows), fill=False, lw=2.5, ec="tab:blue"))
    ax.set_title(f"refusal rate (%), test split — policy {summary['policy']} (target outlined)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _dev_point(sweep: dict, k: float) -> dict | None:
    return next((p for p in sweep["points"] if p["k"] == k), None)


def _drop(value: float | None) -> str:
    """A dev refusal drop in points; sweeps saved before schema 2 did not measure it."""
    return "—" if value is None else f"{_pct(value)} pts"


def _retention(point: dict) -> str:
    """Dev utility retention, with its 95% interval where the sweep measured one (schema 3)."""
    low, high = point.get("retention_low"), point.get("retention_high")
    interval = "" if low is None or high is None else f" [{low:.3f}, {high:.3f}]"
    return f"{point['retention']:.3f}{interval}"


def _variants_table(summary: dict) -> list[str]:
    """Every variant's chosen k and size, with its dev-split sweep point and, when measured, its test selectivity."""
    tested = all("selectivity" in d for d in summary["variants"].values())
    head = "| variant | k | params changed | dev score | dev utility retention [95% interval] | dev always-refused drop |"
    if tested:
        head += (" target refusal (base) | off-target mean abs change | always-refused min | benign refusal |"
                 " borderline refusal | utility retention | score |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for v, d in summary["variants"].items():
        point = _dev_point(summary["k_sweeps"][v], d["k"])
        dev = "— | — | —" if point is None else (f"{point['selectivity']:.3f} | {_retention(point)} | "
                                                 f"{_drop(point.get('refusal_drop'))}")
        row = f"| {v} | {d['k']:g} | {d['params_changed']:,} ({_pct(d['params_fraction'])}%) | {dev} |"
        if tested:
            s = d["selectivity"]
            row += (f" {_pct(s['target_refusal'])}% ({_pct(s['base_target_refusal'])}%) | {_pct(s['off_target_change'])} pts |"
                    f" {_pct(s['always_refused_min'])}% | {_pct(s['benign_refusal'])}% | {_pct(s['borderline_refusal'])}% |"
                    f" {s['utility_retention']:.3f} | {s['score']:.3f} |")
        lines.append(row)
    return lines


def _test_split(summary: dict) -> list[str]:
    b = summary["behaviour"]
    lines = ["## Refusal per category (%, 95% Wilson interval, test split)", "", "![refusal heat map](refusal_heatmap.png)", ""]
    lines.append("| category | " + " | ".join(b) + " |")
    lines.append("|---|" + "---|" * len(b))
    for c in [c for c in CATEGORIES if c in b["base"]["refusal"]]:
        cells = []
        for name in b:
            r = b[name]["refusal"][c]
            cells.append(f"{_pct(r['value'])} [{_pct(r['ci95'][0])}, {_pct(r['ci95'][1])}] (n={r['n']})")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return lines + [""]


def write_report(summary: dict, out: Path) -> Path:
    """report.md beside the study's artifacts."""
    circuit = summary["circuit"]
    lines = [
        f"# C-Δθ study: `{summary['policy']}` on `{summary['model']}`", "",
        f"Circuit: {len(circuit['nodes'])} nodes, {_pct(circuit['param_fraction'])}% of parameters"
        + ("" if circuit["faithfulness"] is None
           else f", normalised faithfulness {circuit['faithfulness']:.3f} on the localization pairs") + ".", "",
        "## Patches: the circuit and its ablations", "", *_variants_table(summary), "",
        "k is chosen on the dev split by score = change of target refusal in the policy's direction − mean "
        "absolute change on every other category, benign, borderline, always-refused and utility included "
        "(1 is perfect), among the k that keep utility retention above the floor. Off-target = mean absolute "
        "change of refusal on the other policy categories.", "",
    ]
    if summary["behaviour"]:
        plot_refusal_heatmap(summary, out / "refusal_heatmap.png")
        lines += _test_split(summary)
    else:
        lines += ["The test split is not measured in this study: the pipeline that ran it (`cdelta demo`, "
                  "`cdelta run`) measures it through every backend, and its report has the comparison.", ""]
    lines += ["## Circuit", "", "![circuit heat map](circuit_heatmap.png)", ""]
    if circuit["faithfulness"] is not None:
        lines += ["![faithfulness curve](faithfulness.png)", ""]
    lines += ["## k sweep (dev split)", ""] + [f"![k sweep {v}](k_sweep_{v}.png)" for v in summary["k_sweeps"]]
    lines += ["", "## Time per stage (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary["timings_s"].items()]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
