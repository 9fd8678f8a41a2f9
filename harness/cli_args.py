"""Argument forms that several commands share: the model to run, comma-separated names and BACKEND=PATH artifacts."""
from __future__ import annotations

import argparse
from pathlib import Path

from cdelta.errors import CdeltaError


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """`--model` of the commands that run a model as it is (eval, bench): the committed organism unless told."""
    parser.add_argument("--model", default="default",
                        help="model folder, or an organism name such as organism-small (default: the committed organism)")


def comma_names(text: str) -> tuple[str, ...]:
    """`noop,cdelta` → ("noop", "cdelta"); an argparse type, so a bad value is a usage error."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected one or more names separated by commas")
    return names


def parse_artifacts(pairs: list[str]) -> dict[str, Path]:
    """`backend=path` pairs; one artifact per backend."""
    out: dict[str, Path] = {}
    for pair in pairs:
        backend, sep, path = pair.partition("=")
        if not sep or not backend or not path:
            raise CdeltaError(f"--artifact {pair!r} is not of the form BACKEND=PATH")
        if backend in out:
            raise CdeltaError(f"--artifact names backend {backend!r} twice")
        out[backend] = Path(path)
    return out
