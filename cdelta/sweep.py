"""Choosing the scale k of θ' = θ + k·ΔθC: the most selective k that keeps capability.

The caller scores a candidate k on a dev split (selectivity and retention, however it measures
them: typically with `cdelta.apply.patched`); the sweep keeps every point, picks the k with the
highest selectivity among those whose retention meets the floor (ties: the smaller |k|, the
smaller edit), and saves itself as JSON and as a plot.
"""
from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from cdelta.atomic import atomic_write_bytes, atomic_write_text

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SweepPoint:
    k: float
    selectivity: float
    retention: float


@dataclass(frozen=True)
class KSweep:
    points: tuple[SweepPoint, ...]
    retention_floor: float
    best_k: float | None  # None when no k meets the floor

    def to_dict(self) -> dict[str, object]:
        return {"schema_version": SCHEMA_VERSION, "retention_floor": self.retention_floor, "best_k": self.best_k,
                "points": [asdict(p) for p in self.points]}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def plot(self, path: str | Path) -> Path:
        """Selectivity and retention against k, with the floor and the chosen k marked (PNG/SVG by suffix)."""
        from matplotlib.figure import Figure  # Agg through Figure.savefig: no pyplot, no display

        ks = [p.k for p in self.points]
        fig = Figure(figsize=(6, 3.5), layout="constrained")
        ax = fig.subplots()
        ax.plot(ks, [p.selectivity for p in self.points], "o-", label="selectivity")
        ax.plot(ks, [p.retention for p in self.points], "s-", label="retention")
        ax.axhline(self.retention_floor, color="grey", linestyle=":", label="retention floor")
        if self.best_k is not None:
            ax.axvline(self.best_k, color="black", linestyle="--", label=f"chosen k = {self.best_k:g}")
        ax.set_xlabel("k  (θ' = θ + k·ΔθC)")
        ax.legend(fontsize="small")
        path, picture = Path(path), io.BytesIO()
        fig.savefig(picture, format=path.suffix.lstrip(".") or "png")
        atomic_write_bytes(path, picture.getvalue())
        return path


def sweep_k(score: Callable[[float], tuple[float, float]], ks: Iterable[float], retention_floor: float) -> KSweep:
    """Score every k as (selectivity, retention) and pick the best one that meets the retention floor."""
    points = tuple(SweepPoint(float(k), *map(float, score(float(k)))) for k in ks)
    eligible = [p for p in points if p.retention >= retention_floor]
    best = max(eligible, key=lambda p: (p.selectivity, -abs(p.k)), default=None)
    return KSweep(points, retention_floor, None if best is None else best.k)
