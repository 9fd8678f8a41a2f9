"""The report folder: report.json, report.md, report.html and the plots, all appearing at once or
not at all, and never replacing a folder that is not an earlier report."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from cdelta.atomic import atomic_dir, atomic_write_text
from cdelta.circuit.artifact import Circuit
from cdelta.errors import CdeltaError
from harness.reporting.plots import draw_all
from harness.reporting.render import to_html, to_markdown
from harness.reporting.schema import ReportFile, dump_json_model
from harness.reporting.score import report_scores

FILES = ("report.json", "report.md", "report.html")


def check_replaceable(out: Path) -> None:
    """An existing folder is replaced only if it is empty or holds an earlier report.json."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "report.json").is_file())):
        raise CdeltaError(f"{out} exists and is not an earlier report (no report.json in it); choose another "
                          f"-o folder, or remove it first")


def write_report_folder(report: ReportFile, out: Path, notes: list[str], circuit: Circuit | None = None,
                        study: dict[str, Any] | None = None) -> list[Path]:
    """Draw the plots and write the three files into a temporary folder, renamed to `out` at the end."""
    check_replaceable(out)
    scores = report_scores(report)
    with atomic_dir(out, overwrite=True) as tmp:
        plots = draw_all(report, scores, tmp, circuit, study)
        atomic_write_text(tmp / "report.json", dump_json_model(report))
        atomic_write_text(tmp / "report.md", to_markdown(report, scores, plots, notes))
        atomic_write_text(tmp / "report.html", to_html(report, scores, plots, notes, tmp))
    return [out / name for name in (*FILES, *(p.file for p in plots))]
