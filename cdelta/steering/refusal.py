"""The refusal direction (Arditi et al. 2024): difference of means, one candidate per layer, one chosen on dev.

Candidate r_l = mean over harmful prompts − mean over harmless prompts of the residual stream entering
layer l, averaged over the post-instruction positions. The layer is chosen with refusal_direction's
filters on a dev split: adding r_l must make harmless prompts more likely refused than not (the
steering score, a log-odds, above 0); ablating r_l must barely move harmless prompts' next-token
distribution (KL below a threshold); the last layers are excluded. Among the survivors the layer with
the highest steering score wins; if none survives, the best-steering allowed layer is taken and the
fit says so.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from cdelta.chat import encode_chat, position_ids, template_span
from cdelta.errors import CdeltaError
from cdelta.graph.adapters import adapter_for
from cdelta.steering.hooks import ablating, adding
from cdelta.steering.residual import read_mean, read_prompts


@dataclass(frozen=True)
class LayerCandidate:
    """How r_l fared on dev: steering score (mean refusal log-odds on harmless with r_l added), ablation KL."""

    layer: int
    norm: float
    steering_score: float | None
    kl: float | None
    kept: bool
    reason: str


@dataclass(frozen=True)
class RefusalDirection:
    directions: torch.Tensor  # [layers, d], unnormalised differences of means
    layer: int
    candidates: tuple[LayerCandidate, ...]
    base_harmless_score: float
    filters_passed: bool

    @property
    def vector(self) -> torch.Tensor:
        return self.directions[self.layer]

    def summary(self) -> dict[str, Any]:
        return {"layer": self.layer, "filters_passed": self.filters_passed,
                "base_harmless_refusal_score": self.base_harmless_score,
                "candidates": [asdict(c) for c in self.candidates]}


def diff_in_means(model: nn.Module, tokenizer: Any, harmful: Sequence[str], harmless: Sequence[str],
                  batch_size: int = 64) -> torch.Tensor:
    """r_l for every layer: [layers, d]."""
    layers = list(range(adapter_for(model).n_layers))
    reduce = read_mean("post_instruction", *template_span(tokenizer))
    bad = read_prompts(model, tokenizer, harmful, layers, reduce, batch_size).mean(dim=1)
    good = read_prompts(model, tokenizer, harmless, layers, reduce, batch_size).mean(dim=1)
    return bad - good


@torch.no_grad()
def last_log_probs(model: nn.Module, tokenizer: Any, prompts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """Next-token log-probabilities at the first response position of each prompt: [n, vocab] (fp32)."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(prompts), batch_size):
        enc = encode_chat(tokenizer, prompts[start:start + batch_size], device)
        mask = enc["attention_mask"]
        logits = model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=position_ids(mask),
                       use_cache=False, logits_to_keep=1).logits[:, -1]
        out.append(torch.log_softmax(logits.float(), dim=-1).cpu())
    return torch.cat(out)


def refusal_score(log_probs: torch.Tensor, refusal_ids: Sequence[int]) -> torch.Tensor:
    """log p(refusal opening) − log p(anything else), per prompt: > 0 means refusal is the likelier start."""
    ids = torch.tensor(sorted(set(refusal_ids)), dtype=torch.long)
    if ids.numel() == 0:
        raise CdeltaError("no refusal token ids: the refusal score needs the tokens refusals start with")
    others = torch.ones(log_probs.shape[-1], dtype=torch.bool)
    others[ids] = False
    return torch.logsumexp(log_probs[:, ids], dim=-1) - torch.logsumexp(log_probs[:, others], dim=-1)


def kl_divergence(base: torch.Tensor, other: torch.Tensor) -> float:
    """Mean over prompts of KL(base ‖ other), from log-probabilities."""
    return float((base.exp() * (base - other)).sum(dim=-1).mean())


def choose_layer(model: nn.Module, tokenizer: Any, directions: torch.Tensor, harmless_dev: Sequence[str],
                 refusal_ids: Sequence[int], max_layer_fraction: float = 0.8, kl_threshold: float = 0.1,
                 batch_size: int = 64) -> RefusalDirection:
    """Score every candidate on the harmless dev prompts and pick the layer (see the module docstring)."""
    n_layers = directions.shape[0]
    allowed = int(n_layers * max_layer_fraction)
    base = last_log_probs(model, tokenizer, harmless_dev, batch_size)
    base_score = float(refusal_score(base, refusal_ids).mean())
    candidates = []
    for layer in range(n_layers):
        r = directions[layer]
        norm = float(r.norm())
        if layer >= allowed:
            candidates.append(LayerCandidate(layer, norm, None, None, False, f"in the last {1 - max_layer_fraction:.0%} of layers"))
            continue
        if norm < 1e-6 * max(1.0, float(directions.norm(dim=-1).max())):
            candidates.append(LayerCandidate(layer, norm, None, None, False, "zero direction"))
            continue
        with adding(model, {layer: r}):
            steering = float(refusal_score(last_log_probs(model, tokenizer, harmless_dev, batch_size), refusal_ids).mean())
        with ablating(model, r):
            kl = kl_divergence(base, last_log_probs(model, tokenizer, harmless_dev, batch_size))
        reason = "" if steering > 0 and kl < kl_threshold else (
            "steering score ≤ 0" if steering <= 0 else f"ablation KL ≥ {kl_threshold:g}")
        candidates.append(LayerCandidate(layer, norm, steering, kl, not reason, reason))
    scored = [c for c in candidates if c.steering_score is not None]
    if not scored:
        raise CdeltaError(f"no candidate layer for the refusal direction: {n_layers} layers, the last "
                          f"{n_layers - allowed} excluded and the rest zero")
    kept = [c for c in scored if c.kept]
    best = max(kept or scored, key=lambda c: c.steering_score)  # type: ignore[arg-type, return-value]
    return RefusalDirection(directions, best.layer, tuple(candidates), base_score, bool(kept))


def fit_refusal_direction(model: nn.Module, tokenizer: Any, harmful: Sequence[str], harmless: Sequence[str],
                          harmless_dev: Sequence[str], refusal_ids: Sequence[int], max_layer_fraction: float = 0.8,
                          kl_threshold: float = 0.1, batch_size: int = 64) -> RefusalDirection:
    """Difference of means on the training prompts, layer chosen on the harmless dev prompts."""
    directions = diff_in_means(model, tokenizer, harmful, harmless, batch_size)
    return choose_layer(model, tokenizer, directions, harmless_dev, refusal_ids, max_layer_fraction, kl_threshold,
                        batch_size)
