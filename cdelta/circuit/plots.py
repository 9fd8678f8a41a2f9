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
    """Per layer: each head's node score then the MLP's, [layers, heads + 1]; and which are in the circuit."""
    n_layers, n_heads = circuit.model.n_layers, circuit.model.n_heads
    grid = np.zeros((n_layers, n_heads + 1))
    for name, score in zip(circuit.edges, circuit.scores):
        layer, column = _cell(name.split("->")[0], n_heads)
        if layer is not None:
            grid[layer, column] += score
    members = np.zeros_like(grid, dtype=bool)
    for name in circuit.nodes:
        layer, column = _cell(name, n_heads)
        if layer is not None:
            members[layer, column] = True
    return grid, members


def _cell(node: str, n_heads: int) -> tuple[int | None, int]:
    if node.startswith("a"):
        layer, head = node[1:].split(".h")
        return int(layer), int(head)
    if node.startswith("m"):
        return int(node[1:]), n_heads
    return None, 0


def plot_heatmap(circuit: Circuit, path: Path) -> None:
    """Signed node scores, heads (and the MLP, last column) x layers; circuit members dotted."""
    grid, members = node_score_grid(circuit)
    bound = float(np.abs(grid).max()) or 1.0
    n_layers, n_columns = grid.shape
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * n_columns + 2.5), max(3.5, 0.3 * n_layers + 2)))
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto", origin="lower")
    ys, xs = np.nonzero(members)
    ax.scatter(xs, ys, s=8, c="black", label="in circuit")
    ax.set_xticks(range(n_columns), [str(h) for h in range(n_columns - 1)] + ["MLP"], fontsize=7)
    ax.set_yticks(range(n_layers))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(f"node scores, {circuit.method}\ncircuit: {circuit.param_fraction:.2%} of parameters", fontsize=9)
    fig.colorbar(image, ax=ax, label="sum of outgoing edge scores")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
