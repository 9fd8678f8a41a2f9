"""Dev/test splits for benchmarks that publish none: a seeded hash, so every run and every
machine puts a prompt in the same split, and variants of one prompt (a family) together."""
from __future__ import annotations

import hashlib

from tasks.errors import SuiteFormatError
from tasks.suite.records import Split


def check_dev_fraction(dev_fraction: float) -> None:
    """Reject a dev share outside [0, 1] before any file is read."""
    if not 0.0 <= dev_fraction <= 1.0:
        raise SuiteFormatError(f"dev_fraction must lie in [0, 1], got {dev_fraction}")


def hash_split(benchmark: str, family: str, seed: int = 0, dev_fraction: float = 0.5) -> Split:
    """`dev` for about `dev_fraction` of families, `test` for the rest; the benchmark name is in
    the key so that equal ids in two benchmarks split independently."""
    check_dev_fraction(dev_fraction)
    digest = hashlib.sha256(f"{seed}:{benchmark}:{family}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return "dev" if position < dev_fraction else "test"
