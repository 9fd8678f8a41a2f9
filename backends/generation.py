"""The one interface every engine and backend serves: prompts in, texts with token counts and timings out."""
from __future__ import annotations

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
    """One completion. `seconds` is the wall time of the batch it was generated in."""

    text: str
    prompt_tokens: int
    output_tokens: int
    seconds: float


class Generator(Protocol):
    def generate(self, prompts: Sequence[str], params: GenerationParams,
                 on_batch: Callable[[int], None] | None = None) -> list[Generation]:
        """Chat-format each user prompt, generate, and return one Generation per prompt, in order."""
        ...
