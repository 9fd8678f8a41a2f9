"""Reading `report.json` files for `cdelta check` and `cdelta leaderboard`: an input that cannot be
compared is exit 2, distinct from exit 1 (a regression), so CI can tell a broken pipeline from a
worse model."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from cdelta.errors import CdeltaError
from cdelta.policy import ACTIONS
from harness.reporting.schema import ReportFile, read_json_model

Direction = Literal["refuse", "release"]


class UnusableReport(CdeltaError):
    """A report that cannot be read, or reports that cannot be compared: nothing was judged."""

    exit_code = 2


def load_report(path: Path) -> ReportFile:
    """A validated report; a folder stands for its `report.json`."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        return read_json_model(path, ReportFile, "report")
    except UnusableReport:
        raise
    except CdeltaError as exc:
        raise UnusableReport(str(exc)) from None


def policy_direction(report: ReportFile) -> Direction:
    """Which way the target refusal should move: up under `refuse:…`, down under `release:…`.

    A policy that mixes both pools targets that pull in opposite directions into one rate, so no
    single direction (and no score) is meaningful for it."""
    actions = {part.strip().partition(":")[0] for part in report.policy.split(",") if part.strip()}
    unknown = actions - set(ACTIONS)
    if not actions or unknown:
        raise UnusableReport(f"report {report.run} has policy {report.policy!r}, not refuse:CATEGORY or "
                             f"release:CATEGORY (comma-joined); regenerate it with `cdelta report`")
    if len(actions) > 1:
        raise UnusableReport(f"report {report.run} mixes refuse and release in policy {report.policy!r}: its pooled "
                             f"target refusal has no single good direction; report each action separately")
    return "release" if actions == {"release"} else "refuse"
