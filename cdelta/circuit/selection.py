"""Choosing a circuit from edge scores: top-n edges, top-k nodes, greedy from the logits, a parameter budget.

Every rule ends with `prune`, which drops nodes that cannot carry signal from the input to the
logits, so the parameter fraction a circuit reports is that of nodes it actually uses.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import torch

from cdelta.circuit.rules import RULES, check_cost_exponent
from cdelta.errors import CdeltaError
from cdelta.graph.params import ParamAccount
from cdelta.graph.structure import Graph
from cdelta.slices import ParamSlice


@dataclass(frozen=True)
class Selection:
    """A circuit: edges [sources, destinations] and source nodes [sources] in it, and the rule that chose them."""

    rule: str
    setting: float
    edges: torch.Tensor
    nodes: torch.Tensor

    @property
    def n_edges(self) -> int:
        return int(self.edges.sum())


def prune(graph: Graph, edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop, until nothing changes, nodes lacking an incoming or an outgoing edge and edges touching them.

    `input` counts as having incoming edges and `logits` is always present, as in the reference.
    """
    owner = graph.destination_owner()
    is_head_or_mlp = owner >= 0
    edges = edges & graph.edge_mask()
    while True:
        has_in = torch.zeros(graph.n_sources, dtype=torch.bool)
        fed = edges.any(dim=0) & is_head_or_mlp
        has_in[owner[fed]] = True
        has_in[0] = True
        nodes = edges.any(dim=1) & has_in
        destination_alive = ~is_head_or_mlp | nodes[owner.clamp(min=0)]
        kept = edges & nodes[:, None] & destination_alive[None, :]
        if torch.equal(kept, edges):
            return edges, nodes
        edges = kept


def _ranked(graph: Graph, scores: torch.Tensor) -> torch.Tensor:
    """Real edges' flat indices, largest |score| first (ties broken by index, for reproducibility)."""
    magnitude = scores.abs().masked_fill(~graph.edge_mask(), -1.0).flatten()
    order = torch.sort(magnitude, descending=True, stable=True).indices
    return order[: int(graph.edge_mask().sum())]


def top_edges(graph: Graph, scores: torch.Tensor, n: int) -> Selection:
    """The n edges of largest |score|, pruned."""
    n_real = int(graph.edge_mask().sum())
    if not 0 <= n <= n_real:
        raise CdeltaError(f"cannot select {n} edges: the graph has {n_real}")
    edges = torch.zeros(graph.n_sources * graph.n_destinations, dtype=torch.bool)
    edges[_ranked(graph, scores)[:n]] = True
    edges, nodes = prune(graph, edges.view(graph.n_sources, graph.n_destinations))
    return Selection("top_edges", n, edges, nodes)


def top_nodes(graph: Graph, scores: torch.Tensor, k: int) -> Selection:
    """The k heads/MLPs whose node score (sum of outgoing edge scores) is largest in magnitude, all edges among them."""
    n_nodes = graph.n_sources - 1
    if not 0 <= k <= n_nodes:
        raise CdeltaError(f"cannot select {k} nodes: the graph has {n_nodes} heads and MLPs")
    magnitude = scores.sum(dim=1).abs()
    magnitude[0] = -1.0
    nodes = torch.zeros(graph.n_sources, dtype=torch.bool)
    nodes[torch.sort(magnitude, descending=True, stable=True).indices[:k]] = True
    nodes[0] = True
    owner = graph.destination_owner()
    destination_in = (owner < 0) | nodes[owner.clamp(min=0)]
    edges, nodes = prune(graph, graph.edge_mask() & nodes[:, None] & destination_in[None, :])
    return Selection("top_nodes", k, edges, nodes)


def greedy(
    graph: Graph,
    scores: torch.Tensor,
    *,
    n_edges: int | None = None,
    budget: float | None = None,
    account: ParamAccount | None = None,
    cost_exponent: float = 0.0,
) -> Selection:
    """Grow a circuit from the logits, always adding the largest-|score| edge into a node already in it.

    With `n_edges`, stop after that many edges (the reference's greedy rule). With `budget`,
    skip any edge whose source would take the circuit's parameters over `budget` x all
    parameters, and go on until no edge is left: the result is the best-scoring circuit the
    budget affords, with every free edge among its nodes.

    `cost_exponent` a > 0 ranks edges by |score| / (parameters of the source node)^a instead, so
    that a budget is spent where it buys the most score: on the organism a head costs as much as
    21 to 43 MLP units, and a plain |score| ranking fills a 5% budget with heads (docs/eap-ig.md).
    """
    if budget is not None:
        if account is None or not 0 < budget <= 1:
            raise CdeltaError(f"a parameter budget is a fraction in (0, 1] of all parameters, got {budget}")
    check_cost_exponent(cost_exponent)
    if cost_exponent and account is None:
        raise CdeltaError("ranking edges by cost needs the model's parameter account")
    n_real = int(graph.edge_mask().sum())
    if n_edges is not None and not 0 <= n_edges <= n_real:
        raise CdeltaError(f"cannot select {n_edges} edges: the graph has {n_real}")

    magnitude = scores.abs()
    if cost_exponent:
        assert account is not None
        magnitude = magnitude / account.node_costs().clamp(min=1).to(magnitude.dtype)[:, None] ** cost_exponent
    magnitude = magnitude.masked_fill(~graph.edge_mask(), -1.0)
    by_column = torch.sort(magnitude, dim=0, descending=True, stable=True).indices.T.tolist()
    magnitude_of = magnitude.tolist()
    upstream = [0] * graph.n_destinations
    for group in graph.destination_groups():
        upstream[group.cols] = [group.upstream] * (group.cols.stop - group.cols.start)
    inputs_of: dict[int, list[int]] = {}
    for col, row in enumerate(graph.destination_owner().tolist()):
        inputs_of.setdefault(row, []).append(col)

    # A lazy merge: the heap holds each open destination's best edge not yet taken.
    heap: list[tuple[float, int, int, int]] = []

    def offer(col: int, rank: int) -> None:
        if rank < upstream[col]:
            row = by_column[col][rank]
            heapq.heappush(heap, (-magnitude_of[row][col], row, col, rank))

    for col in inputs_of[-1]:  # the logits
        offer(col, 0)
    chosen_rows, chosen_cols = [], []
    in_circuit, too_costly = [False] * graph.n_sources, [False] * graph.n_sources
    owned: set[ParamSlice] = set()
    cost = 0
    while heap and (n_edges is None or len(chosen_rows) < n_edges):
        _, row, col, rank = heapq.heappop(heap)
        offer(col, rank + 1)
        if too_costly[row]:
            continue
        if not in_circuit[row]:
            if account is not None and budget is not None:
                added = account.node_slices[row] - owned
                if cost + account.count(added) > budget * account.total:
                    too_costly[row] = True  # the circuit only grows, so it stays too costly
                    continue
                owned |= added
                cost += account.count(added)
            in_circuit[row] = True
            for own_col in inputs_of.get(row, []):
                offer(own_col, 0)
        chosen_rows.append(row)
        chosen_cols.append(col)
    edges = torch.zeros(graph.n_sources, graph.n_destinations, dtype=torch.bool)
    edges[chosen_rows, chosen_cols] = True
    edges, node_mask = prune(graph, edges)
    if budget is not None:
        return Selection("budget", budget, edges, node_mask)
    return Selection("greedy", n_edges if n_edges is not None else len(chosen_rows), edges, node_mask)


def within_budget(graph: Graph, scores: torch.Tensor, account: ParamAccount, budget: float,
                  cost_exponent: float = 0.0) -> Selection:
    """The greedy circuit whose heads and MLPs take at most `budget` of all parameters; an error if it has none."""
    selection = greedy(graph, scores, budget=budget, account=account, cost_exponent=cost_exponent)
    if account.count(account.slices(selection.nodes)) == 0:
        cheapest = min(account.count(s) for s in account.node_slices if s) / account.total
        raise CdeltaError(
            f"no circuit fits a parameter budget of {budget:g}: the cheapest head or MLP (group) alone takes "
            f"{cheapest:.4g} of all parameters, and every edge needs one"
        )
    return selection


def select(graph: Graph, scores: torch.Tensor, account: ParamAccount, rule: str, size: float,
           cost_exponent: float = 0.0) -> Selection:
    """Apply one named rule: `budget` (fraction of parameters), `top_edges`/`greedy` (edges), `top_nodes` (nodes).

    `cost_exponent` weighs edges by their source's parameter count under `budget` (see `greedy`)."""
    if rule == "budget":
        return within_budget(graph, scores, account, float(size), cost_exponent)
    if rule not in RULES:
        raise CdeltaError(f"unknown selection rule {rule!r}; choose one of {', '.join(RULES)}")
    if cost_exponent:
        raise CdeltaError(f"a cost exponent applies to the budget rule only, not to {rule!r}")
    if int(size) != size:
        raise CdeltaError(f"{rule} takes a whole number of {'nodes' if rule == 'top_nodes' else 'edges'}, got {size}")
    if rule == "top_edges":
        return top_edges(graph, scores, int(size))
    if rule == "top_nodes":
        return top_nodes(graph, scores, int(size))
    return greedy(graph, scores, n_edges=int(size))
