"""The leaderboard written out: Markdown and self-contained HTML (formatted cells, one table per
policy), CSV (raw numbers, one flat table with a policy column, for spreadsheets and plots), and a
rich table for the console."""
from __future__ import annotations

import csv
import html
import io
from collections.abc import Callable, Sequence

from rich.markup import escape
from rich.table import Table

from harness.reporting.leaderboard import Row, Section
from harness.reporting.score import SCORE_FORMULA

MISSING = "–"
TITLE = "cdelta leaderboard"


def _pct(value: float | None, digits: int = 1) -> str:
    return MISSING if value is None else f"{100 * value:.{digits}f}%"


def _target(row: Row) -> str:
    lo, hi = row.target_refusal.ci95
    return f"{_pct(row.target_refusal.value)} [{100 * lo:.1f}, {100 * hi:.1f}] (n={row.target_refusal.n})"


def _break_even(row: Row) -> str:
    if not row.break_even_requests:
        return MISSING
    return "; ".join(f"vs {name}: {MISSING if n is None else f'{n:,.0f}'}"
                     for name, n in sorted(row.break_even_requests.items()))


COLUMNS: list[tuple[str, Callable[[Row], str]]] = [
    ("rank", lambda r: str(r.rank)),
    ("run", lambda r: r.run),
    ("backend", lambda r: r.backend),
    ("score", lambda r: f"{r.score:.3f}"),
    ("target refusal [95% CI]", _target),
    ("off-target change", lambda r: f"{100 * r.off_target_change.value:.1f} pts"),
    ("over-refusal", lambda r: _pct(r.over_refusal.value)),
    ("utility", lambda r: _pct(r.utility.value)),
    ("retention", lambda r: MISSING if r.utility_retention is None else f"{r.utility_retention:.3f}"),
    ("parameters changed", lambda r: _pct(r.parameters_changed, 2)),
    ("tokens/s (batch 1)", lambda r: MISSING if r.tokens_per_s_b1 is None else f"{r.tokens_per_s_b1:.1f}"),
    ("tok/s vs noop (batch 1)",
     lambda r: MISSING if r.throughput_ratio_b1 is None else f"{r.throughput_ratio_b1:.2f}"),
    ("p50 latency (batch 1)", lambda r: MISSING if r.latency_p50_s_b1 is None else f"{r.latency_p50_s_b1:.3f} s"),
    ("break-even requests", _break_even),
]
# dropped where nothing was measured
OPTIONAL = {"tokens/s (batch 1)", "tok/s vs noop (batch 1)", "p50 latency (batch 1)", "break-even requests"}


def table(section: Section) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells of one section, without the optional columns no row has data for."""
    cells = [[fmt(row) for _, fmt in COLUMNS] for row in section.rows]
    keep = [i for i, (name, _) in enumerate(COLUMNS)
            if name not in OPTIONAL or any(line[i] != MISSING for line in cells)]
    return [COLUMNS[i][0] for i in keep], [[line[i] for i in keep] for line in cells]


def heading(section: Section) -> str:
    return f"{section.policy} (targets: {', '.join(section.targets)})"


def to_markdown(sections: Sequence[Section]) -> str:
    out = [f"# {TITLE}", "", f"Ranked within each policy by the selectivity score: {SCORE_FORMULA}.", ""]
    for section in sections:
        headers, rows = table(section)
        out += [f"## {heading(section)}", "",
                "| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        out += [""] + [f"- {note}" for note in section.notes] + ([""] if section.notes else [])
    return "\n".join(out)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td:nth-child(2), td:nth-child(3) { text-align: left; }
.note { color: #666; }
"""


def to_html(sections: Sequence[Section]) -> str:
    """One file with its CSS inline: it opens anywhere, with nothing to fetch."""
    esc = html.escape
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{TITLE}</title>",
           f"<style>{STYLE}</style></head><body>", f"<h1>{TITLE}</h1>",
           f"<p>Ranked within each policy by the selectivity score: {esc(SCORE_FORMULA)}.</p>"]
    for section in sections:
        headers, rows = table(section)
        out += [f"<h2>{esc(heading(section))}</h2>", "<table>",
                "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>"]
        out += ["<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows]
        out += ["</table>"] + [f'<p class="note">{esc(note)}</p>' for note in section.notes]
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def to_csv(sections: Sequence[Section]) -> str:
    """Raw values (fractions, seconds), empty where not measured; one break-even column per steering backend."""
    steering = sorted({name for s in sections for r in s.rows for name in r.break_even_requests})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["policy", "targets", "rank", "run", "backend", "score", "target_refusal",
                     "target_refusal_ci_low", "target_refusal_ci_high", "target_refusal_n", "off_target_change",
                     "over_refusal", "utility", "utility_retention", "parameters_changed",
                     "tokens_per_s_batch1", "throughput_ratio_vs_noop_batch1", "latency_p50_s_batch1",
                     *(f"break_even_vs_{n}" for n in steering)])
    for section in sections:
        for r in section.rows:
            lo, hi = r.target_refusal.ci95
            writer.writerow([section.policy, ";".join(section.targets), r.rank, r.run, r.backend, r.score,
                             r.target_refusal.value, lo, hi, r.target_refusal.n, r.off_target_change.value,
                             r.over_refusal.value, r.utility.value, _raw(r.utility_retention),
                             _raw(r.parameters_changed), _raw(r.tokens_per_s_b1), _raw(r.throughput_ratio_b1),
                             _raw(r.latency_p50_s_b1),
                             *(_raw(r.break_even_requests.get(n)) for n in steering)])
    return buffer.getvalue()


def _raw(value: float | None) -> str:
    return "" if value is None else repr(value)


def to_rich(section: Section) -> Table:
    headers, rows = table(section)
    out = Table(title=f"{TITLE}: {heading(section)}")
    for name in headers:
        out.add_column(escape(name), justify="left" if name in ("run", "backend") else "right")
    for row in rows:
        out.add_row(*(escape(cell) for cell in row))
    return out
