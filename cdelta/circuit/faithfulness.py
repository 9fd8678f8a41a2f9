"""How much of the model's behaviour a circuit carries: run it with every non-circuit edge patched.

A destination outside the circuit's edges reads its source's target activation (corrupted,
zero or mean) in place of the live one; the metric of that run, normalised as
(circuit - empty) / (full - empty), is 1 for the full graph and 0 for the empty one.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cdelta.circuit.selection import top_edges
from cdelta.eap.metrics import Metric
from cdelta.eap.pairs import PairBatch
from cdelta.eap.targets import check_intervention, record, source_means, targets
from cdelta.errors import CdeltaError
from cdelta.graph.adapters import Adapter
from cdelta.graph.tap import Patch, Tap
from cdelta.progress import progress_bar


@torch.no_grad()
def circuit_metrics(
    adapter: Adapter,
    batches: Sequence[PairBatch],
    circuits: Sequence[torch.Tensor],
    metric: Metric,
    *,
    intervention: str = "patching",
    progress: bool = True,
) -> list[float]:
    """The metric summed over all examples, for each circuit (an edge mask) in `circuits`."""
    check_intervention(intervention)
    if not batches:
        raise CdeltaError("no data: faithfulness needs at least one batch of contrast pairs")
    graph = adapter.graph
    means = source_means(adapter, batches) if intervention == "mean" else None
    totals = [0.0] * len(circuits)
    with progress_bar("faithfulness", len(batches) * len(circuits), progress) as advance:
        for batch in batches:
            clean, clean_logits = record(adapter, batch.clean)
            target = targets(adapter, batch, clean, intervention, means)
            for i, edges in enumerate(circuits):
                mask = (~edges).to(device=clean.device, dtype=clean.dtype)
                logits = Tap(adapter, patch=Patch(slice(0, graph.n_sources), mask, target)).run(batch.clean)
                totals[i] += float(metric(logits, clean_logits).double().sum())
                advance()
    return totals


def normalised(value: float, full: float, empty: float) -> float:
    """(value - empty) / (full - empty); an error when the full and empty graphs cannot be told apart.

    "Apart" means by more than rounding: 1e-6 of the metric's size.
    """
    if abs(full - empty) <= 1e-6 * max(abs(full), abs(empty), 1.0):
        raise CdeltaError(
            f"the full and the empty circuit give the same metric ({full:g}): the contrast pairs do not "
            "move the metric, so faithfulness is undefined"
        )
    return (value - empty) / (full - empty)


@dataclass(frozen=True)
class Faithfulness:
    """The circuit's normalised faithfulness and a curve over top-n edge counts, with its area.

    `held_out` is the token fingerprint and count of the pairs it was measured on when those were not
    the attribution pairs: a circuit can fit the phrasings it was found on and miss new ones.
    """

    circuit: float
    full: float
    empty: float
    counts: list[int]
    values: list[float]
    area: float
    held_out: tuple[str, int] | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "circuit": self.circuit, "full": self.full, "empty": self.empty,
            "curve": {"edges": self.counts, "faithfulness": self.values, "area": self.area},
        }
        if self.held_out is not None:
            out["held_out"] = {"fingerprint": self.held_out[0], "n_pairs": self.held_out[1]}
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Faithfulness":
        curve, held = d["curve"], d.get("held_out")
        return cls(float(d["circuit"]), float(d["full"]), float(d["empty"]),
                   [int(n) for n in curve["edges"]], [float(v) for v in curve["faithfulness"]], float(curve["area"]),
                   None if held is None else (str(held["fingerprint"]), int(held["n_pairs"])))


def curve_counts(n_edges: int, points: int = 12) -> list[int]:
    """Edge counts from 0 to all edges, geometrically spaced so small circuits are well resolved."""
    if points < 2:
        raise CdeltaError(f"a faithfulness curve needs at least 2 points, got {points}")
    if points == 2:
        return sorted({0, n_edges})
    return sorted({0, *(round(n_edges ** (i / (points - 2))) for i in range(points - 1))})


def area(counts: Sequence[int], values: Sequence[float]) -> float:
    """Trapezoid area under faithfulness against the fraction of edges kept, in [0, 1] for a monotone curve."""
    total = counts[-1] or 1
    return sum((b - a) / total * (u + v) / 2 for a, b, u, v in zip(counts, counts[1:], values, values[1:]))


def faithfulness(
    adapter: Adapter,
    batches: Sequence[PairBatch],
    scores: torch.Tensor,
    circuit: torch.Tensor,
    metric: Metric,
    *,
    counts: Sequence[int] | None = None,
    intervention: str = "patching",
    progress: bool = True,
) -> Faithfulness:
    """Faithfulness of `circuit` and of the top-n edge circuits for each n in `counts`, in one pass over data."""
    graph = adapter.graph
    everything = graph.edge_mask()
    counts = list(counts) if counts is not None else curve_counts(int(everything.sum()))
    circuits = [everything, torch.zeros_like(everything), circuit] + [top_edges(graph, scores, n).edges for n in counts]
    full, empty, *rest = circuit_metrics(adapter, batches, circuits, metric, intervention=intervention, progress=progress)
    values = [normalised(v, full, empty) for v in rest]
    return Faithfulness(values[0], full, empty, counts, values[1:], area(counts, values[1:]))
