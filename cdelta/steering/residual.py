"""Reading the residual stream: what enters each decoder layer, reduced over chosen positions.

"The residual stream at layer l" is, everywhere in steering, the input of decoder layer l (l = 0 is
the embeddings): vectors are read there and added there. A read stops the forward pass after the
last layer it needs, so reading an early layer costs a fraction of a forward pass.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import nn

from cdelta.chat import encode_chat, position_ids
from cdelta.errors import CdeltaError
from cdelta.graph.adapters import adapter_for

Reduction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(hidden [b, p, d], attention_mask [b, p]) -> one vector per sequence [b, d]."""


Read = Literal["instruction", "post_instruction"]
READS: tuple[Read, ...] = ("instruction", "post_instruction")
"""Which positions a read averages: the user's text, or the chat template's tokens after it (the
assistant header), where the model has read the whole prompt and prepares its answer."""


def check_read(read: str) -> Read:
    """`read` as a Read, or a CdeltaError naming the reads there are."""
    if read not in READS:
        raise CdeltaError(f"unknown read {read!r}; use one of {', '.join(READS)}")
    return read  # type: ignore[return-value]


def read_positions(read: Read, index: torch.Tensor, length: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """Which token positions a read averages, for a prompt of `length` tokens whose template writes `before`
    tokens before the user's text and `after` after it. Shared by every engine, whatever its batch layout
    (padded or flattened): `index` is each token's position in its own prompt."""
    if check_read(read) == "instruction":
        return (index >= before) & (index < length - after)
    return (index >= length - after) & (index < length)  # post_instruction


def read_mean(read: Read, before: int, after: int) -> Reduction:
    """Mean over a read's positions of each sequence's real tokens (left or right padding alike); the
    template's tokens the read leaves out are the same for every prompt and would only blur what tells
    prompts apart."""
    check_read(read)  # here, not at the first forward pass

    def reduce(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        real = attention_mask.long()
        index = real.cumsum(-1) - 1  # position among the sequence's real tokens
        keep = (real > 0) & read_positions(read, index, real.sum(-1, keepdim=True), before, after)
        mask = keep.to(torch.float32).unsqueeze(-1)
        return (hidden.float() * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    return reduce


def layer_input(args: tuple, kwargs: dict[str, Any]) -> torch.Tensor:
    """The hidden states a decoder layer was called with, positional or keyword."""
    return args[0] if args else kwargs["hidden_states"]


class _Enough(Exception):
    """Raised by the last read hook: the rest of the forward pass is not needed."""


@contextmanager
def _reading(layers: Sequence[nn.Module], wanted: Sequence[int], attention_mask: torch.Tensor,
             reduce: Reduction) -> Iterator[dict[int, torch.Tensor]]:
    seen: dict[int, torch.Tensor] = {}
    last = max(wanted)

    def hook_for(layer: int) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
            seen[layer] = reduce(layer_input(args, kwargs), attention_mask)
            if layer == last:
                raise _Enough

        return hook

    handles = [layers[layer].register_forward_pre_hook(hook_for(layer), with_kwargs=True) for layer in set(wanted)]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def read_batch(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, layers: Sequence[int],
               reduce: Reduction) -> torch.Tensor:
    """Reduced residual stream of one left-padded batch at each of `layers`: [len(layers), b, d]."""
    blocks = adapter_for(model).layers()
    if not layers or min(layers) < 0 or max(layers) >= len(blocks):
        raise CdeltaError(f"layers {list(layers)} out of range: the model has decoder layers 0..{len(blocks) - 1}")
    with _reading(blocks, layers, attention_mask, reduce) as seen:
        try:
            model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                  use_cache=False)
        except _Enough:
            pass
    missing = [layer for layer in layers if layer not in seen]
    if missing:
        raise CdeltaError(f"the forward pass never reached decoder layers {missing}: the model does not run its "
                          "layers as the adapter describes them")
    return torch.stack([seen[layer] for layer in layers])


@torch.no_grad()
def read_prompts(model: nn.Module, tokenizer: Any, prompts: Sequence[str], layers: Sequence[int],
                 reduce: Reduction, batch_size: int = 64) -> torch.Tensor:
    """Reduced residual stream of chat-rendered user prompts at each of `layers`: [len(layers), n, d] (fp32)."""
    if not prompts:
        raise CdeltaError("no prompts to read the residual stream from")
    device = next(model.parameters()).device
    chunks = []
    for start in range(0, len(prompts), batch_size):
        enc = encode_chat(tokenizer, prompts[start:start + batch_size], device)
        chunks.append(read_batch(model, enc["input_ids"], enc["attention_mask"], layers, reduce).cpu())
    return torch.cat(chunks, dim=1)
