"""User-facing errors: one message that names the problem and the fix, and a non-zero exit."""
from __future__ import annotations


class CdeltaError(Exception):
    """An error caused by the user's input or environment, reported without a traceback."""

    exit_code = 1
