"""EAP and EAP-IG edge attribution: the one engine behind edge, node and circuit scores.

score(u -> v) = sum over examples, positions and hidden units of
                (a_u(target) - a_u(clean)) * mean over IG steps of d metric / d (input of v)

where the target is the corrupted run (patching), zero or the mean activation. A node's score
is the sum of its outgoing edges' scores (the gradient at a node's output is the sum of the
gradients at the inputs it feeds), so node-level selection reads the same matrix.

- EAP: one gradient at the clean run.
- EAP-IG-inputs: gradients at `steps` points on the straight line from the corrupted input
  embeddings to the clean ones.
- EAP-IG-activations: for each layer output (the input, a layer's heads, an MLP), gradients at
  `steps` points between its target and its clean value; an edge's score uses the gradients
  of the runs that interpolate its own source.

Both take the midpoint rule, alpha = (k + 1/2) / m for k < m (the reference takes k / m):
the same cost, and the integral's error falls as 1/m^2 instead of 1/m, which is what
completeness (input edges summing to metric(corrupted) - metric(clean)) needs.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from cdelta.eap.methods import METHODS
from cdelta.eap.metrics import Metric
from cdelta.eap.pairs import PairBatch
from cdelta.eap.targets import check_intervention, record, source_means, targets
from cdelta.errors import CdeltaError
from cdelta.graph.adapters import Adapter
from cdelta.graph.structure import DestinationGroup
from cdelta.graph.tap import GradHook, Patch, Tap
from cdelta.progress import progress_bar


@dataclass(frozen=True)
class Attribution:
    """Edge scores [sources, destinations] (float32, zero off the graph's edges), summed over examples."""

    scores: torch.Tensor
    n_examples: int
    method: str
    steps: int
    intervention: str


def attribute(
    adapter: Adapter,
    batches: Sequence[PairBatch],
    metric: Metric,
    *,
    method: str = "EAP-IG-inputs",
    steps: int = 5,
    intervention: str = "patching",
    progress: bool = True,
) -> Attribution:
    """Score every edge of the adapter's graph on `batches` of contrast pairs."""
    _check(batches, method, steps, intervention)
    graph = adapter.graph
    scores = torch.zeros(graph.n_sources, graph.n_destinations, dtype=torch.float32)
    means = source_means(adapter, batches) if intervention == "mean" else None
    runs = {"EAP": 1, "EAP-IG-inputs": steps, "EAP-IG-activations": steps * len(graph.source_groups())}[method]

    with _frozen(adapter.model), progress_bar(f"{method} attribution", len(batches) * runs, progress) as advance:
        for batch in batches:
            clean, clean_logits = record(adapter, batch.clean)
            delta = (targets(adapter, batch, clean, intervention, means) - clean).contiguous()
            batch_scores = torch.zeros_like(scores, device=clean.device)
            # EAP-IG-inputs scores every source against the same delta at every step, so the steps' gradients
            # are summed first and multiplied once: one score product per batch instead of one per step.
            summed = None if method != "EAP-IG-inputs" else clean.new_zeros(
                graph.n_destinations, *clean.shape[1:], dtype=torch.promote_types(clean.dtype, torch.float32))
            for patch, rows in _runs(method, steps, clean, delta, graph.source_groups(), graph.n_destinations):
                hook = _score_into(batch_scores, delta, rows) if summed is None else _sum_into(summed)
                _backward(adapter, batch.clean, clean_logits, metric, patch, hook)
                advance()
            if summed is not None:
                score = _score_into(batch_scores, delta, slice(0, graph.n_sources))
                for group in graph.destination_groups():
                    score(group, summed[group.cols])
            scores += batch_scores.cpu() / (1 if method == "EAP" else steps)

    if not torch.isfinite(scores).all():
        raise CdeltaError("attribution produced NaN or infinite edge scores (check the metric and the model's dtype)")
    return Attribution(scores, sum(b.size for b in batches), method, steps if method != "EAP" else 0, intervention)


def _check(batches: Sequence[PairBatch], method: str, steps: int, intervention: str) -> None:
    if method not in METHODS:
        raise CdeltaError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}")
    check_intervention(intervention)
    if method == "EAP-IG-inputs" and intervention != "patching":
        raise CdeltaError("EAP-IG-inputs interpolates towards the corrupted inputs: it needs intervention 'patching'")
    if method != "EAP" and steps < 1:
        raise CdeltaError(f"{method} needs at least one integration step, got {steps}")
    if not batches:
        raise CdeltaError("no data: attribution needs at least one batch of contrast pairs")


def _runs(
    method: str, steps: int, clean: torch.Tensor, delta: torch.Tensor, groups: list[slice], n_destinations: int
) -> Iterator[tuple[Patch | None, slice]]:
    """Each gradient run of one batch: what it patches, and which sources' scores it feeds."""
    everything = slice(0, clean.shape[0])
    if method == "EAP":
        yield None, everything
    elif method == "EAP-IG-inputs":
        for k in range(steps):
            yield _interpolate(clean, delta, slice(0, 1), 1 - (k + 0.5) / steps, n_destinations), everything
    else:
        for rows in groups:
            for k in range(steps):
                yield _interpolate(clean, delta, rows, 1 - (k + 0.5) / steps, n_destinations), rows


def _interpolate(clean: torch.Tensor, delta: torch.Tensor, rows: slice, towards_target: float, n_destinations: int) -> Patch:
    """Every destination reads sources `rows` at clean + towards_target * (target - clean)."""
    target = clean[rows] + towards_target * delta[rows]
    mask = torch.ones(rows.stop - rows.start, n_destinations, dtype=clean.dtype, device=clean.device)
    return Patch(rows=rows, mask=mask, target=target)


def _score_into(scores: torch.Tensor, delta: torch.Tensor, rows: slice) -> GradHook:
    """A gradient hook adding delta[rows] . gradient to the score of every edge from `rows` into the group."""

    def on_grad(group: DestinationGroup, grad: torch.Tensor) -> None:
        stop = min(rows.stop, group.upstream)
        if stop <= rows.start:
            return
        source = delta[rows.start : stop].view(stop - rows.start, -1)
        contribution = source @ grad.to(source.device, source.dtype).reshape(grad.shape[0], -1).T
        scores[rows.start : stop, group.cols] += contribution.float()

    return on_grad


def _sum_into(summed: torch.Tensor) -> GradHook:
    """A gradient hook adding each destination's gradient into `summed` [destinations, b, p, d]."""

    def on_grad(group: DestinationGroup, grad: torch.Tensor) -> None:
        summed[group.cols] += grad.to(summed.device, summed.dtype)

    return on_grad


def _backward(
    adapter: Adapter, input_ids: torch.Tensor, clean_logits: torch.Tensor, metric: Metric, patch: Patch | None,
    on_grad: GradHook,
) -> None:
    """One forward and backward pass of the metric, handing each destination's gradient to `on_grad`."""
    with torch.enable_grad():
        value = metric(Tap(adapter, patch=patch, on_grad=on_grad).run(input_ids), clean_logits)
        if not torch.isfinite(value).all():
            raise CdeltaError("the metric is NaN or infinite on this batch; attribution cannot proceed")
        value.sum().backward()


@contextmanager
def _frozen(model: torch.nn.Module) -> Iterator[None]:
    """No parameter gradients: attribution needs gradients at activations only."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
