"""A rich console for commands whose output lands in CI logs."""
from __future__ import annotations

from rich.console import Console


def log_console(min_width: int) -> Console:
    """CI logs are not terminals: rich would squeeze wide tables into 80 columns, so give them room."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=max(console.width, min_width))
