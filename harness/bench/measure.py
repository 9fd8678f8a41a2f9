"""Timing one run of one backend at one batch size, in this process (the worker's); the parent makes
medians and comparisons of the runs (runs.py).

A run is one pass over the fixed prompts in batches of the batch size, one `generate` call per batch,
every request forced to exactly `max_new_tokens` output tokens (end of sequence suppressed until
then), so that tokens/s compares equal work across backends. A request's latency is the wall time of
the `generate` call of its batch (chat rendering and tokenization included, as a caller sees it).
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import nn

from backends.generation import GenerationParams, Generator
from backends.hf_engine import HFEngine
from cdelta.errors import CdeltaError
from harness.bench.runs import Batch, Run


class FirstLogitsClock:
    """When a batch's first logits exist. A forward hook on the output embedding fires once per forward
    that makes logits: the prefill (which yields the first token) first, then one per decode step; CAST's
    condition read stops at its layer and never reaches it. Every backend carries the same hook."""

    def __init__(self, head: nn.Module) -> None:
        self.first: float | None = None
        self._handle = head.register_forward_hook(self._seen)

    def _seen(self, *_: object) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    def start(self) -> None:
        self.first = None

    def close(self) -> None:
        self._handle.remove()


@contextmanager
def first_logits_clock(backend: Generator) -> Iterator[FirstLogitsClock | None]:
    """A clock on the transformers engine's model; None for an engine whose forward passes we cannot see."""
    head = backend.model.get_output_embeddings() if isinstance(backend, HFEngine) else None
    if head is None:
        yield None
        return
    clock = FirstLogitsClock(head)
    try:
        yield clock
    finally:
        clock.close()


def forced_params(max_new_tokens: int, batch_size: int) -> GenerationParams:
    """Greedy, exactly `max_new_tokens` new tokens per request."""
    return GenerationParams(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, batch_size=batch_size)


def time_run(backend: Generator, prompts: Sequence[str], params: GenerationParams,
             clock: FirstLogitsClock | None) -> Run:
    """One pass over `prompts`, one generate call per batch; fails if a request was not forced to full length."""
    batches, tokens = [], 0
    began = time.perf_counter()
    for start in range(0, len(prompts), params.batch_size):
        chunk = prompts[start:start + params.batch_size]
        if clock is not None:
            clock.start()
        called = time.perf_counter()
        generations = backend.generate(chunk, params)
        seconds = time.perf_counter() - called
        short = [g.output_tokens for g in generations if g.output_tokens != params.max_new_tokens]
        if short:
            raise CdeltaError(f"the engine returned {short[0]} output tokens where {params.max_new_tokens} were forced; "
                              "tokens/s would compare unequal work: the engine must honour min_new_tokens")
        tokens += sum(g.output_tokens for g in generations)
        first = None if clock is None or clock.first is None else clock.first - called
        batches.append(Batch(len(chunk), seconds, first))
    return Run(time.perf_counter() - began, tokens, tuple(batches))
