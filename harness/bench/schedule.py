"""The order of the bench's work, as a list of steps for the driver (drive.py): start a backend's worker,
begin a batch size's memory span, a warm-up or timed run, end the span, stop the worker.

`rounds` keeps every worker alive and, per batch size, has each backend do one timed run per round,
back to back, in an order rotated every round (no backend is always first, in a warmer or colder
machine); `sequential` runs one worker at a time, all its batch sizes, then the next. Both are made of
the same per-batch-size block, so one driver runs either.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

Action = Literal["start", "begin", "warmup", "run", "end", "stop"]


@dataclass(frozen=True)
class Step:
    action: Action
    backend: str
    batch_size: int | None = None  # None for start and stop
    round: int | None = None  # the timed run's round (its index among the backend's runs at this batch size)


def rotated(backends: Sequence[str], turn: int) -> list[str]:
    """The order of round `turn`: shifted by one each round."""
    shift = turn % len(backends)
    return [*backends[shift:], *backends[:shift]]


def batch_block(backends: Sequence[str], batch_size: int, warmup: int, repeats: int) -> Iterator[Step]:
    """One batch size: every span begun, warm-ups, then rounds of one timed run per backend, spans ended."""
    yield from (Step("begin", b, batch_size) for b in backends)
    for _ in range(warmup):
        yield from (Step("warmup", b, batch_size) for b in backends)
    for turn in range(repeats):
        yield from (Step("run", b, batch_size, turn) for b in rotated(backends, turn))
    yield from (Step("end", b, batch_size) for b in backends)


def rounds(backends: Sequence[str], batch_sizes: Sequence[int], warmup: int, repeats: int) -> Iterator[Step]:
    """Every worker alive at once; batch sizes in increasing order (see memory.py), rounds within each."""
    yield from (Step("start", b) for b in backends)
    for batch_size in sorted(batch_sizes):
        yield from batch_block(backends, batch_size, warmup, repeats)
    yield from (Step("stop", b) for b in backends)


def sequential(backends: Sequence[str], batch_sizes: Sequence[int], warmup: int, repeats: int) -> Iterator[Step]:
    """One worker at a time, for engines that reserve most of a device each (vLLM on a GPU)."""
    for backend in backends:
        yield Step("start", backend)
        for batch_size in sorted(batch_sizes):
            yield from batch_block([backend], batch_size, warmup, repeats)
        yield Step("stop", backend)


SCHEDULES: dict[str, Callable[[Sequence[str], Sequence[int], int, int], Iterator[Step]]] = {
    "rounds": rounds, "sequential": sequential,
}
