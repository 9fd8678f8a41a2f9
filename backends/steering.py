"""Steering interventions for the transformers engine: ActAdd on every sequence, CAST per sequence.

CAST decides for each sequence of a batch on its own: one extra read of the prompts (stopped at the
condition layer) gives each row's condition, and the behaviour vectors are added only to the rows
that meet it, at every position, prompt and generated tokens alike. The reference implementation
reads and steers only the first sequence of a batch; here a prompt gets the same output in any batch.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import BatchEncoding, PreTrainedModel

from cdelta.steering import Condition, SteeringArtifact, adding


class ActAdd:
    """Add fixed vectors to the residual stream of every sequence."""

    def __init__(self, additions: dict[int, torch.Tensor]) -> None:
        self.additions = additions

    @contextmanager
    def during(self, model: PreTrainedModel, batch: BatchEncoding) -> Iterator[None]:
        with adding(model, self.additions):
            yield


class Cast:
    """Add the behaviour vectors only to the sequences whose prompt meets the condition."""

    def __init__(self, condition: Condition, additions: dict[int, torch.Tensor]) -> None:
        self.condition, self.additions = condition, additions
        self.last_rows: torch.Tensor | None = None  # the latest batch's decisions, for inspection

    @contextmanager
    def during(self, model: PreTrainedModel, batch: BatchEncoding) -> Iterator[None]:
        rows = self.condition.holds_for_batch(model, batch["input_ids"], batch["attention_mask"])
        self.last_rows = rows.cpu()
        with adding(model, self.additions, rows=rows):
            yield


def intervention_for(artifact: SteeringArtifact) -> ActAdd | Cast:
    if artifact.condition is None:
        return ActAdd(artifact.additions())
    return Cast(artifact.condition, artifact.additions())
