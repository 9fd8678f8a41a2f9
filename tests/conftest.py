"""Test session set-up: one thread for stable timings on two cores, and one small organism per session."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def small_organism(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The --small organism, built once per test session into a private cache."""
    from harness.organism.build import build
    from harness.organism.config import SMALL
    from tasks.suite.generate import generate_suite, suite_fingerprint

    out = tmp_path_factory.mktemp("organisms") / "small"
    records = generate_suite(SMALL.suite_seed, SMALL.suite_counts)
    return build(SMALL, records, suite_fingerprint(SMALL.suite_seed, SMALL.suite_counts), out, show_progress=False)
