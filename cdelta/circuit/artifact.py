"""circuit.json: the localized circuit, every edge's score and how it was obtained, schema-versioned.

Written to a temporary file in the same folder and renamed, so a reader never sees half a file.
Schema 2 added `model.mlp_groups`; a schema-1 file is read as one group per MLP. Schema 3 added
`selection.cost_exponent`; older files read as 0, the |score| ranking they were chosen by.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from cdelta.atomic import atomic_write_text
from cdelta.circuit.faithfulness import Faithfulness
from cdelta.errors import CdeltaError
from cdelta.graph.structure import Graph
from cdelta.slices import ParamSlice

SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)


@dataclass(frozen=True)
class ModelInfo:
    """`fingerprint` is cdelta.fingerprint's digest over the config and every parameter."""

    name: str
    fingerprint: str
    family: str
    model_type: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    total_params: int
    mlp_groups: int = 1


@dataclass(frozen=True)
class DataInfo:
    fingerprint: str
    n_pairs: int
    n_tokens: int


@dataclass(frozen=True)
class SelectionInfo:
    rule: str
    setting: float
    edges: list[str]
    # the budget rule's cost weighting (selection.greedy); files of schema < 3 were all chosen by |score| alone
    cost_exponent: float = 0.0


@dataclass(frozen=True)
class Circuit:
    """A circuit and its provenance. `scores` holds every real edge's score, in `edges` order."""

    model: ModelInfo
    data: DataInfo
    method: str
    steps: int
    intervention: str
    metric: str
    edges: list[str]
    scores: list[float]
    selection: SelectionInfo
    nodes: list[str]
    param_slices: list[ParamSlice]
    param_count: int
    param_fraction: float
    faithfulness: Faithfulness | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def graph(self) -> Graph:
        """The graph the circuit's edges and nodes are named in."""
        return Graph(self.model.n_layers, self.model.n_heads, self.model.mlp_groups)

    def score_matrix(self) -> torch.Tensor:
        """Every edge's score as the [sources, destinations] matrix selection reads (0 where no edge is)."""
        graph = self.graph
        real = graph.edge_mask()
        if int(real.sum()) != len(self.scores):
            raise CdeltaError(f"malformed circuit: {len(self.scores)} scores for a graph of {int(real.sum())} edges")
        matrix = torch.zeros(real.shape)
        matrix[real] = torch.tensor(self.scores)
        return matrix

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "model": asdict(self.model),
            "data": asdict(self.data),
            "method": self.method,
            "steps": self.steps,
            "intervention": self.intervention,
            "metric": self.metric,
            "edges": self.edges,
            "scores": self.scores,
            "selection": asdict(self.selection),
            "nodes": self.nodes,
            "param_slices": [s.to_dict() for s in self.param_slices],
            "param_count": self.param_count,
            "param_fraction": self.param_fraction,
            "faithfulness": None if self.faithfulness is None else self.faithfulness.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Circuit":
        version = d.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise CdeltaError(
                f"circuit schema version {version!r} is not supported (expected one of {READABLE_VERSIONS})"
            )
        try:
            return cls(
                model=ModelInfo(**d["model"]),
                data=DataInfo(**d["data"]),
                method=str(d["method"]),
                steps=int(d["steps"]),
                intervention=str(d["intervention"]),
                metric=str(d["metric"]),
                edges=[str(e) for e in d["edges"]],
                scores=[float(s) for s in d["scores"]],
                selection=SelectionInfo(**d["selection"]),
                nodes=[str(n) for n in d["nodes"]],
                param_slices=[ParamSlice.from_dict(s) for s in d["param_slices"]],
                param_count=int(d["param_count"]),
                param_fraction=float(d["param_fraction"]),
                faithfulness=None if d.get("faithfulness") is None else Faithfulness.from_dict(d["faithfulness"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CdeltaError(f"malformed circuit: {exc}") from None

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file beside `path`, then a rename."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Circuit":
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise CdeltaError(f"cannot read circuit {path}: {exc}") from None
