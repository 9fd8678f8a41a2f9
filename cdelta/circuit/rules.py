"""The selection rules' names and settings, importable without torch (the CLI checks them before loading a model)."""
from __future__ import annotations

import math

from cdelta.errors import CdeltaError

RULES: tuple[str, ...] = ("budget", "top_edges", "top_nodes", "greedy")
# The budget rule's default cost weighting: |score| / sqrt(parameters). On the organism's neuron-level
# graph it chose circuits more faithful on held-out phrasings than |score| alone (docs/eap-ig.md).
DEFAULT_COST_EXPONENT = 0.5


def check_cost_exponent(cost_exponent: float) -> None:
    """Reject a cost weighting that is not a finite number >= 0, before any attribution is spent on it."""
    if isinstance(cost_exponent, bool) or not isinstance(cost_exponent, (int, float)) or not (
            math.isfinite(cost_exponent) and cost_exponent >= 0):
        raise CdeltaError(f"the cost exponent must be a finite number >= 0 (0 ranks by |score| alone), got {cost_exponent!r}")
