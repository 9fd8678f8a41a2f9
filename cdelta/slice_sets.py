"""Sets of parameter slices over one model: checking a circuit against it, and the ablation sets.

The edit and the patch both need the same guarantees about a slice set (every slice names a
tensor the model has, lies inside it, and no two slices overlap), and the two ablations of the
method (dense, random circuit) are slice sets too, so all of them go through the same code path.
"""
from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

import torch

from cdelta.errors import CdeltaError
from cdelta.slices import ParamSlice

Shapes = Mapping[str, tuple[int, ...]]


def model_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Name → shape of every parameter (tied parameters appear once, under their first name)."""
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def checked(slices: Iterable[ParamSlice], shapes: Shapes, model_name: str = "the model") -> list[ParamSlice]:
    """The slices, de-duplicated and sorted, or a CdeltaError saying which one does not fit.

    De-duplication is what makes a KV head shared by several query heads (GQA) edited once.
    Overlapping slices are refused: an entry would be trained and stored twice.
    """
    unique = sorted(set(slices))
    if not unique:
        raise CdeltaError("the circuit has no parameter slices: there is nothing to edit")
    by_tensor: dict[str, list[ParamSlice]] = defaultdict(list)
    for s in unique:
        shape = shapes.get(s.tensor)
        if shape is None:
            raise CdeltaError(
                f"slice {s} names tensor {s.tensor!r}, which {model_name} does not have: "
                "was the circuit found on another model?"
            )
        if s.dim >= len(shape) or s.stop > shape[s.dim]:
            raise CdeltaError(
                f"slice {s} does not fit tensor {s.tensor!r} of shape {shape} in {model_name}: "
                "was the circuit found on another model?"
            )
        by_tensor[s.tensor].append(s)
    for tensor, group in by_tensor.items():
        for a, b in zip(group, group[1:]):
            if a.dim != b.dim or a.stop > b.start:
                raise CdeltaError(f"slices {a} and {b} of {tensor!r} overlap; state each parameter once")
    return unique


def param_count(slices: Iterable[ParamSlice], shapes: Shapes) -> int:
    """How many parameters the slices cover."""
    return sum(s.numel(shapes[s.tensor]) for s in slices)


def dense_slices(shapes: Shapes) -> list[ParamSlice]:
    """Every parameter of the model: the `dense` ablation (fine-tuning without a mask)."""
    return [ParamSlice(name, 0, 0, shape[0]) for name, shape in sorted(shapes.items()) if shape]


def _role(tensor: str) -> str:
    """The tensor's name with its layer index wildcarded: q_proj of layer 3 and of layer 7 share a role."""
    return re.sub(r"\.\d+\.", ".*.", tensor)


def random_slices(circuit: Iterable[ParamSlice], shapes: Shapes, seed: int) -> list[ParamSlice]:
    """Random slices with the circuit's exact budget: the `random circuit` ablation.

    Each circuit slice of width w along `dim` of a tensor is replaced by a block of the same
    width, aligned to w (so a head's rows stay one head's rows), in a tensor of the same role
    and shape in any layer, drawn without replacement. The parameter count per role, and hence
    in total, equals the circuit's. Blocks are drawn per role: the q rows and o columns of one
    random head need not belong to the same head.
    """
    wanted: dict[tuple[str, tuple[int, ...], int, int], int] = defaultdict(int)
    for s in checked(circuit, shapes):
        wanted[(_role(s.tensor), shapes[s.tensor], s.dim, s.stop - s.start)] += 1
    rng = random.Random(seed)
    drawn: list[ParamSlice] = []
    for (role, shape, dim, width), count in sorted(wanted.items()):
        pool = [
            ParamSlice(name, dim, j * width, (j + 1) * width)
            for name in sorted(shapes)
            if _role(name) == role and shapes[name] == shape
            for j in range(shape[dim] // width)
        ]
        drawn.extend(rng.sample(pool, count))
    return checked(drawn, shapes)
