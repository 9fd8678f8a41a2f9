"""bench.json as a table: backend × batch size, with each backend's tokens/s against noop's."""
from __future__ import annotations

from rich import box
from rich.table import Table

from harness.reporting.costs import ratio_text
from harness.reporting.schema import BenchFile

PAIRING = {"rounds": "ratios vs noop paired by round",
           "sequential": "sequential schedule: ratios vs noop UNPAIRED (machine drift between backends is in them)"}


def _or_dash(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def bench_table(bench: BenchFile) -> Table:
    """One row per backend and batch size; tok/s vs noop is the median [min–max] over rounds of the ratio."""
    table = Table(title=f"serving cost, {bench.engine} engine, {bench.threads} thread(s), {bench.prompts} prompts x "
                        f"{bench.max_new_tokens} tokens" + (f", shape {bench.shape}" if bench.shape else ""),
                  caption=PAIRING[bench.schedule],
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)  # fits 80 columns
    for column in ("backend", "batch", "tok/s", "p50 s", "p95 s", "TTFT s", "peak MB", "+ms/step"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    table.add_column("tok/s vs noop", justify="right", no_wrap=True)
    for backend in bench.backends:
        for p in backend.points:
            table.add_row(backend.backend, str(p.batch_size), f"{p.output_tokens_per_s:.1f}", f"{p.latency_p50_s:.3f}",
                          f"{p.latency_p95_s:.3f}", _or_dash(p.ttft_p50_s, ".4f"), f"{p.peak_memory_mb:.0f}",
                          _or_dash(p.hook_overhead_per_step_ms, "+.2f"), ratio_text(p) or "—")
    return table
