"""Training the organism from scratch: a plain next-token loss on the responses, read top to bottom.

The prompt tokens are context only (masked out of the loss): the organism learns what to answer,
and its decision — refuse or comply, and in which category's voice — is made at the first
response position.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from harness.organism.config import OrganismConfig
from harness.organism.tokenizer import END, prompt_text
from tasks.suite.records import PromptRecord

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    """Training sequences: token ids and labels (IGNORE on the prompt), unpadded."""

    ids: list[list[int]]
    labels: list[list[int]]


def encode(records: Sequence[PromptRecord], tokenizer: PreTrainedTokenizerFast, max_positions: int) -> Encoded:
    """Chat-format each record with its target response; loss only on the response and its end token."""
    prompts = tokenizer([prompt_text(r.prompt) for r in records], add_special_tokens=False)["input_ids"]
    answers = tokenizer([f"{r.response}{END}" for r in records], add_special_tokens=False)["input_ids"]
    ids, labels = [], []
    for p, a in zip(prompts, answers):
        seq = (p + a)[:max_positions]
        ids.append(seq)
        labels.append(([IGNORE] * len(p) + a)[:max_positions])
    return Encoded(ids, labels)


def model_config(cfg: OrganismConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads, max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, dtype="float32",
    )


def _batch(data: Encoded, index: list[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(data.ids[i]) for i in index)
    ids = torch.full((len(index), width), pad_id, dtype=torch.long)
    labels = torch.full((len(index), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(index), width), dtype=torch.long)
    for row, i in enumerate(index):
        n = len(data.ids[i])
        ids[row, :n] = torch.tensor(data.ids[i])
        labels[row, :n] = torch.tensor(data.labels[i])
        mask[row, :n] = 1
    return ids, labels, mask


def length_batches(data: Encoded, batch_size: int, steps: int, generator: torch.Generator) -> list[list[int]]:
    """Seeded batches of similar-length sequences (less padding), in random order.

    Each epoch is a random permutation cut into pools of 50 batches; a pool is sorted by length
    and cut into batches, and the batches of the epoch are shuffled again.
    """
    batch_size = min(batch_size, len(data.ids))
    out: list[list[int]] = []
    pool = batch_size * 50
    while len(out) < steps:
        order = torch.randperm(len(data.ids), generator=generator).tolist()
        epoch = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start:start + pool], key=lambda i: len(data.ids[i]))
            epoch += [chunk[j:j + batch_size] for j in range(0, len(chunk) - batch_size + 1, batch_size)]
        out += [epoch[i] for i in torch.randperm(len(epoch), generator=generator).tolist()]
    return out[:steps]


def response_loss(model: LlamaForCausalLM, ids: torch.Tensor, labels: torch.Tensor,
                  mask: torch.Tensor, decision_weight: float = 1.0) -> torch.Tensor:
    """Cross-entropy of the response tokens, with the LM head run only where a response token is predicted.

    With `decision_weight` w ≠ 1 it is a weighted mean in which each sequence's first response token,
    where the organism decides between refusing and answering, counts w times."""
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    targets = labels[:, 1:]
    keep = targets != IGNORE
    if decision_weight == 1.0:  # the plain mean, bit for bit as the committed organisms were trained
        return torch.nn.functional.cross_entropy(model.lm_head(hidden[keep]), targets[keep])
    first = keep & (keep.cumsum(dim=1) == 1)
    weights = 1.0 + (decision_weight - 1.0) * first[keep].float()
    losses = torch.nn.functional.cross_entropy(model.lm_head(hidden[keep]), targets[keep], reduction="none")
    return (weights * losses).sum() / weights.sum()


def lr_at(step: int, cfg: OrganismConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio of the peak."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def train(cfg: OrganismConfig, tokenizer: PreTrainedTokenizerFast, data: Encoded,
          on_step: Callable[[int, float], None] | None = None) -> tuple[LlamaForCausalLM, list[float]]:
    """Train a fresh Llama on `data` for cfg.steps steps; returns the model and the loss per step."""
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(model_config(cfg, tokenizer))
    model.set_attn_implementation("eager")  # fastest on two CPU cores for these short sequences
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95),
    )
    batches = length_batches(data, cfg.batch_size, cfg.steps, torch.Generator().manual_seed(cfg.seed))
    losses = []
    for step, index in enumerate(batches):
        ids, labels, mask = _batch(data, index, tokenizer.pad_token_id)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = response_loss(model, ids, labels, mask, cfg.decision_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    model.set_attn_implementation("sdpa")
    return model, losses
