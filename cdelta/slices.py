"""Parameter slices: the unit in which circuits are stated and weight updates are stored."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class ParamSlice:
    """Rows (dim=0) or columns (dim=1) [start, stop) of one named tensor of a model.

    A head's q/k/v rows, its o_proj columns and an MLP's units are all slices; a circuit is
    a set of slices and a patch stores the values of a weight update on them.
    """

    tensor: str
    dim: int
    start: int
    stop: int

    def __post_init__(self) -> None:
        if self.dim not in (0, 1):
            raise ValueError(f"ParamSlice.dim must be 0 or 1, got {self.dim} for {self.tensor}")
        if not 0 <= self.start < self.stop:
            raise ValueError(f"ParamSlice range [{self.start}, {self.stop}) of {self.tensor} is empty or negative")

    def numel(self, shape: tuple[int, ...]) -> int:
        """Number of parameters this slice covers in a tensor of `shape`."""
        other = 1
        for d, n in enumerate(shape):
            if d != self.dim:
                other *= n
        return (self.stop - self.start) * other

    def to_dict(self) -> dict[str, object]:
        return {"tensor": self.tensor, "dim": self.dim, "start": self.start, "stop": self.stop}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> "ParamSlice":
        return cls(str(d["tensor"]), int(d["dim"]), int(d["start"]), int(d["stop"]))  # type: ignore[arg-type]
