"""Metrics that attribution and faithfulness measure, one value per example.

A metric takes the logits at the first response position (the last prompt position) of the
current run and of the clean run, both [batch, vocab], and returns [batch].
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from cdelta.errors import CdeltaError

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def refusal_logit_diff(refusal_ids: Sequence[int], compliance_ids: Sequence[int]) -> Metric:
    """log P(response opens with a refusal token) - log P(it opens with a compliance token).

    The log-softmax normaliser cancels, so this is logsumexp over one set of logits minus
    logsumexp over the other.
    """
    refusal, compliance = sorted(set(refusal_ids)), sorted(set(compliance_ids))
    if not refusal or not compliance:
        raise CdeltaError("the refusal metric needs at least one refusal and one compliance opening token")
    if set(refusal) & set(compliance):
        raise CdeltaError(f"tokens {sorted(set(refusal) & set(compliance))} are both refusal and compliance openings")

    def metric(logits: torch.Tensor, clean_logits: torch.Tensor) -> torch.Tensor:
        del clean_logits
        logits = _wide(logits)
        return torch.logsumexp(logits[:, refusal], -1) - torch.logsumexp(logits[:, compliance], -1)

    metric.__name__ = "refusal_logit_diff"
    return metric


def kl_to_clean(logits: torch.Tensor, clean_logits: torch.Tensor) -> torch.Tensor:
    """KL(clean || current) of the next-token distribution; 0 at the clean run, so useless for plain EAP."""
    log_p = torch.log_softmax(_wide(clean_logits), -1)
    log_q = torch.log_softmax(_wide(logits), -1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def _wide(logits: torch.Tensor) -> torch.Tensor:
    """At least float32: half-precision logits lose the small differences attribution measures."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def metric_name(metric: Metric) -> str:
    return getattr(metric, "__name__", type(metric).__name__)
