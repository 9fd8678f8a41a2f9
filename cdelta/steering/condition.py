"""The CAST condition (Lee et al. 2024): is this prompt about the target category?

A condition vector c per layer comes from prompts of the target category and of the others. CAST's
own methods ("pca": the first principal component of the paired differences of their mean hidden
states; "mean": the difference of means) score a prompt's mean hidden state h̄ at layer l by
sim = cos(h̄, tanh(P h̄)) with P = c cᵀ / cᵀc. A stronger baseline is also offered ("lda": Fisher's
linear discriminant, c = (Σ + s·I)⁻¹(μ_target − μ_other) with the pooled within-class covariance Σ
shrunk towards its mean variance s), scored by the projection h̄ · c. The condition holds when the
score is above (or below) a threshold. h̄ is averaged over the user's text ("instruction", as in CAST)
or over the template's tokens after it ("post_instruction"). Layer, threshold and comparator are
chosen together by grid search for the best F1 on a labelled dev split; the caller compares methods
and reads the same way.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from cdelta.errors import CdeltaError
from cdelta.steering.residual import Read, read_batch, read_mean, read_prompts

Comparator = Literal["above", "below"]
COMPARATORS: tuple[Comparator, ...] = ("above", "below")
ConditionMethod = Literal["pca", "mean", "lda"]
CONDITION_METHODS: tuple[ConditionMethod, ...] = ("pca", "mean", "lda")
LDA_SHRINKAGE = 1.0  # s = this × the mean within-class variance: the covariance of a few hundred prompts in
# d dimensions is singular or nearly so; strong shrinkage keeps c stable (at s → ∞, c is the mean difference)


def condition_vectors(target: torch.Tensor, other: torch.Tensor, method: ConditionMethod = "pca") -> torch.Tensor:
    """Unit condition vectors [layers, d] from mean hidden states [layers, n, d] of target and other prompts.

    "pca" and "mean" pair the prompts (target[i], other[i]); "pca" takes the top right singular vector of
    the uncentred pair differences (what IBM's pca_center computes). Every vector points from other to target.
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
    elif method == "lda":
        vectors = discriminant(target.double(), other.double())
    else:
        raise CdeltaError(f"unknown condition method {method!r}; use one of {', '.join(CONDITION_METHODS)}")
    vectors = vectors * torch.sign((vectors * mean).sum(-1, keepdim=True) + 1e-30)
    return (vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=1e-30)).float()


def discriminant(target: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Fisher's direction per layer, (Σ + s·I)⁻¹(μ_t − μ_o), from hidden states [layers, n, d] (float64);
    one layer at a time, so that one d × d covariance is held (128 MiB at d = 4096)."""
    return torch.stack([_fisher(t, o) for t, o in zip(target, other)])


def _fisher(target: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    mu_t, mu_o = target.mean(dim=0), other.mean(dim=0)
    centred = torch.cat([target - mu_t, other - mu_o])
    cov = centred.T @ centred / centred.shape[0]
    shrink = LDA_SHRINKAGE * float(cov.diagonal().mean()) + 1e-12
    return torch.linalg.solve(cov + shrink * torch.eye(cov.shape[0], dtype=cov.dtype), mu_t - mu_o)


def similarity(hidden: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """CAST's score: cos(h̄, tanh(P h̄)) for each mean hidden state h̄ in [..., d]."""
    h = hidden.float()
    c = vector.to(h.device, torch.float32)
    projected = torch.tanh((h @ c / (c @ c)).unsqueeze(-1) * c)
    return torch.nn.functional.cosine_similarity(h, projected, dim=-1)


def condition_scores(hidden: torch.Tensor, vector: torch.Tensor, method: ConditionMethod) -> torch.Tensor:
    """The score a method's condition thresholds: CAST's similarity, or for "lda" the projection h̄ · c."""
    if method == "lda":
        return hidden.float() @ vector.to(hidden.device, torch.float32)
    return similarity(hidden, vector)


@dataclass(frozen=True)
class Condition:
    layer: int
    vector: torch.Tensor  # [d]
    threshold: float
    comparator: Comparator
    span: tuple[int, int]  # chat-template tokens before and after the user's text
    method: ConditionMethod = "pca"  # how `vector` was made, which decides the score (see `condition_scores`)
    read: Read = "instruction"  # the positions h̄ averages

    def holds(self, scores: torch.Tensor) -> torch.Tensor:
        return scores > self.threshold if self.comparator == "above" else scores < self.threshold

    def holds_for_means(self, means: torch.Tensor) -> torch.Tensor:
        """Per prompt, from its mean residual stream h̄ over the read's positions at the condition layer [n, d]:
        [n] bool. Every engine decides here, however it read h̄."""
        return self.holds(condition_scores(means, self.vector, self.method))

    def holds_for_batch(self, model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Per sequence of a padded batch: does its prompt meet the condition? [b] bool."""
        return self.holds_for_means(read_batch(model, input_ids, attention_mask, [self.layer],
                                               read_mean(self.read, *self.span))[0])

    def holds_for_prompts(self, model: nn.Module, tokenizer: Any, prompts: Sequence[str]) -> torch.Tensor:
        """The same decision for user prompts, rendered as the engine renders them: [n] bool."""
        return self.holds_for_means(read_prompts(model, tokenizer, prompts, [self.layer],
                                                 read_mean(self.read, *self.span))[0])


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

    def summary(self) -> dict[str, Any]:
        c = self.condition
        return {"method": c.method, "read": c.read, "layer": c.layer, "threshold": c.threshold,
                "comparator": c.comparator, "span": list(c.span), "f1_dev": self.f1_dev,
                "by_layer": [s.__dict__ for s in self.by_layer]}


def fit_condition(vectors: torch.Tensor, dev_states: torch.Tensor, dev_labels: torch.Tensor,
                  span: tuple[int, int], method: ConditionMethod = "pca", read: Read = "instruction") -> ConditionFit:
    """Grid search over layer × threshold × comparator for F1 on dev.

    `dev_states` are the dev prompts' mean hidden states [layers, n, d], read at `read`'s positions as
    `span` (template tokens before, after the user's text) delimits them.
    """
    if dev_states.shape[0] != vectors.shape[0]:
        raise CdeltaError(f"{vectors.shape[0]} condition vectors but dev states at {dev_states.shape[0]} layers")
    by_layer = tuple(best_threshold(condition_scores(dev_states[layer], vectors[layer], method), dev_labels)
                     for layer in range(vectors.shape[0]))
    layer = max(range(len(by_layer)), key=lambda i: by_layer[i].f1)
    s = by_layer[layer]
    condition = Condition(layer, vectors[layer], s.threshold, s.comparator, span, method, read)
    return ConditionFit(condition, s.f1, by_layer)
