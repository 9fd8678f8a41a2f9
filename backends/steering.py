"""Steering interventions for the transformers engine: ActAdd on every sequence, CAST per sequence.

CAST decides for each sequence of a batch on its own: one extra read of the prompts (stopped at the
condition layer) gives each row's condition, and the behaviour vectors are added only to the rows
that meet it, at every position or at the prompt's only (`positions`). The reference implementation
reads and steers only the first sequence of a batch; here a prompt gets the same output in any batch.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import BatchEncoding, PreTrainedModel

from cdelta.steering import Condition, Positions, SteeringArtifact, adding


def prompt_length(batch: BatchEncoding, positions: Positions) -> int | None:
    """The padded prompt length that limits steering to the prompt, or None to steer every position."""
    return int(batch["input_ids"].shape[1]) if positions == "prompt" else None


class ActAdd:
    """Add fixed vectors to the residual stream of every sequence."""

    def __init__(self, additions: dict[int, torch.Tensor], positions: Positions = "all") -> None:
        self.additions, self.positions = additions, positions

    @contextmanager
    def during(self, model: PreTrainedModel, batch: BatchEncoding) -> Iterator[None]:
        with adding(model, self.additions, prompt_length=prompt_length(batch, self.positions)):
            yield


class Cast:
    """Add the behaviour vectors only to the sequences whose prompt meets the condition."""

    def __init__(self, condition: Condition, additions: dict[int, torch.Tensor], positions: Positions = "all") -> None:
        self.condition, self.additions, self.positions = condition, additions, positions
        self.last_rows: torch.Tensor | None = None  # the latest batch's decisions, for inspection

    @contextmanager
    def during(self, model: PreTrainedModel, batch: BatchEncoding) -> Iterator[None]:
        rows = self.condition.holds_for_batch(model, batch["input_ids"], batch["attention_mask"])
        self.last_rows = rows.cpu()
        with adding(model, self.additions, rows=rows, prompt_length=prompt_length(batch, self.positions)):
            yield


def intervention_for(artifact: SteeringArtifact) -> ActAdd | Cast:
    if artifact.condition is None:
        return ActAdd(artifact.additions(), artifact.positions)
    return Cast(artifact.condition, artifact.additions(), artifact.positions)
