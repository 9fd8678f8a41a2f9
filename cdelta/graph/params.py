"""Parameter accounting: the slices each node owns and the fraction of the model a node set implies."""
from __future__ import annotations

import torch

from cdelta.graph.adapters import Adapter
from cdelta.slices import ParamSlice


class ParamAccount:
    """Slices per source node (`input` owns none) and the model's total parameter count.

    An MLP owns all its parameters; an MLP group its units' rows of gate/up and columns of down.

    A KV head shared by several query heads appears in each of their slice lists; counting a
    node set's slices as a set counts it once, as it is edited once.
    """

    def __init__(self, adapter: Adapter):
        graph = adapter.graph
        self.total = adapter.total_params()
        self._shapes = adapter.param_shapes()
        slices: list[frozenset[ParamSlice]] = [frozenset()] * graph.n_sources
        for layer in range(graph.n_layers):
            for head, row in enumerate(range(graph.head_rows(layer).start, graph.head_rows(layer).stop)):
                slices[row] = frozenset(adapter.head_slices(layer, head))
            mlp = graph.mlp_rows(layer)
            if graph.mlp_groups == 1:
                slices[mlp.start] = frozenset(adapter.mlp_slices(layer))
            else:
                for group, row in enumerate(range(mlp.start, mlp.stop)):
                    slices[row] = frozenset(adapter.mlp_group_slices(layer, group))
        self.node_slices = slices

    def slices(self, nodes: torch.Tensor) -> list[ParamSlice]:
        """The sorted, de-duplicated slices of the source nodes set in `nodes` [sources]."""
        chosen: set[ParamSlice] = set()
        for row in torch.nonzero(nodes).flatten().tolist():
            chosen |= self.node_slices[row]
        return sorted(chosen)

    def node_costs(self) -> torch.Tensor:
        """Each source node's own parameter count [sources] (`input`: 0), shared KV slices counted in full."""
        return torch.tensor([self.count(s) for s in self.node_slices], dtype=torch.float64)

    def count(self, slices: set[ParamSlice] | frozenset[ParamSlice] | list[ParamSlice]) -> int:
        return sum(s.numel(self._shapes[s.tensor]) for s in slices)

    def fraction(self, nodes: torch.Tensor) -> float:
        return self.count(self.slices(nodes)) / self.total
