"""Pictures of a circuit: its faithfulness curve, and node scores as a heads x layers heat map."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cdelta.circuit.artifact import Circuit  # noqa: E402
from cdelta.circuit.faithfulness import Faithfulness  # noqa: E402
from cdelta.errors import CdeltaError  # noqa: E402


def plot_faithfulness(circuit: Circuit, path: Path) -> None:
    """Normalised faithfulness against the number of top-|score| edges kept."""
    f = _curve(circuit, "this circuit")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(f.counts, f.values, marker="o")
    _faithfulness_axes(ax, [f])
    ax.set_title(f"{circuit.method}: curve area {f.area:.3f}\ncircuit of {len(circuit.selection.edges)} edges: {f.circuit:.3f}")
    save_figure(fig, path)


def plot_faithfulness_curves(circuits: dict[str, Circuit], path: Path, target: float | None = None) -> None:
    """Several circuits' curves on one graph (one line per label, all found on the same model graph), with an
    optional target line: how circuits of several categories compare."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    curves = []
    for label, circuit in circuits.items():
        f = _curve(circuit, label)
        curves.append(f)
        ax.plot(f.counts, f.values, marker="o", ms=3,
                label=f"{label} (circuit of {len(circuit.selection.edges)} edges: {f.circuit:.3f})")
    if target is not None:
        ax.axhline(target, color="tab:red", lw=0.8, ls=":", label=f"target {target:g}")
    _faithfulness_axes(ax, curves)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def _curve(circuit: Circuit, name: str) -> Faithfulness:
    if circuit.faithfulness is None:
        raise CdeltaError(f"{name} has no faithfulness curve to plot")
    return circuit.faithfulness


def _faithfulness_axes(ax: Axes, curves: list[Faithfulness]) -> None:
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0)
    ax.set_xlabel("edges kept (top |score|)")
    held_out = all(f.held_out is not None for f in curves)
    ax.set_ylabel("normalised faithfulness" + (", held-out pairs" if held_out else ""))


def save_figure(fig: Figure, path: Path) -> None:
    """Through a temporary file beside `path` and a rename: a reader never sees half a picture."""
    fig.tight_layout()
    partial = path.with_name(f".{path.name}.partial")
    try:
        fig.savefig(partial, dpi=120, format=path.suffix.lstrip(".") or "png")
        partial.replace(path)
    finally:
        plt.close(fig)
        partial.unlink(missing_ok=True)


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
    save_figure(fig, path)
