"""transformers engine: batched generation with left padding, greedy by default.

An optional intervention (activation steering) is entered around each batch's generation: it sees
the batch, so a conditional one can decide per sequence, and it removes its hooks when the batch is done.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Protocol

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BatchEncoding, PreTrainedModel, PreTrainedTokenizerBase

from backends.generation import Generation, GenerationParams, generate_in_batches
from cdelta.chat import chat_prompts, encode_chat, position_ids

__all__ = ["HFEngine", "Intervention", "chat_prompts", "load_model"]


def load_model(path: str | Path, dtype: torch.dtype = torch.float32,
               device: str = "cpu") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a plain Hugging Face checkpoint folder (no remote code) for inference."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    return model, tokenizer


class Intervention(Protocol):
    def during(self, model: PreTrainedModel, batch: BatchEncoding) -> AbstractContextManager[object]:
        """Hooks that act on this batch while it is generated, removed on exit."""
        ...


class HFEngine:
    """Generates with a transformers model in the calling process, optionally under an intervention."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 intervention: Intervention | None = None) -> None:
        self.model, self.tokenizer, self.intervention = model, tokenizer, intervention

    @classmethod
    def from_path(cls, path: str | Path, dtype: torch.dtype = torch.float32, device: str = "cpu") -> "HFEngine":
        return cls(*load_model(path, dtype, device))

    def with_intervention(self, intervention: Intervention | None) -> "HFEngine":
        """Another engine on the same model and tokenizer (no reload), e.g. for a coefficient sweep."""
        return HFEngine(self.model, self.tokenizer, intervention)

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], params: GenerationParams,
                 on_batch: Callable[[int], None] | None = None) -> list[Generation]:
        return generate_in_batches(prompts, params.batch_size, lambda chunk: self._run_batch(chunk, params), on_batch)

    def _run_batch(self, chunk: Sequence[str], params: GenerationParams) -> list[tuple[str, int, int]]:
        eos = self.tokenizer.eos_token_id
        enc = encode_chat(self.tokenizer, chunk, self.model.device)
        sampling = {"do_sample": True, "temperature": params.temperature} if params.temperature > 0 else {
            "do_sample": False}
        acting = self.intervention.during(self.model, enc) if self.intervention is not None else nullcontext()
        with acting:
            ids = self.model.generate(**enc, max_new_tokens=params.max_new_tokens,
                                      min_new_tokens=params.min_new_tokens or None,
                                      pad_token_id=self.tokenizer.pad_token_id, eos_token_id=eos, **sampling)
        rows = []
        for row, prompt_mask in zip(ids[:, enc["input_ids"].shape[1]:], enc["attention_mask"]):
            tokens = row.tolist()
            n = tokens.index(eos) + 1 if eos in tokens else len(tokens)
            rows.append((self.tokenizer.decode(tokens[:n], skip_special_tokens=True).strip(), int(prompt_mask.sum()), n))
        return rows

    @torch.no_grad()
    def next_token_logprobs(self, prompts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
        """Log-probabilities of the first response token [n, vocab] under the intervention, as greedy
        generation would see them: what a distribution-level comparison of backends (benign KL) reads."""
        out = []
        for start in range(0, len(prompts), batch_size):
            enc = encode_chat(self.tokenizer, prompts[start:start + batch_size], self.model.device)
            acting = self.intervention.during(self.model, enc) if self.intervention is not None else nullcontext()
            with acting:
                logits = self.model(**enc, position_ids=position_ids(enc["attention_mask"])).logits[:, -1]
            out.append(torch.log_softmax(logits.float(), dim=-1).cpu())
        return torch.cat(out)
