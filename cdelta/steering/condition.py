"""The CAST condition (Lee et al. 2024): is this prompt about the target category?

A condition vector c per layer comes from paired prompts (target vs other): the first principal
component of the paired differences of their mean hidden states, or the difference of means. A
prompt's mean hidden state h̄ at layer l (over the user's text, without the chat template's tokens)
is scored sim = cos(h̄, tanh(P h̄)) with P = c cᵀ / cᵀc, and the condition holds when sim is above (or
below) a threshold. Layer, threshold and comparator are
chosen together by grid search for the best F1 on a labelled dev split.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from cdelta.errors import CdeltaError
from cdelta.steering.residual import instruction_mean, read_batch, read_prompts

Comparator = Literal["above", "below"]
COMPARATORS: tuple[Comparator, ...] = ("above", "below")
ConditionMethod = Literal["pca", "mean"]


def condition_vectors(target: torch.Tensor, other: torch.Tensor, method: ConditionMethod = "pca") -> torch.Tensor:
    """Unit condition vectors [layers, d] from mean hidden states [layers, n, d] of target and other prompts.

    Pairs are (target[i], other[i]); "pca" takes the top right singular vector of the uncentred pair
    differences (what IBM's pca_center computes), signed to point from other to target.
    """
    n = min(target.shape[1], other.shape[1])
    if n < 2:
        raise CdeltaError(f"the condition needs at least 2 pairs of target and other prompts, got {n}")
    diffs = (target[:, :n] - other[:, :n]).double()
    mean = diffs.mean(dim=1)
    if method == "mean":
        vectors = mean
    elif method == "pca":
        vectors = torch.linalg.svd(diffs, full_matrices=False).Vh[:, 0]
        vectors = vectors * torch.sign((vectors * mean).sum(-1, keepdim=True) + 1e-30)
    else:
        raise CdeltaError(f"unknown condition method {method!r}; use 'pca' or 'mean'")
    return (vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=1e-30)).float()


def similarity(hidden: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """cos(h̄, tanh(P h̄)) for each mean hidden state h̄ in [..., d]."""
    h = hidden.float()
    c = vector.to(h.device, torch.float32)
    projected = torch.tanh((h @ c / (c @ c)).unsqueeze(-1) * c)
    return torch.nn.functional.cosine_similarity(h, projected, dim=-1)


@dataclass(frozen=True)
class Condition:
    layer: int
    vector: torch.Tensor  # [d]
    threshold: float
    comparator: Comparator
    span: tuple[int, int]  # chat-template tokens before and after the user's text, left out of h̄

    def holds(self, sims: torch.Tensor) -> torch.Tensor:
        return sims > self.threshold if self.comparator == "above" else sims < self.threshold

    def holds_for_means(self, means: torch.Tensor) -> torch.Tensor:
        """Per prompt, from its mean residual stream h̄ over the user's text at the condition layer [n, d]:
        [n] bool. Every engine decides here, however it read h̄."""
        return self.holds(similarity(means, self.vector))

    def holds_for_batch(self, model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Per sequence of a left-padded batch: does its prompt meet the condition? [b] bool."""
        return self.holds_for_means(read_batch(model, input_ids, attention_mask, [self.layer],
                                               instruction_mean(*self.span))[0])

    def holds_for_prompts(self, model: nn.Module, tokenizer: Any, prompts: Sequence[str]) -> torch.Tensor:
        """The same decision for user prompts, rendered as the engine renders them: [n] bool."""
        return self.holds_for_means(read_prompts(model, tokenizer, prompts, [self.layer],
                                                 instruction_mean(*self.span))[0])


@dataclass(frozen=True)
class Score:
    threshold: float
    comparator: Comparator
    f1: float
    precision: float
    recall: float


def best_threshold(sims: torch.Tensor, labels: torch.Tensor) -> Score:
    """The threshold and comparator with the highest F1 (ties: the first found), over midpoints between scores."""
    labels = labels.bool()
    if not bool(labels.any()) or bool(labels.all()):
        raise CdeltaError("the dev split needs both target and other prompts to choose a threshold")
    values = torch.unique(sims.double())
    cuts = torch.cat([values[:1] - 1e-6, (values[1:] + values[:-1]) / 2, values[-1:] + 1e-6])
    best: Score | None = None
    for comparator in COMPARATORS:
        predicted = sims.double()[None] > cuts[:, None] if comparator == "above" else sims.double()[None] < cuts[:, None]
        tp = (predicted & labels).sum(-1).double()
        precision = tp / predicted.sum(-1).clamp(min=1)
        recall = tp / labels.sum()
        f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
        i = int(f1.argmax())
        if best is None or float(f1[i]) > best.f1:
            best = Score(float(cuts[i]), comparator, float(f1[i]), float(precision[i]), float(recall[i]))
    assert best is not None
    return best


@dataclass(frozen=True)
class ConditionFit:
    condition: Condition
    f1_dev: float
    by_layer: tuple[Score, ...]  # the best threshold and comparator of every layer, on dev
    method: ConditionMethod = "pca"

    def summary(self) -> dict[str, Any]:
        return {"method": self.method, "layer": self.condition.layer, "threshold": self.condition.threshold,
                "comparator": self.condition.comparator, "span": list(self.condition.span), "f1_dev": self.f1_dev,
                "by_layer": [s.__dict__ for s in self.by_layer]}


def fit_condition(vectors: torch.Tensor, dev_states: torch.Tensor, dev_labels: torch.Tensor,
                  span: tuple[int, int], method: ConditionMethod = "pca") -> ConditionFit:
    """Grid search over layer × threshold × comparator for F1 on dev.

    `dev_states` are the dev prompts' mean hidden states [layers, n, d], read over the user's text as
    `span` (template tokens before, after) delimits it.
    """
    if dev_states.shape[0] != vectors.shape[0]:
        raise CdeltaError(f"{vectors.shape[0]} condition vectors but dev states at {dev_states.shape[0]} layers")
    by_layer = tuple(best_threshold(similarity(dev_states[layer], vectors[layer]), dev_labels)
                     for layer in range(vectors.shape[0]))
    layer = max(range(len(by_layer)), key=lambda i: by_layer[i].f1)
    s = by_layer[layer]
    return ConditionFit(Condition(layer, vectors[layer], s.threshold, s.comparator, span), s.f1, by_layer, method)
