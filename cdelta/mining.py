"""Mined retain examples: the non-target prompts that a first ΔθC moves most at the decision position.

A random retain sample holds an edit's average behaviour off target, but a circuit edit that reads
early, lexical features flips whole phrasings of other categories at once, and a random sample
rarely contains them. The first ΔθC finds them itself: over a pool of non-target prompts, the KL
from the base model's next-token distribution to the edited model's at the first response position,
where a chat model commits to refusing or answering. The prompts with the largest KL join the retain
set and ΔθC is computed again (`EditConfig.mine_rounds`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call

from cdelta.chat import encode_chat, position_ids
from cdelta.policy import Example


@torch.no_grad()
def decision_shift(model: torch.nn.Module, tokenizer: Any, prompts: Sequence[str],
                   overrides: dict[str, torch.Tensor], batch_size: int = 64) -> torch.Tensor:
    """KL(base ‖ edited) of each prompt's first-response-token distribution; `overrides` are the edited
    tensors by name (a `functional_call` override), the module's own weights are the base."""
    device = next(model.parameters()).device
    shifts = []
    for start in range(0, len(prompts), batch_size):
        enc = encode_chat(tokenizer, prompts[start:start + batch_size], device)
        inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                  "position_ids": position_ids(enc["attention_mask"])}
        base = F.log_softmax(model(**inputs).logits[:, -1].float(), dim=-1)
        edited = F.log_softmax(functional_call(model, overrides, args=(), kwargs=inputs).logits[:, -1].float(), dim=-1)
        shifts.append(F.kl_div(edited, base, log_target=True, reduction="none").sum(-1).cpu())
    return torch.cat(shifts) if shifts else torch.zeros(0)


def hardest(pool: Sequence[Example], shift: torch.Tensor, n: int) -> tuple[Example, ...]:
    """The `n` examples of `pool` with the largest shift, largest first (ties: the earlier example)."""
    if len(pool) != len(shift):
        raise ValueError(f"{len(pool)} examples but {len(shift)} shifts")
    order = sorted(range(len(pool)), key=lambda i: (-float(shift[i]), i))
    return tuple(pool[i] for i in order[:n])
