"""Benign KL: how far each backend moves the model where it should change nothing.

For every benign prompt, the distribution of the first response token under noop (the base model)
and under the backend (edited weights, or the base under a steering hook); KL(noop ‖ backend) in
nats, averaged over prompts with a normal 95% interval. The first response token is where a refusal
starts, and steering at every position or at the prompt's only gives it the same logits, so one
forward pass per prompt compares weight edits and hooks alike. Refusal rates say whether behaviour
flipped; this says how much the distribution moved on prompts whose answer did not flip.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from backends.hf_engine import HFEngine
from backends.registry import make_backend
from cdelta.errors import CdeltaError
from cdelta.provenance import library_versions
from harness.evaluation.fingerprints import path_fingerprint
from harness.reporting.schema import BenignKLFile, MeanStat
from harness.stats import Z95
from tasks.suite.records import PromptRecord


def kl_per_prompt(base: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """KL(base ‖ other) per row of two [n, vocab] log-probability tensors, in nats."""
    return (base.exp() * (base - other)).sum(dim=-1).clamp(min=0.0)  # clamp: rounding below zero only


def mean_stat(values: torch.Tensor) -> MeanStat:
    n = int(values.numel())
    mean = float(values.double().mean())
    if n < 2:
        return MeanStat(value=mean, n=n)
    half = Z95 * float(values.double().std()) / math.sqrt(n)
    return MeanStat(value=mean, n=n, ci95=(max(0.0, mean - half), mean + half))


def benign_prompts(records: Sequence[PromptRecord], split: str, limit: int) -> list[str]:
    prompts = [r.prompt for r in records if r.split == split and r.category == "benign"][:limit]
    if not prompts:
        raise CdeltaError(f"the suite has no benign prompts in its {split} split to measure benign KL on")
    return prompts


def measure_benign_kl(model_path: Path, backends: Sequence[str], artifacts: Mapping[str, Path], prompts: Sequence[str],
                      split: str, batch_size: int = 32, device: str = "cpu") -> BenignKLFile:
    """Every backend (noop included, at 0 by construction) against noop on the same prompts, on the
    transformers engine."""
    def logprobs(name: str) -> torch.Tensor:
        engine = make_backend(name, model_path, artifacts.get(name), device=device)
        if not isinstance(engine, HFEngine):
            raise CdeltaError(f"benign KL reads logits from the transformers engine; {name} gave {type(engine).__name__}")
        return engine.next_token_logprobs(prompts, batch_size)

    base = logprobs("noop")
    results = {name: mean_stat(kl_per_prompt(base, base if name == "noop" else logprobs(name))) for name in backends}
    return BenignKLFile(model=str(model_path), model_fingerprint=path_fingerprint(model_path), prompts=len(prompts),
                        split=split, backends=results, versions=library_versions())
