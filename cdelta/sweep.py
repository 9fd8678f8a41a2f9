"""Choosing the scale k of θ' = θ + k·ΔθC: the most selective k that keeps capability and refusals.

The caller scores a candidate k on a dev split (selectivity, retention and the largest fall in refusal
on the categories that must stay refused, however it measures them: typically with
`cdelta.apply.patched`; optionally a 95% interval of the retention); the sweep keeps every point,
picks the k with the highest selectivity among those whose retention meets the floor and whose
refusal drop stays within the limit (ties: the smaller |k|, the smaller edit), and saves itself as
JSON and as a plot.
"""
from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from cdelta.atomic import atomic_write_bytes, atomic_write_text

# 2 adds refusal_drop to every point and max_refusal_drop to the sweep; a version-1 sweep has neither.
# 3 adds retention_low and retention_high, the retention's 95% interval, where the caller measured it.
SCHEMA_VERSION = 3
TOLERANCE = 1e-9


@dataclass(frozen=True)
class SweepPoint:
    k: float
    selectivity: float
    retention: float
    # the largest fall in refusal rate on the categories that must stay refused (0 when none falls);
    # None in sweeps saved before it was measured
    refusal_drop: float | None = None
    # the retention's 95% interval: the floor decision rests on a few dev items, and this says how few
    retention_low: float | None = None
    retention_high: float | None = None

    def eligible(self, retention_floor: float, max_refusal_drop: float | None) -> bool:
        """Both are ratios of counts: a drop of 2 prompts in 40 computes as 0.050000000000000044, so each bound
        is met within TOLERANCE."""
        if self.retention < retention_floor - TOLERANCE:
            return False
        return max_refusal_drop is None or (self.refusal_drop is not None
                                            and self.refusal_drop <= max_refusal_drop + TOLERANCE)


@dataclass(frozen=True)
class KSweep:
    points: tuple[SweepPoint, ...]
    retention_floor: float
    best_k: float | None  # None when no k meets the floor and the refusal limit
    max_refusal_drop: float | None = None  # None: refusals not guarded (sweeps saved before schema 2)

    def to_dict(self) -> dict[str, object]:
        return {"schema_version": SCHEMA_VERSION, "retention_floor": self.retention_floor,
                "max_refusal_drop": self.max_refusal_drop, "best_k": self.best_k,
                "points": [asdict(p) for p in self.points]}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> "KSweep":
        """A saved sweep of schema 1, 2 or 3."""
        def optional(p: dict[str, object], key: str) -> float | None:
            return None if p.get(key) is None else float(p[key])  # type: ignore[arg-type]

        points = tuple(SweepPoint(float(p["k"]), float(p["selectivity"]), float(p["retention"]),
                                  *(optional(p, key) for key in ("refusal_drop", "retention_low", "retention_high")))
                       for p in data["points"])  # type: ignore[union-attr]
        limit, best = data.get("max_refusal_drop"), data["best_k"]
        return cls(points, float(data["retention_floor"]),  # type: ignore[arg-type]
                   None if best is None else float(best),  # type: ignore[arg-type]
                   None if limit is None else float(limit))  # type: ignore[arg-type]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def plot(self, path: str | Path) -> Path:
        """Selectivity, retention and refusal drop against k, with the floor, the limit and the chosen k
        marked (PNG/SVG by suffix)."""
        from matplotlib.figure import Figure  # Agg through Figure.savefig: no pyplot, no display

        ks = [p.k for p in self.points]
        fig = Figure(figsize=(6, 3.5), layout="constrained")
        ax = fig.subplots()
        ax.plot(ks, [p.selectivity for p in self.points], "o-", label="selectivity")
        ax.plot(ks, [p.retention for p in self.points], "s-", label="retention")
        if all(p.retention_low is not None and p.retention_high is not None for p in self.points):
            ax.fill_between(ks, [p.retention_low for p in self.points], [p.retention_high for p in self.points],
                            color="tab:orange", alpha=0.2, label="retention, 95% interval")
        ax.axhline(self.retention_floor, color="grey", linestyle=":", label="retention floor")
        if all(p.refusal_drop is not None for p in self.points):
            ax.plot(ks, [p.refusal_drop for p in self.points], "^-", color="tab:red", label="always-refused drop")
        if self.max_refusal_drop is not None:
            ax.axhline(self.max_refusal_drop, color="tab:red", linestyle=":", label="refusal drop limit")
        if self.best_k is not None:
            ax.axvline(self.best_k, color="black", linestyle="--", label=f"chosen k = {self.best_k:g}")
        ax.set_xlabel("k  (θ' = θ + k·ΔθC)")
        ax.legend(fontsize="small")
        path, picture = Path(path), io.BytesIO()
        fig.savefig(picture, format=path.suffix.lstrip(".") or "png")
        atomic_write_bytes(path, picture.getvalue())
        return path


def sweep_k(score: Callable[[float], Sequence[float]], ks: Iterable[float], retention_floor: float,
            max_refusal_drop: float | None = None) -> KSweep:
    """Score every k as (selectivity, retention, refusal drop), optionally followed by the retention's
    95% interval (low, high), and pick the most selective k that meets the retention floor and, when
    `max_refusal_drop` is given, keeps the refusal drop within it. The interval is recorded and
    plotted; the choice is made on the point estimate."""
    def point(k: float) -> SweepPoint:
        measured = [float(x) for x in score(k)]
        if len(measured) not in (3, 5):
            raise ValueError(f"score(k) must give 3 or 5 numbers (selectivity, retention, refusal drop[, retention "
                             f"interval low, high]), got {len(measured)}")
        return SweepPoint(k, *measured)

    points = tuple(point(float(k)) for k in ks)
    eligible = [p for p in points if p.eligible(retention_floor, max_refusal_drop)]
    best = max(eligible, key=lambda p: (p.selectivity, -abs(p.k)), default=None)
    return KSweep(points, retention_floor, None if best is None else best.k, max_refusal_drop)
