"""The computational graph of a transformer: source nodes, destination inputs and real edges.

Index order follows the EAP-IG reference so that score matrices compare entry for entry:
sources are `input`, then per layer its heads `a{l}.h{h}` and its MLP `m{l}`; destinations are,
per layer, the q inputs of all heads, then k, then v, then the MLP input, and last `logits`.
With `mlp_groups` G > 1 each MLP is G nodes `m{l}.g{g}` (contiguous, equal blocks of its
intermediate units), in the MLP's place among both sources and destinations.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import torch

from cdelta.errors import CdeltaError

DestinationKind = Literal["q", "k", "v", "mlp", "logits"]


@dataclass(frozen=True)
class DestinationGroup:
    """Destinations read together by one tapped point: a layer's q (or k, v) inputs, its MLP (group) inputs, the logits."""

    kind: DestinationKind
    layer: int
    cols: slice
    upstream: int
    """Sources [0, upstream) feed these destinations."""


@dataclass(frozen=True)
class Graph:
    """Nodes and edges of a model with `n_layers` layers of `n_heads` attention heads and one MLP each.

    `mlp_groups` G splits each MLP into G nodes, each owning 1/G of its intermediate units: a
    group's output is what its units write, and its input is its own copy of the residual stream.
    """

    n_layers: int
    n_heads: int
    mlp_groups: int = 1

    def __post_init__(self) -> None:
        if self.mlp_groups < 1:
            raise CdeltaError(f"mlp_groups must be a positive number of groups per MLP, got {self.mlp_groups}")

    @property
    def n_sources(self) -> int:
        return 1 + self.n_layers * (self.n_heads + self.mlp_groups)

    @property
    def n_destinations(self) -> int:
        return self.n_layers * (3 * self.n_heads + self.mlp_groups) + 1

    # -- sources -----------------------------------------------------------------------------
    def head_rows(self, layer: int) -> slice:
        start = 1 + layer * (self.n_heads + self.mlp_groups)
        return slice(start, start + self.n_heads)

    def mlp_rows(self, layer: int) -> slice:
        """The sources of one MLP: the whole MLP, or its G groups in unit order."""
        start = self.head_rows(layer).stop
        return slice(start, start + self.mlp_groups)

    def mlp_names(self, layer: int) -> list[str]:
        """`m{layer}`, or `m{layer}.g{group}` for each group when the MLP is split."""
        if self.mlp_groups == 1:
            return [f"m{layer}"]
        return [f"m{layer}.g{group}" for group in range(self.mlp_groups)]

    def source_names(self) -> list[str]:
        names = ["input"]
        for layer in range(self.n_layers):
            names += [f"a{layer}.h{head}" for head in range(self.n_heads)]
            names += self.mlp_names(layer)
        return names

    def source_groups(self) -> list[slice]:
        """Sources that one layer output comprises: the input, each layer's heads, each MLP (all its groups)."""
        groups = [slice(0, 1)]
        for layer in range(self.n_layers):
            groups += [self.head_rows(layer), self.mlp_rows(layer)]
        return groups

    # -- destinations ------------------------------------------------------------------------
    def destination_groups(self) -> list[DestinationGroup]:
        groups: list[DestinationGroup] = []
        per_layer = 3 * self.n_heads + self.mlp_groups
        for layer in range(self.n_layers):
            base = layer * per_layer
            heads_upstream = self.head_rows(layer).start
            for i, kind in enumerate(("q", "k", "v")):
                cols = slice(base + i * self.n_heads, base + (i + 1) * self.n_heads)
                groups.append(DestinationGroup(kind, layer, cols, heads_upstream))  # type: ignore[arg-type]
            mlp_col = base + 3 * self.n_heads
            cols = slice(mlp_col, mlp_col + self.mlp_groups)
            groups.append(DestinationGroup("mlp", layer, cols, self.mlp_rows(layer).start))
        logits = self.n_destinations - 1
        groups.append(DestinationGroup("logits", self.n_layers, slice(logits, logits + 1), self.n_sources))
        return groups

    def destination_names(self) -> list[str]:
        names: list[str] = []
        for group in self.destination_groups():
            if group.kind in ("q", "k", "v"):
                names += [f"a{group.layer}.h{head}<{group.kind}>" for head in range(self.n_heads)]
            elif group.kind == "mlp":
                names += self.mlp_names(group.layer)
            else:
                names.append("logits")
        return names

    def destination_owner(self) -> torch.Tensor:
        """For each destination, the source row of the node it is an input of (-1 for the logits)."""
        owner = torch.full((self.n_destinations,), -1, dtype=torch.long)
        for group in self.destination_groups():
            if group.kind in ("q", "k", "v"):
                owner[group.cols] = torch.arange(self.head_rows(group.layer).start, self.head_rows(group.layer).stop)
            elif group.kind == "mlp":
                rows = self.mlp_rows(group.layer)
                owner[group.cols] = torch.arange(rows.start, rows.stop)
        return owner

    # -- edges -------------------------------------------------------------------------------
    def edge_mask(self) -> torch.Tensor:
        """[sources, destinations] bool: True where the source is upstream of the destination."""
        mask = torch.zeros(self.n_sources, self.n_destinations, dtype=torch.bool)
        for group in self.destination_groups():
            mask[: group.upstream, group.cols] = True
        return mask

    def edge_names(self, edges: torch.Tensor | None = None) -> list[str]:
        """Names of the edges set in `edges` (all real edges if None), in row-major order."""
        edges = self.edge_mask() if edges is None else edges
        sources, destinations = self.source_names(), self.destination_names()
        rows, cols = torch.nonzero(edges, as_tuple=True)
        return [f"{sources[r]}->{destinations[c]}" for r, c in zip(rows.tolist(), cols.tolist())]

    def edges_from_names(self, names: list[str]) -> torch.Tensor:
        """The edge mask of a list of edge names; unknown or impossible edges are an error."""
        source_index = {n: i for i, n in enumerate(self.source_names())}
        destination_index = {n: i for i, n in enumerate(self.destination_names())}
        real = self.edge_mask()
        edges = torch.zeros_like(real)
        for name in names:
            match = re.fullmatch(r"(.+)->(.+)", name)
            if match is None or match[1] not in source_index or match[2] not in destination_index:
                raise CdeltaError(
                    f"edge {name!r} does not exist in a graph of {self.n_layers} layers x {self.n_heads} heads "
                    f"and {self.mlp_groups} group(s) per MLP"
                )
            r, c = source_index[match[1]], destination_index[match[2]]
            if not real[r, c]:
                raise CdeltaError(f"edge {name!r} goes backwards: its source is not upstream of its destination")
            edges[r, c] = True
        return edges
