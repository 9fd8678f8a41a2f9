"""Errors raised by tasks/ (which imports nothing from cdelta): the harness reports them plainly."""
from __future__ import annotations


class SuiteFormatError(ValueError):
    """A prompt file, benchmark file or suite option is malformed; the message names the expected format."""
