"""What a patched edge receives instead of its clean activation: corrupted, zero or mean activations."""
from __future__ import annotations

from collections.abc import Sequence
import torch

from cdelta.eap.methods import INTERVENTIONS
from cdelta.eap.pairs import PairBatch
from cdelta.errors import CdeltaError
from cdelta.graph.adapters import Adapter
from cdelta.graph.tap import Tap



def check_intervention(intervention: str) -> None:
    if intervention not in INTERVENTIONS:
        raise CdeltaError(f"unknown intervention {intervention!r}; choose one of {', '.join(INTERVENTIONS)}")


@torch.no_grad()
def record(adapter: Adapter, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every source's output, [sources, b, p, d], and the last-position logits of a plain run."""
    tap = Tap(adapter, keep=slice(0, adapter.graph.n_sources))
    logits = tap.run(input_ids)
    assert tap.values is not None
    return tap.values, logits


@torch.no_grad()
def source_means(adapter: Adapter, batches: Sequence[PairBatch]) -> torch.Tensor:
    """Mean output of each source over all positions of all corrupted prompts, [sources, 1, 1, d]."""
    total, count = None, 0
    for batch in batches:
        values, _ = record(adapter, batch.corrupted)
        summed = values.float().sum(dim=(1, 2))
        total = summed if total is None else total + summed
        count += values.shape[1] * values.shape[2]
    if total is None:
        raise CdeltaError("mean ablation needs at least one prompt to average over")
    return (total / count).to(values.dtype)[:, None, None]


def targets(
    adapter: Adapter, batch: PairBatch, clean: torch.Tensor, intervention: str, means: torch.Tensor | None
) -> torch.Tensor:
    """The activation each source sends along a patched edge, broadcastable to `clean`."""
    if intervention == "patching":
        return record(adapter, batch.corrupted)[0]
    if intervention == "zero":
        return torch.zeros_like(clean[:, :1, :1])
    if means is None:
        raise CdeltaError("mean ablation needs the source means (source_means)")
    return means.to(clean.device, clean.dtype)
