"""Test session set-up: one thread for stable timings on two cores, and one small organism per session."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session gets its own organism cache, never the user's."""
    cache = tmp_path_factory.mktemp("cdelta-cache")
    os.environ["CDELTA_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def small_organism(private_cache: Path) -> Path:
    """The --small organism, built once per test session where `cdelta ... --small` looks for it."""
    from harness.organism.build import build_on_suite
    from harness.organism.config import SMALL
    from harness.organism.registry import cached_path

    return build_on_suite(SMALL, cached_path(SMALL), show_progress=False)
