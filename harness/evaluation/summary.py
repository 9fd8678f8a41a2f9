"""The summary of a run, read back from its inspect logs through inspect_ai.analysis: one row per
task metric, one column per backend."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from inspect_ai.analysis import EvalColumn, evals_df
from inspect_ai.log import EvalLog
from rich.table import Table


def _metrics(log: EvalLog) -> dict[str, dict[str, float]] | None:
    if log.results is None:
        return None
    return {score.name: {key: metric.value for key, metric in score.metrics.items()} for score in log.results.scores}


SUMMARY_COLUMNS = [
    EvalColumn("task", path="eval.task", required=True),
    EvalColumn("backend", path="metadata.backend"),
    EvalColumn("samples", path="results.completed_samples"),
    EvalColumn("metrics", path=_metrics),
]

Row = tuple[str, str, str]  # task, scorer, metric


def summary_rows(logs: Sequence[EvalLog] | Sequence[str]) -> tuple[list[str], dict[Row, dict[str, float]]]:
    """Backends in run order, and each (task, scorer, metric) with its value per backend."""
    frame = evals_df([log.location if isinstance(log, EvalLog) else log for log in logs],
                     columns=SUMMARY_COLUMNS, quiet=True)
    backends: list[str] = []
    rows: dict[Row, dict[str, float]] = {}
    for record in frame.to_dict("records"):
        backend = str(record["backend"])
        if backend not in backends:
            backends.append(backend)
        rows.setdefault((record["task"], "samples", "completed"), {})[backend] = float(record["samples"] or 0)
        metrics: Any = record["metrics"]
        for scorer, values in (json.loads(metrics) if isinstance(metrics, str) else metrics or {}).items():
            for metric, value in values.items():
                rows.setdefault((record["task"], scorer, metric), {})[backend] = float(value)
    return backends, rows


def summary_table(logs: Sequence[EvalLog] | Sequence[str]) -> Table:
    """Rates and accuracies per backend; sample counts as integers."""
    backends, rows = summary_rows(logs)
    table = Table(title="cdelta eval summary")
    for name in ("task", "scorer", "metric", *backends):
        table.add_column(name, justify="right" if name in backends else "left")
    for (task, scorer, metric), values in rows.items():
        table.add_row(task, scorer, metric, *(_cell(values, b, integer=scorer == "samples") for b in backends))
    return table


def _cell(values: dict[str, float], backend: str, integer: bool) -> str:
    if backend not in values:
        return "–"
    return f"{values[backend]:.0f}" if integer else f"{values[backend]:.3f}"
