"""Pictures of a circuit: its faithfulness curve, and node scores as a heads x layers heat map."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cdelta.circuit.artifact import Circuit  # noqa: E402
from cdelta.errors import CdeltaError  # noqa: E402


def plot_faithfulness(circuit: Circuit, path: Path) -> None:
    """Normalised faithfulness against the number of top-|score| edges kept."""
    if circuit.faithfulness is None:
        raise CdeltaError("this circuit has no faithfulness curve to plot")
    f = circuit.faithfulness
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(f.counts, f.values, marker="o")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0)
    ax.set_xlabel("edges kept (top |score|)")
    ax.set_ylabel("normalised faithfulness")
    ax.set_title(f"{circuit.method}: curve area {f.area:.3f}\ncircuit of {len(circuit.selection.edges)} edges: {f.circuit:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def node_score_grid(circuit: Circuit) -> tuple[np.ndarray, np.ndarray]:
    """Per layer: each head's node score, then each MLP group's (one column for a whole MLP),
    [layers, heads + groups]; and which are in the circuit."""
    graph = circuit.graph
    column = {name: (layer, c) for layer in range(graph.n_layers)
              for c, name in enumerate([f"a{layer}.h{h}" for h in range(graph.n_heads)] + graph.mlp_names(layer))}
    grid = np.zeros((graph.n_layers, graph.n_heads + graph.mlp_groups))
    for name, score in zip(circuit.edges, circuit.scores):
        cell = column.get(name.split("->")[0])
        if cell is not None:
            grid[cell] += score
    members = np.zeros_like(grid, dtype=bool)
    for name in circuit.nodes:
        if name in column:
            members[column[name]] = True
    return grid, members


def plot_heatmap(circuit: Circuit, path: Path) -> None:
    """Signed node scores, heads then the MLP (or its groups, a block of columns right of a line) x layers;
    circuit members dotted."""
    grid, members = node_score_grid(circuit)
    n_heads, groups = circuit.model.n_heads, circuit.model.mlp_groups
    bound = float(np.abs(grid).max()) or 1.0
    n_layers, n_columns = grid.shape
    width = min(max(5.0, 0.35 * n_columns + 2.5), 16.0)  # many MLP groups: narrower cells, not a wider page
    fig, ax = plt.subplots(figsize=(width, max(3.5, 0.3 * n_layers + 2)))
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto", origin="lower")
    ys, xs = np.nonzero(members)
    ax.scatter(xs, ys, s=8, c="black", label="in circuit")
    mlp_labels = ["MLP"] if groups == 1 else [f"g{g}" for g in range(groups)]
    step = max(1, groups // 16)  # at most ~16 group labels
    labels = [str(h) for h in range(n_heads)] + [t if i % step == 0 else "" for i, t in enumerate(mlp_labels)]
    ax.set_xticks(range(n_columns), labels, fontsize=7)
    ax.axvline(n_heads - 0.5, color="black", lw=1.0)
    ax.set_yticks(range(n_layers))
    ax.set_xlabel("head" if groups == 1 else f"head | MLP unit group (of {groups})")
    ax.set_ylabel("layer")
    ax.set_title(f"node scores, {circuit.method}\ncircuit: {circuit.param_fraction:.2%} of parameters", fontsize=9)
    fig.colorbar(image, ax=ax, label="sum of outgoing edge scores")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
