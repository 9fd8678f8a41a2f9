"""bench.json as a table: backend × batch size, with each backend's tokens/s against noop's."""
from __future__ import annotations

from rich.table import Table

from harness.reporting.schema import BenchFile


def _or_dash(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def bench_table(bench: BenchFile) -> Table:
    """One row per backend and batch size; the ratio is tok/s over noop's at the same batch size."""
    noop = {p.batch_size: p.output_tokens_per_s for b in bench.backends if b.backend == "noop" for p in b.points}
    table = Table(title=f"serving cost, {bench.engine} engine, {bench.threads} thread(s), {bench.prompts} prompts x "
                        f"{bench.max_new_tokens} tokens" + (f", shape {bench.shape}" if bench.shape else ""))
    for column in ("backend", "batch", "tok/s", "p50 s", "p95 s", "TTFT s", "peak MB", "+ms/step", "x noop"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for backend in bench.backends:
        for p in backend.points:
            ratio = p.output_tokens_per_s / noop[p.batch_size] if p.batch_size in noop else None
            table.add_row(backend.backend, str(p.batch_size), f"{p.output_tokens_per_s:.1f}", f"{p.latency_p50_s:.3f}",
                          f"{p.latency_p95_s:.3f}", _or_dash(p.ttft_p50_s, ".4f"), f"{p.peak_memory_mb:.0f}",
                          _or_dash(p.hook_overhead_per_step_ms, "+.2f"), _or_dash(ratio, ".3f"))
    return table
