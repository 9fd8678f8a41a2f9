"""The selection rules' names and settings, importable without torch (the CLI checks them before loading a model)."""
from __future__ import annotations

import math

from cdelta.errors import CdeltaError

RULES: tuple[str, ...] = ("budget", "top_edges", "top_nodes", "greedy")
# The budget rule's default cost weighting: |score| / parameters^0.25. Chosen on the organism's dev pairs
# (mean faithfulness over the five policy categories at neuron level: 0.836, 0.896, 0.895, 0.827 at
# a = 0, 0.25, 0.5, 0.75; tests/benchmarks/cost_weighting.py, docs/eap-ig.md "Cost-weighted budget").
DEFAULT_COST_EXPONENT = 0.25


def check_cost_exponent(cost_exponent: float) -> None:
    """Reject a cost weighting that is not a finite number >= 0, before any attribution is spent on it."""
    if isinstance(cost_exponent, bool) or not isinstance(cost_exponent, (int, float)) or not (
            math.isfinite(cost_exponent) and cost_exponent >= 0):
        raise CdeltaError(f"the cost exponent must be a finite number >= 0 (0 ranks by |score| alone), got {cost_exponent!r}")
