"""ΔθC, top to bottom: masked contrastive fine-tuning restricted to a circuit's parameter slices.

    θ_pos = θ + masked fine-tune on the slices S with the positive objective
    θ_neg = θ + masked fine-tune on S with the negative objective
    ΔθC   = θ_pos − θ_neg            (the patch; the edited model is θ + k·ΔθC)

The mask is built into the parameterisation rather than applied to gradients: the only trainable
tensors are fp32 copies of the slices' values, written into the frozen base weights on every
forward pass (`torch.func.functional_call`). AdamW, its weight decay and gradient clipping see
nothing else, so nothing outside S can move and ΔθC is exactly zero there. Optimiser state is
the size of the circuit, not of the model. The `dense` and `random` ablations are other slice
sets through this same code (`cdelta.slice_sets`).

An objective fits target examples (NLL of the response tokens of a chat-formatted prompt +
response) and keeps retain examples (KL from the base model's next-token distribution on the
retain responses, weighted by `retain_weight`, with the first response position, where the
model commits to refusing or answering, weighted `decision_weight` times a later one). Both runs
use the same seed and so the same batches: what differs between θ_pos and θ_neg is only the
target responses. With mining (`EditConfig.mine_rounds`, cdelta.mining) the retain set grows by the
non-target prompts that the previous ΔθC moved most, and ΔθC is computed again.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch.func import functional_call
from transformers import PreTrainedTokenizerBase

from cdelta.edit_config import EditConfig
from cdelta.errors import CdeltaError
from cdelta.examples import ExampleSet
from cdelta.fingerprint import fingerprint
from cdelta.mining import decision_shift, hardest
from cdelta.patch import CircuitRef, Patch, PatchMeta
from cdelta.policy import Example, Objective, Policy, contrastive_objectives
from cdelta.slice_sets import dense_slices, random_slices
from cdelta.slices import ParamSlice

OnStep = Callable[[str, int, float], None]
"""Called after every optimiser step with the run's name ("pos"/"neg"), the step (1-based) and the loss."""


# ---- 1. data: chat-formatted prompt + response; the loss reads the response tokens only ----


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # (B, T), right-padded
    attention_mask: torch.Tensor  # (B, T)
    response_mask: torch.Tensor  # (B, T-1): True where position t predicts a response token t+1


def encode(tokenizer: PreTrainedTokenizerBase, example: Example) -> tuple[list[int], int]:
    """Token ids of the chat-formatted prompt + response, and how many of them are the prompt.

    The prompt and the completion are tokenised apart so the boundary cannot merge into one
    token. The completion is what the chat template writes after the generation prompt (the
    response and its end-of-turn marker), or the response plus EOS where the template does not
    render the prompt as a prefix of the conversation.
    """
    user = [{"role": "user", "content": example.prompt}]
    prompt = tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(
        user + [{"role": "assistant", "content": example.response}], tokenize=False
    )
    completion = full[len(prompt):] if full.startswith(prompt) else example.response + (tokenizer.eos_token or "")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if not completion_ids:
        raise CdeltaError(f"response {example.response!r} tokenises to nothing")
    return prompt_ids + completion_ids, len(prompt_ids)


def collate(encoded: Sequence[tuple[list[int], int]], pad_id: int, device: torch.device) -> Batch:
    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(encoded), width), dtype=torch.long)
    response = torch.zeros((len(encoded), width - 1), dtype=torch.bool)
    for row, (ids, n_prompt) in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        response[row, n_prompt - 1 : len(ids) - 1] = True
    return Batch(input_ids.to(device), attention.to(device), response.to(device))


# ---- 2. losses ----


def response_nll(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Mean negative log-likelihood of the response tokens."""
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    token_logp = logp.gather(-1, batch.input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return -token_logp[batch.response_mask].mean()


def retain_kl(logits: torch.Tensor, base_logits: torch.Tensor, batch: Batch,
              decision_weight: float = 1.0) -> torch.Tensor:
    """KL(base ‖ edited) of the next-token distributions at the response positions: a weighted mean in
    which each row's first response position counts `decision_weight` times (EditConfig.decision_weight)."""
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    base_logp = F.log_softmax(base_logits[:, :-1].float(), dim=-1)
    kl = F.kl_div(logp, base_logp, log_target=True, reduction="none").sum(-1)  # (B, T-1)
    weights = batch.response_mask.float()
    first = batch.response_mask.int().argmax(dim=1)  # the position predicting each row's first response token
    weights[torch.arange(len(first)), first] = decision_weight
    return (kl * weights).sum() / weights.sum()


# ---- 3. the model, parameterised by its slices only ----


def slice_values(model: torch.nn.Module, slices: Sequence[ParamSlice]) -> dict[ParamSlice, torch.Tensor]:
    """Trainable fp32 copies of the base values on each slice (fp32 so that small steps register)."""
    params = dict(model.named_parameters())
    return {
        s: params[s.tensor].detach().narrow(s.dim, s.start, s.stop - s.start).float().clone().requires_grad_()
        for s in slices
    }


def with_slices(model: torch.nn.Module, values: dict[ParamSlice, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Base weights with the slice values written in: the `functional_call` override of the touched tensors."""
    params = dict(model.named_parameters())
    by_tensor: dict[str, list[ParamSlice]] = defaultdict(list)
    for s in values:
        by_tensor[s.tensor].append(s)
    overrides = {}
    for name, group in by_tensor.items():
        weight = params[name].detach()
        for s in group:
            rows = torch.arange(s.start, s.stop, device=weight.device)
            weight = weight.index_copy(s.dim, rows, values[s].to(weight.dtype))
        overrides[name] = weight
    return overrides


# ---- 4. one masked fine-tune ----


@contextmanager
def _frozen(model: torch.nn.Module) -> Iterator[None]:
    """The base weights need no gradient: without this, backward would fill a gradient for every parameter."""
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def _schedule(n: int, size: int, steps: int, generator: torch.Generator) -> list[list[int]]:
    """Batches of indices for every step: seeded shuffles of 0..n-1, one after another."""
    order: list[int] = []
    while len(order) < size * steps:
        order += torch.randperm(n, generator=generator).tolist()
    return [order[i * size : (i + 1) * size] for i in range(steps)]


def masked_finetune(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    slices: Sequence[ParamSlice],
    objective: Objective,
    config: EditConfig,
    name: str = "finetune",
    on_step: OnStep | None = None,
) -> dict[ParamSlice, torch.Tensor]:
    """θ restricted to `slices` after `config.steps` AdamW steps on `objective`; the model itself is not changed."""
    if not objective.target:
        raise CdeltaError("the objective has no target examples")
    model.eval()  # no dropout: the edit is a function of the seed alone
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    target = [encode(tokenizer, e) for e in objective.target]
    retain = [encode(tokenizer, e) for e in objective.retain]
    generator = torch.Generator().manual_seed(config.seed)
    target_batches = _schedule(len(target), config.batch_size, config.steps, generator)
    retain_batches = _schedule(len(retain), config.batch_size, config.steps, generator) if retain else None

    values = slice_values(model, slices)
    optimizer = torch.optim.AdamW(values.values(), lr=config.lr, weight_decay=config.weight_decay)
    with _frozen(model):
        for step in range(config.steps):
            weights = with_slices(model, values)
            batch = collate([target[i] for i in target_batches[step]], pad_id, device)
            logits = functional_call(model, weights, args=(), kwargs=_inputs(batch)).logits
            loss = response_nll(logits, batch)
            if retain_batches is not None and config.retain_weight > 0:
                batch = collate([retain[i] for i in retain_batches[step]], pad_id, device)
                with torch.no_grad():
                    base_logits = model(**_inputs(batch)).logits  # the module's own weights are the base
                logits = functional_call(model, weights, args=(), kwargs=_inputs(batch)).logits
                loss = loss + config.retain_weight * retain_kl(logits, base_logits, batch, config.decision_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(values.values()), config.grad_clip)
            optimizer.step()
            if on_step is not None:
                on_step(name, step + 1, loss.item())
    return {s: v.detach() for s, v in values.items()}


def _inputs(batch: Batch) -> dict[str, torch.Tensor]:
    return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}


# ---- 5. ΔθC ----


def delta_theta(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    slices: Sequence[ParamSlice],
    positive: Objective,
    negative: Objective,
    config: EditConfig,
    on_step: OnStep | None = None,
) -> dict[ParamSlice, torch.Tensor]:
    """ΔθC = θ_pos − θ_neg on each slice (fp32, on the CPU); zero elsewhere because nothing else exists.

    Both runs keep the same retain examples: `config.retain_size` of the objectives' retain pool, then
    after each of `config.mine_rounds` the pool's examples the last ΔθC moves most (cdelta.mining)."""
    pool = positive.retain
    retain = _draw(pool, config.retain_size, config.seed)
    for round_ in range(config.mine_rounds + 1):
        if round_:
            base = slice_values(model, slices)
            edited = {s: base[s].detach() + config.mine_k * deltas[s].to(base[s].device) for s in slices}
            shift = decision_shift(model, tokenizer, [e.prompt for e in pool], with_slices(model, edited))
            retain += hardest(pool, shift, config.mine_size)
        theta_pos = masked_finetune(model, tokenizer, slices, replace(positive, retain=retain), config, "pos", on_step)
        theta_neg = masked_finetune(model, tokenizer, slices, replace(negative, retain=retain), config, "neg", on_step)
        deltas = {s: (theta_pos[s] - theta_neg[s]).cpu() for s in slices}
    return deltas


def _draw(pool: tuple[Example, ...], size: int | None, seed: int) -> tuple[Example, ...]:
    """A seeded draw of `size` examples of `pool`, in pool order; all of it when `size` is None or larger."""
    if size is None or size >= len(pool):
        return pool
    chosen = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:size].sort().values
    return tuple(pool[i] for i in chosen.tolist())


# ---- 6. the patch: ΔθC on a slice set, with everything needed to apply it safely later ----


def ablation_slices(circuit: Sequence[ParamSlice], shapes: dict[str, tuple[int, ...]], ablation: str,
                    seed: int) -> list[ParamSlice]:
    """The slices an edit trains: the circuit's, every parameter (`dense`), or a random set of the same size."""
    if ablation == "circuit":
        return list(circuit)
    if ablation == "dense":
        return dense_slices(shapes)
    if ablation == "random":
        return random_slices(circuit, shapes, seed)
    raise CdeltaError(f"unknown ablation {ablation!r}; choose circuit, dense or random")


def edit_patch(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, slices: Sequence[ParamSlice],
               policy: Policy, examples: ExampleSet, config: EditConfig, *, k: float, ablation: str,
               model_name: str, circuit: CircuitRef | None = None, on_step: OnStep | None = None) -> Patch:
    """ΔθC for `policy` on `slices`, as a patch that carries its base's fingerprint and its provenance."""
    positive, negative = contrastive_objectives(policy, examples)
    deltas = delta_theta(model, tokenizer, slices, positive, negative, config, on_step)
    meta = PatchMeta(policy=str(policy), base=fingerprint(model, {s.tensor for s in slices}, model_name), k=k,
                     seed=config.seed, circuit=circuit, ablation=ablation, edit=config.to_dict())
    return Patch(deltas, meta)
