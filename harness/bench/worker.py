"""One backend's benchmark in a fresh process: a job as JSON on stdin, events as JSON lines on stdout.

A fresh process per backend gives every backend the same memory baseline and the same cold state.
Events: `{"run": true}` after each run (for the progress bar), `{"point": {...}}` per batch size (a
BenchPoint), or `{"error": "..."}` for a user-facing failure. Anything libraries print goes to stderr,
so stdout carries events only.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel, ConfigDict

from cdelta.errors import CdeltaError


class BenchJob(BaseModel):
    """What one worker measures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str
    engine: str
    model: str
    artifact: str | None
    prompts: list[str]
    batch_sizes: list[int]
    warmup: int
    repeats: int
    max_new_tokens: int
    threads: int
    device: str = "cpu"


def run_job(job: BenchJob, events: TextIO) -> None:
    """Load the backend once, then measure each batch size in increasing order (see memory.py)."""
    import torch

    from backends.registry import make_backend
    from harness.bench.measure import measure_point

    torch.set_num_threads(job.threads)
    backend = make_backend(job.backend, Path(job.model), None if job.artifact is None else Path(job.artifact),
                           device=job.device, engine=job.engine)

    def emit(event: dict[str, object]) -> None:
        events.write(json.dumps(event) + "\n")
        events.flush()

    for batch_size in sorted(job.batch_sizes):
        point = measure_point(backend, job.prompts, batch_size, job.max_new_tokens, job.warmup, job.repeats,
                              on_run=lambda: emit({"run": True}), device=job.device)
        emit({"point": point.model_dump(mode="json")})


def main() -> int:
    events = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # library output, even from C, lands on stderr
    job = BenchJob.model_validate_json(sys.stdin.read())
    try:
        run_job(job, events)
    except CdeltaError as exc:
        events.write(json.dumps({"error": str(exc)}) + "\n")
        events.flush()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
