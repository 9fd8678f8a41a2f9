"""The hyperparameters of an edit, apart from the algorithm so that the CLI can show them without importing torch."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from cdelta.errors import CdeltaError

DEFAULT_K = 2.0
"""The paper's scale: the edited model is θ + k·ΔθC."""


@dataclass(frozen=True)
class EditConfig:
    """Hyperparameters of both fine-tunes; the defaults are the paper's (lr 1e-5, 50 steps, clip 1.0)."""

    lr: float = 1e-5
    steps: int = 50
    batch_size: int = 8
    retain_weight: float = 1.0
    decision_weight: float = 1.0
    """Weight of the first response position in the retain KL, against 1 for each later one: the first
    token is where a model commits to refusing or answering, and a plain mean over a ~20-token
    response lets an edit move that decision on off-target prompts almost for free."""
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    retain_size: int | None = None
    """How many of the non-target examples the retain term starts from (a seeded draw); None: all of them."""
    mine_rounds: int = 0
    """Rounds of mined retain (cdelta.mining): each adds the `mine_size` non-target examples whose first
    response token the last ΔθC, at scale `mine_k`, moves most, then computes ΔθC again."""
    mine_size: int = 256
    mine_k: float = 1.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise CdeltaError(f"steps and batch size must be at least 1 (got {self.steps}, {self.batch_size})")
        if (self.retain_size is not None and self.retain_size < 1) or self.mine_rounds < 0 or self.mine_size < 1 \
                or self.mine_k == 0 or not math.isfinite(self.mine_k):
            raise CdeltaError(f"invalid retain or mining settings (retain size >= 1, rounds >= 0, mined examples >= 1, "
                              f"finite k != 0): {self}")
        if (self.lr <= 0 or self.grad_clip <= 0 or self.retain_weight < 0 or self.weight_decay < 0
                or self.decision_weight <= 0):
            raise CdeltaError(f"invalid edit hyperparameters: {self}")

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)
