"""report.md and a self-contained report.html from one report: the same tables in both, the
plots linked from the Markdown and embedded (base64 PNG) in the HTML, so the page opens anywhere
with nothing to fetch."""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from harness.reporting.costs import batch1, batch1_latency, ratio_text
from harness.reporting.plots import Plot
from harness.reporting.schema import BackendResult, MeanStat, RateStat, ReportFile

MISSING = "–"
Table = tuple[list[str], list[list[str]]]


def rate(stat: RateStat) -> str:
    if stat.n == 0 or math.isnan(stat.value):
        return f"{MISSING} (n=0)"
    lo, hi = stat.ci95
    return f"{100 * stat.value:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] (n={stat.n})"


def change(stat: MeanStat) -> str:
    if stat.n == 0 or math.isnan(stat.value):
        return MISSING
    return f"{100 * stat.value:.1f} pts ({stat.n} categories)"


def nats(stat: MeanStat | None) -> str:
    if stat is None or stat.n == 0:
        return MISSING
    interval = "" if stat.ci95 is None else f" [{stat.ci95[0]:.4f}, {stat.ci95[1]:.4f}]"
    return f"{stat.value:.4f}{interval} (n={stat.n})"


def _number(value: float | None, fmt: str) -> str:
    return MISSING if value is None or math.isnan(value) else format(value, fmt)


def _tokens_per_s(result: BackendResult) -> str:
    point = batch1(result.serving)
    return MISSING if point is None else f"{point.output_tokens_per_s:.1f}"


def _break_even(result: BackendResult) -> str:
    if not result.break_even_requests:
        return MISSING
    return "; ".join(f"vs {name}: {_number(n, ',.0f')}" for name, n in sorted(result.break_even_requests.items()))


def headline(report: ReportFile, scores: dict[str, float]) -> Table:
    """One row per backend: behaviour with n and 95% intervals, then capability and cost."""
    headers = ["backend", "score", "target refusal [95% CI]", "off-target change", "over-refusal [95% CI]",
               "utility [95% CI]", "retention", "benign KL [95% CI]", "params changed", "tokens/s (b=1)",
               "tok/s vs noop (b=1)", "p50 latency (b=1)", "offline time", "break-even requests"]
    rows = [[b.backend, _number(scores[b.backend], ".3f"), rate(b.target_refusal), change(b.off_target_change),
             rate(b.over_refusal), rate(b.utility), _number(b.utility_retention, ".3f"), nats(b.benign_kl),
             MISSING if b.parameters_changed is None else f"{100 * b.parameters_changed:.2f}%",
             _tokens_per_s(b), ratio_text(batch1(b.serving)) or MISSING,
             MISSING if (lat := batch1_latency(b.serving)) is None else f"{lat:.3f} s",
             MISSING if b.offline_seconds is None else f"{b.offline_seconds:.0f} s", _break_even(b)]
            for b in report.backends]
    return headers, rows


def per_category(report: ReportFile) -> Table:
    """Refusal per category (rows) and backend (columns); target categories marked."""
    categories = list(dict.fromkeys(c for b in report.backends for c in b.refusal))
    headers = ["category", *(b.backend for b in report.backends)]
    rows = [[f"{c} (target)" if c in report.targets else c,
             *(rate(b.refusal[c]) if c in b.refusal else MISSING for b in report.backends)] for c in categories]
    return headers, rows


def _intro(report: ReportFile) -> list[str]:
    return [f"Policy `{report.policy}` (targets: {', '.join(report.targets) or 'none'}) on model `{report.model}` "
            f"(fingerprint {report.model_fingerprint[:12]}), engine {report.engine}; logs: `{report.log_dir}`.",
            f"Selectivity score = {report.selectivity_score}.",
            "Rates are counts of scored samples with Wilson 95% intervals; off-target change is the mean absolute "
            "change of refusal against noop over the non-target policy categories; retention is utility / noop's "
            "utility; benign KL is KL(noop ‖ backend) of the first response token's distribution on benign "
            "prompts, in nats, with a normal 95% interval; tok/s vs noop is the backend's output tokens/s over "
            "noop's in the same round of the serving bench, median [min–max] over rounds (1.00: no cost)."]


def _md_table(table: Table) -> list[str]:
    headers, rows = table
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return out + ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]


def to_markdown(report: ReportFile, scores: dict[str, float], plots: list[Plot], notes: list[str]) -> str:
    out = [f"# cdelta report: {report.run}", "", *_intro(report), "", "## Backends", "",
           *_md_table(headline(report, scores)), "", "## Refusal per category", "",
           *_md_table(per_category(report)), ""]
    if notes:
        out += ["## Notes", "", *(f"- {note}" for note in notes), ""]
    out += ["## Plots", ""]
    for plot in plots:
        out += [f"![{plot.caption}]({plot.file})", "", f"*{plot.caption}*", ""]
    return "\n".join(out)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 80em; }
table { border-collapse: collapse; margin-bottom: 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td:first-child { text-align: left; }
figure { margin: 1em 0; }
figcaption { color: #555; font-size: 0.9em; }
img { max-width: 100%; }
"""


def _html_table(table: Table) -> list[str]:
    headers, rows = table
    esc = html.escape
    return (["<table>", "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>"]
            + ["<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows] + ["</table>"])


def to_html(report: ReportFile, scores: dict[str, float], plots: list[Plot], notes: list[str], folder: Path) -> str:
    """One file: CSS inline, every plot a data: URI read from `folder`."""
    esc = html.escape
    title = f"cdelta report: {report.run}"
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{esc(title)}</title>",
           f"<style>{STYLE}</style></head><body>", f"<h1>{esc(title)}</h1>",
           *(f"<p>{esc(line.replace('`', ''))}</p>" for line in _intro(report)),
           "<h2>Backends</h2>", *_html_table(headline(report, scores)),
           "<h2>Refusal per category</h2>", *_html_table(per_category(report))]
    if notes:
        out += ["<h2>Notes</h2>", "<ul>", *(f"<li>{esc(note)}</li>" for note in notes), "</ul>"]
    out.append("<h2>Plots</h2>")
    for plot in plots:
        data = base64.b64encode((folder / plot.file).read_bytes()).decode("ascii")
        out += [f'<figure><img alt="{esc(plot.caption)}" src="data:image/png;base64,{data}">',
                f"<figcaption>{esc(plot.caption)}</figcaption></figure>"]
    out.append("</body></html>")
    return "\n".join(out) + "\n"
