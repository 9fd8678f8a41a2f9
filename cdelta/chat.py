"""How a user prompt becomes the token ids a chat model sees: one rendering for generation and for steering.

Steering vectors are read and added where generation runs, so the prompts they are fitted on must be
rendered, tokenized and padded exactly as the engine renders them: left padding, the model's own chat
template with the generation prompt, no extra special tokens (the template writes its own).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import BatchEncoding

from cdelta.errors import CdeltaError

_SENTINEL = "\u2063cdelta-instruction\u2063"


def chat_prompts(tokenizer: Any, prompts: Sequence[str]) -> list[str]:
    """Each user prompt rendered by the model's own chat template, ready for the first response token."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise CdeltaError("the tokenizer has no chat template; steering and generation need one to render prompts")
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                          tokenize=False) for p in prompts]


def encode_chat(tokenizer: Any, prompts: Sequence[str], device: torch.device | str = "cpu") -> BatchEncoding:
    """Chat-rendered prompts as one left-padded batch, so the last column is every prompt's last token.

    A tokenizer without a pad token (many base checkpoints) pads with its EOS token, or id 0: the
    attention mask hides the padding either way."""
    texts = chat_prompts(tokenizer, prompts)
    if tokenizer.pad_token_id is not None:
        enc = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        return enc.to(device)
    rows = tokenizer(texts, add_special_tokens=False)["input_ids"]
    width = max((len(r) for r in rows), default=0)
    pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long).reshape(len(rows), width)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long).reshape(len(rows), width)
    return BatchEncoding({"input_ids": ids, "attention_mask": mask}).to(device)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore left padding, as `generate` computes them: a padded prompt sits where it would alone."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def template_span(tokenizer: Any) -> tuple[int, int]:
    """How many tokens the chat template writes before and after the user's text.

    The tokens after it (end of turn, assistant header) are the post-instruction positions where
    Arditi et al. read the refusal direction (at least the last prompt token counts, for templates
    that write nothing after the instruction); the tokens in between are the user's prompt itself.
    """
    text = chat_prompts(tokenizer, [_SENTINEL])[0]
    if _SENTINEL not in text:
        raise CdeltaError("the chat template does not include the user's text verbatim; cannot find where the "
                          "prompt sits in the rendered chat")
    start = text.index(_SENTINEL)

    def count(part: str) -> int:
        return len(tokenizer(part, add_special_tokens=False)["input_ids"]) if part else 0

    return count(text[:start]), max(1, count(text[start + len(_SENTINEL):]))
