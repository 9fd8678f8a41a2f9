"""The one interface every engine and backend serves: prompts in, texts with token counts and timings out."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings; greedy (temperature 0) unless asked otherwise."""

    max_new_tokens: int = 48
    temperature: float = 0.0
    batch_size: int = 32
    min_new_tokens: int = 0  # end of sequence is suppressed before this many: a benchmark forces equal work


@dataclass(frozen=True)
class Generation:
    """One completion. `seconds` is the wall time of the batch it was generated in, chat rendering,
    tokenization and decoding included, so that every engine measures the same span."""

    text: str
    prompt_tokens: int
    output_tokens: int
    seconds: float


class Generator(Protocol):
    def generate(self, prompts: Sequence[str], params: GenerationParams,
                 on_batch: Callable[[int], None] | None = None) -> list[Generation]:
        """Chat-format each user prompt, generate, and return one Generation per prompt, in order."""
        ...


# What an engine does with one batch: (text, prompt tokens, output tokens) per prompt, in order.
BatchRunner = Callable[[Sequence[str]], list[tuple[str, int, int]]]


def generate_in_batches(prompts: Sequence[str], batch_size: int, run_batch: BatchRunner,
                        on_batch: Callable[[int], None] | None = None) -> list[Generation]:
    """The loop every engine shares: split into batches, time each batch as a whole, report progress."""
    out: list[Generation] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        began = time.perf_counter()
        rows = run_batch(chunk)
        seconds = time.perf_counter() - began
        out += [Generation(text, prompt_tokens, output_tokens, seconds) for text, prompt_tokens, output_tokens in rows]
        if on_batch is not None:
            on_batch(len(chunk))
    return out
