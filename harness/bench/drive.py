"""The parent's side of the bench: worker processes it starts, asks and stops (protocol in worker.py),
driven through a schedule's steps (schedule.py), one command at a time, so only one worker computes
at any moment and the others wait on their input."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from cdelta.errors import CdeltaError
from harness.bench.runs import Run
from harness.bench.schedule import Step
from harness.bench.worker import WorkerCommand, WorkerSetup

STDERR_TAIL = 3000
EXIT_WAIT_S = 30  # for a worker to exit after its input ends (vLLM shuts its engine processes down)
RUN = TypeAdapter(Run)


class Worker:
    """One backend's worker process; its user-facing errors, or its crash with the tail of its stderr,
    come back as CdeltaError."""

    def __init__(self, setup: WorkerSetup) -> None:
        self.backend = setup.backend
        env = {**os.environ, "OMP_NUM_THREADS": str(setup.threads), "MKL_NUM_THREADS": str(setup.threads),
               "TOKENIZERS_PARALLELISM": "false"}
        self._stderr = tempfile.TemporaryFile("w+")
        self._proc = subprocess.Popen([sys.executable, "-m", "harness.bench.worker"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env)
        try:
            self._send(setup.model_dump_json())
            self._receive()  # {"ready": true} once the backend is loaded
        except BaseException:
            self.close()
            raise

    def ask(self, command: WorkerCommand) -> dict[str, Any]:
        self._send(command.model_dump_json())
        return self._receive()

    def _send(self, line: str) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise self._crashed() from None

    def _receive(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise self._crashed()
        event = json.loads(line)
        if "error" in event:
            raise CdeltaError(f"backend {self.backend}: {event['error']}")
        return event

    def _crashed(self) -> CdeltaError:
        code = self._proc.wait()
        self._stderr.seek(0)
        tail = self._stderr.read()[-STDERR_TAIL:]
        return CdeltaError(f"the benchmark worker of backend {self.backend} failed (exit code {code}); "
                           f"its last output:\n{tail}")

    def close(self) -> None:
        """End its input and let it exit; terminate, then kill, one that does not."""
        with contextlib.suppress(OSError):  # BrokenPipeError where it has exited already
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()


@dataclass
class Measured:
    """The timed runs by (backend, batch size, round) and each span's peak memory by (backend, batch size)."""

    runs: dict[tuple[str, int, int], Run] = field(default_factory=dict)
    peaks: dict[tuple[str, int], float] = field(default_factory=dict)

    def timed(self, backend: str, batch_size: int) -> list[Run]:
        """A backend's timed runs at a batch size, in round order."""
        return [self.runs[key] for key in sorted(self.runs) if key[:2] == (backend, batch_size)]


def drive(steps: Iterable[Step], setups: Mapping[str, WorkerSetup], on_run: Callable[[], None]) -> Measured:
    """Carry out the steps in order; every worker started is stopped, also on an error or an interrupt."""
    workers: dict[str, Worker] = {}
    measured = Measured()
    try:
        for step in steps:
            if step.action == "start":
                workers[step.backend] = Worker(setups[step.backend])
            elif step.action == "stop":
                workers.pop(step.backend).close()
            else:
                do(step, workers[step.backend], measured, on_run)
    finally:
        for worker in workers.values():
            worker.close()
    return measured


def do(step: Step, worker: Worker, measured: Measured, on_run: Callable[[], None]) -> None:
    """One command of a span or run step, its answer recorded."""
    assert step.batch_size is not None
    op = "run" if step.action == "warmup" else step.action
    answer = worker.ask(WorkerCommand(op=op, batch_size=step.batch_size))  # type: ignore[arg-type]
    if step.action == "end":
        measured.peaks[step.backend, step.batch_size] = float(answer["peak_mb"])
    elif step.action == "run":
        assert step.round is not None
        measured.runs[step.backend, step.batch_size, step.round] = RUN.validate_python(answer["run"])
    if op == "run":
        on_run()
