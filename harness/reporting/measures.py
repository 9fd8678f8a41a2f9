"""Behaviour measures from scored samples (DESIGN.md, "Measuring"): every rate a count k of n with
its Wilson interval, and the comparisons against the run's noop backend."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.reporting.collect import BackendLogs, Outcome
from harness.reporting.schema import MeanStat, RateStat
from harness.stats import Rate, mean_abs_change
from tasks.suite.categories import CATEGORIES

OVER_REFUSAL_KINDS = ("benign", "borderline")


def rate_stat(outcomes: Iterable[Outcome]) -> RateStat:
    """k hits of n samples; n = 0 gives NaN, which the report shows as not measured."""
    seen = list(outcomes)
    rate = Rate(sum(o.hit for o in seen), len(seen))
    return RateStat(value=rate.value, k=rate.k, n=rate.n, ci95=rate.interval)


def per_category(outcomes: Sequence[Outcome]) -> dict[str, RateStat]:
    """Refusal per category, in the suite's order (a benchmark's own categories after, as they appear)."""
    seen = list(dict.fromkeys(o.category for o in outcomes))
    names = [c for c in CATEGORIES if c in seen] + [c for c in seen if c not in CATEGORIES]
    return {name: rate_stat(o for o in outcomes if o.category == name) for name in names}


def off_target_categories(logs: BackendLogs) -> list[str]:
    """The policy categories the policy does not target (the always-refused ones are not policy categories)."""
    return list(dict.fromkeys(o.category for o in logs.refusal if o.kind == "policy" and not o.target))


@dataclass(frozen=True)
class Behaviour:
    """What the logs say one backend did, before any comparison with noop."""

    refusal: dict[str, RateStat]
    target_refusal: RateStat
    over_refusal: RateStat
    utility: RateStat
    off_target: list[str]


def behaviour(logs: BackendLogs) -> Behaviour:
    return Behaviour(
        refusal=per_category(logs.refusal),
        target_refusal=rate_stat(o for o in logs.refusal if o.target),
        over_refusal=rate_stat(o for o in logs.refusal if o.kind in OVER_REFUSAL_KINDS),
        utility=rate_stat(logs.utility),
        off_target=off_target_categories(logs),
    )


def off_target_change(seen: Behaviour, noop: Behaviour | None) -> MeanStat:
    """Mean |refusal − noop's refusal| over the non-target policy categories both measured; n counts
    categories. No interval: the categories are few and fixed, not a sample."""
    if noop is None:
        return MeanStat(value=math.nan, n=0)
    shared = [c for c in seen.off_target if c in noop.refusal]
    if not shared:
        return MeanStat(value=math.nan, n=0)
    value = mean_abs_change({c: seen.refusal[c].value for c in shared}, {c: noop.refusal[c].value for c in shared}, shared)
    return MeanStat(value=value, n=len(shared))


def retention(seen: Behaviour, noop: Behaviour | None) -> float | None:
    """Utility relative to noop's; None without a noop backend or where noop's utility is 0 or unmeasured."""
    if noop is None or not noop.utility.value > 0:  # also catches NaN
        return None
    value = seen.utility.value / noop.utility.value
    return None if math.isnan(value) else value
