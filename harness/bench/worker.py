"""One backend's worker process: loads the backend once, then answers the parent's commands.

A process per backend gives every backend the same memory baseline and its own peak-memory spans.
Protocol, one JSON object a line: the parent writes a WorkerSetup, the worker loads and answers
`{"ready": true}`; then per WorkerCommand one answer: `begin` (start a batch size's memory span) →
`{"begun": B}`, `run` (one timed run at batch size B) → `{"run": {...}}` (a runs.Run), `end` (close
the span) → `{"peak_mb": x}`. A user-facing failure answers `{"error": "..."}` and ends the worker;
end of input ends it too. The worker computes only while answering, so workers that wait on stdin
cost the one that measures nothing. Anything libraries print goes to stderr: stdout carries answers only.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

from pydantic import BaseModel, ConfigDict

from cdelta.errors import CdeltaError

if TYPE_CHECKING:
    from backends.generation import Generator
    from harness.bench.measure import FirstLogitsClock


class WorkerSetup(BaseModel):
    """What one worker loads and measures with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str
    engine: str
    model: str
    artifact: str | None
    prompts: list[str]
    max_new_tokens: int
    threads: int
    device: str = "cpu"


class WorkerCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["begin", "run", "end"]
    batch_size: int


def answer(command: WorkerCommand, setup: WorkerSetup, backend: Generator,
           clock: FirstLogitsClock | None) -> dict[str, object]:
    """Do one command."""
    from harness.bench.measure import forced_params, time_run
    from harness.bench.memory import peak_mb, reset_peak

    if command.op == "begin":
        reset_peak(setup.device)
        return {"begun": command.batch_size}
    if command.op == "end":
        return {"peak_mb": peak_mb(setup.device)}
    run = time_run(backend, setup.prompts, forced_params(setup.max_new_tokens, command.batch_size), clock)
    return {"run": asdict(run)}


def serve(commands: TextIO, answers: TextIO) -> None:
    """Read the setup, load the backend, answer commands until end of input."""
    import torch

    from backends.registry import make_backend
    from harness.bench.measure import first_logits_clock

    def send(event: dict[str, object]) -> None:
        answers.write(json.dumps(event) + "\n")
        answers.flush()

    setup = WorkerSetup.model_validate_json(commands.readline())
    torch.set_num_threads(setup.threads)
    backend = make_backend(setup.backend, Path(setup.model), None if setup.artifact is None else Path(setup.artifact),
                           device=setup.device, engine=setup.engine)
    send({"ready": True})
    with first_logits_clock(backend) as clock:
        for line in commands:
            send(answer(WorkerCommand.model_validate_json(line), setup, backend, clock))


def main() -> int:
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # library output, even from C, lands on stderr
    try:
        serve(sys.stdin, answers)
    except CdeltaError as exc:
        answers.write(json.dumps({"error": str(exc)}) + "\n")
        answers.flush()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
