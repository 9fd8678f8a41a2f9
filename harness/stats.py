"""Rates with their sample counts and 95% intervals, as every reported number must carry."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    """k successes out of n, with a Wilson score 95% interval (sound at 0% and 100%)."""

    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        if self.n == 0:
            return (float("nan"), float("nan"))
        p, n, z2 = self.value, self.n, Z95 * Z95
        centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
        return (max(0.0, centre - half), min(1.0, centre + half))

    def to_dict(self) -> dict[str, float | int]:
        lo, hi = self.interval
        return {"value": self.value, "k": self.k, "n": self.n, "ci95": [lo, hi]}

    def percent(self, decimals: int = 1) -> str:
        """The rate and its interval in percent, e.g. "12.5% [7.1, 21.0]"."""
        lo, hi = self.interval
        return f"{100 * self.value:.{decimals}f}% [{100 * lo:.{decimals}f}, {100 * hi:.{decimals}f}]"

    def __str__(self) -> str:
        return f"{self.percent()} (n={self.n})"


def mean_abs_change(now: Mapping[str, float], before: Mapping[str, float], categories: Sequence[str]) -> float:
    """Mean |now − before| over `categories` (each in both): the off-target and collateral measures
    of the study and of the report; NaN for no categories."""
    if not categories:
        return math.nan
    return sum(abs(now[c] - before[c]) for c in categories) / len(categories)


def paired_ratio_interval(base: Sequence[bool], edited: Sequence[bool], draws: int = 2000,
                          seed: int = 0) -> tuple[float, float]:
    """95% paired-bootstrap interval of mean(edited) / mean(base) over the same items.

    Utility retention is this ratio, and a k is kept only when it meets a floor: on 200 items a few
    answers decide that, so the sweep shows how wide the estimate is. Items are resampled together,
    so an edit that keeps every answer gets (1, 1), however few items there are. Resamples in which
    the base answers nothing have no ratio and are left out; if all are, the interval is NaN."""
    if len(base) != len(edited) or not base:
        raise ValueError(f"need the same non-empty items for both models (got {len(base)} and {len(edited)})")
    b, e = np.asarray(base, dtype=float), np.asarray(edited, dtype=float)
    picks = np.random.default_rng(seed).integers(0, len(b), size=(draws, len(b)))
    base_sums = b[picks].sum(axis=1)
    ratios = e[picks].sum(axis=1)[base_sums > 0] / base_sums[base_sums > 0]
    if not len(ratios):
        return (math.nan, math.nan)
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    return (float(lo), float(hi))
