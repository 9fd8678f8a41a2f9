"""Interventions on the residual stream as context managers: hooks are always removed, and must have fired.

An engine that runs the model some other way (a compiled graph, another process) would silently skip
a forward hook; every context here therefore counts its hooks' calls and, when the block ends
normally, raises if one never ran.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Literal

import torch
from torch import nn

from cdelta.errors import CdeltaError
from cdelta.graph.adapters import adapter_for
from cdelta.steering.residual import layer_input

# Where a behaviour vector is added: every position (prompt and generated tokens, as Arditi et al. and
# the CAST reference do) or the prompt's positions only (as Turner et al.'s ActAdd does).
Positions = Literal["all", "prompt"]
POSITIONS: tuple[Positions, ...] = ("all", "prompt")

PreHook = Callable[[tuple, dict[str, Any]], tuple[tuple, dict[str, Any]] | None]


def check_vector(n_layers: int, d_model: int, layer: int, vector: torch.Tensor, what: str) -> None:
    """A steering vector must be one residual-stream vector at an existing layer."""
    if not 0 <= layer < n_layers:
        raise CdeltaError(f"{what}: layer {layer} is out of range; the model has decoder layers 0..{n_layers - 1}")
    if vector.ndim != 1 or vector.shape[0] != d_model:
        raise CdeltaError(f"{what}: vector at layer {layer} has shape {tuple(vector.shape)}, but the model's "
                          f"residual stream has width {d_model}")
    if not bool(torch.isfinite(vector).all()):
        raise CdeltaError(f"{what}: vector at layer {layer} holds NaN or Inf values")


@contextmanager
def pre_hooks(hooks: list[tuple[nn.Module, str, PreHook]]) -> Iterator[None]:
    """Register (module, name, hook) forward pre-hooks for the block; each must fire at least once."""
    calls = {name: 0 for _, name, _ in hooks}

    def counted(name: str, hook: PreHook) -> Callable:
        def run(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]] | None:
            calls[name] += 1
            return hook(args, kwargs)

        return run

    handles = [module.register_forward_pre_hook(counted(name, hook), with_kwargs=True) for module, name, hook in hooks]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
    silent = [name for name, n in calls.items() if n == 0]
    if silent:
        raise CdeltaError(f"steering hooks never fired ({', '.join(silent)}): the model was not run through its "
                          "Hugging Face modules, so the intervention did nothing")


def _replace_input(args: tuple, kwargs: dict[str, Any], hidden: torch.Tensor) -> tuple[tuple, dict[str, Any]]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def added(hidden: torch.Tensor, vector: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """`hidden` [..., d] plus `vector`, only where `rows` (bool over hidden's leading dims: sequences of a
    padded batch, or tokens of a flattened one) holds; None means everywhere. Elsewhere hidden is unchanged
    to the bit, so an unsteered sequence matches the model without hooks."""
    delta = vector.to(hidden.device, hidden.dtype)
    if rows is not None:
        delta = rows.to(hidden.device, hidden.dtype).reshape(*rows.shape, *[1] * (hidden.ndim - rows.ndim)) * delta
    return hidden + delta


def adding(model: nn.Module, vectors: dict[int, torch.Tensor], rows: torch.Tensor | None = None,
           prompt_length: int | None = None) -> AbstractContextManager[None]:
    """Add `vectors[l]` to the residual stream entering decoder layer l.

    `rows` ([batch] of bool) limits the addition to those sequences; None means every sequence.
    `prompt_length` (the padded prompt's length) limits it to the prompt's positions, so generated
    tokens are computed unsteered and read the steered prompt only through attention; None means
    every position. Positions are counted across the forward passes of one generation (prefill,
    then one token per pass with a cache), which is why a context serves one generation.
    """
    adapter = adapter_for(model)
    for layer, vector in vectors.items():
        check_vector(adapter.n_layers, adapter.d_model, layer, vector, "steering")

    def add(vector: torch.Tensor) -> PreHook:
        seen = 0  # positions this layer has already processed

        def hook(args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]] | None:
            nonlocal seen
            hidden = layer_input(args, kwargs)
            if rows is not None and rows.shape[0] != hidden.shape[0]:
                raise CdeltaError(f"steering rows cover {rows.shape[0]} sequences, the batch has {hidden.shape[0]}")
            where = rows
            if prompt_length is not None:
                in_prompt = torch.arange(seen, seen + hidden.shape[1]) < prompt_length
                seen += hidden.shape[1]
                if not bool(in_prompt.any()):
                    return None
                by_row = torch.ones(hidden.shape[0], dtype=torch.bool) if rows is None else rows.cpu()
                where = by_row[:, None] & in_prompt[None, :]
            return _replace_input(args, kwargs, added(hidden, vector, where))

        return hook

    blocks = adapter.layers()
    return pre_hooks([(blocks[layer], f"add@layer{layer}", add(v)) for layer, v in sorted(vectors.items())])


def ablating(model: nn.Module, direction: torch.Tensor) -> AbstractContextManager[None]:
    """Remove the component along `direction` from everything that reads the residual stream.

    Every attention block, MLP and the unembedding read the stream through a norm; projecting at each
    of those reads is the directional ablation of Arditi et al. (they project every write instead:
    the same thing, as what no reader sees does not matter).
    """
    adapter = adapter_for(model)
    check_vector(adapter.n_layers, adapter.d_model, 0, direction, "ablation")
    norm = float(direction.norm())
    if norm == 0.0:
        raise CdeltaError("cannot ablate a zero direction")
    unit = direction / norm

    def project(args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        hidden = args[0]
        u = unit.to(hidden.device, hidden.dtype)
        return (hidden - (hidden @ u).unsqueeze(-1) * u, *args[1:]), kwargs

    reads = [(adapter.final_norm(), "ablate@final_norm", project)]
    for layer in range(adapter.n_layers):
        reads += [(adapter.attn_norm(layer), f"ablate@attn_norm{layer}", project),
                  (adapter.mlp_norm(layer), f"ablate@mlp_norm{layer}", project)]
    return pre_hooks(reads)
