"""transformers engine: batched generation with left padding, greedy by default."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from backends.generation import Generation, GenerationParams


def load_model(path: str | Path, dtype: torch.dtype = torch.float32,
               device: str = "cpu") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a plain Hugging Face checkpoint folder (no remote code) for inference."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    return model, tokenizer


def chat_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str]) -> list[str]:
    """Each user prompt rendered by the model's own chat template, ready for the first response token."""
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                          tokenize=False) for p in prompts]


class HFEngine:
    """Generates with a transformers model in the calling process."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model, self.tokenizer = model, tokenizer

    @classmethod
    def from_path(cls, path: str | Path, dtype: torch.dtype = torch.float32, device: str = "cpu") -> "HFEngine":
        return cls(*load_model(path, dtype, device))

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], params: GenerationParams,
                 on_batch: Callable[[int], None] | None = None) -> list[Generation]:
        out: list[Generation] = []
        texts = chat_prompts(self.tokenizer, prompts)
        eos = self.tokenizer.eos_token_id
        for start in range(0, len(texts), params.batch_size):
            chunk = texts[start:start + params.batch_size]
            enc = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = enc.to(self.model.device)
            began = time.perf_counter()
            sampling = {"do_sample": True, "temperature": params.temperature} if params.temperature > 0 else {
                "do_sample": False}
            ids = self.model.generate(**enc, max_new_tokens=params.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                                      eos_token_id=eos, **sampling)
            seconds = time.perf_counter() - began
            new = ids[:, enc["input_ids"].shape[1]:]
            for row, prompt_mask in zip(new, enc["attention_mask"]):
                tokens = row.tolist()
                n = tokens.index(eos) + 1 if eos in tokens else len(tokens)
                out.append(Generation(self.tokenizer.decode(tokens[:n], skip_special_tokens=True).strip(),
                                      int(prompt_mask.sum()), n, seconds))
            if on_batch is not None:
                on_batch(len(chunk))
        return out
