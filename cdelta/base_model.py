"""Loading the base model and its tokenizer, with an error that says what is missing rather than a traceback."""
from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from cdelta.errors import CdeltaError


def load_base(path: str, dtype: torch.dtype | str = "auto") -> tuple[PreTrainedModel, object]:
    """A Hugging Face causal LM (folder or locally cached id) and its tokenizer; nothing is downloaded."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CdeltaError(f"cannot load model {path!r} (a Hugging Face folder with weights and tokenizer): {exc}") from exc
    return model, tokenizer


def resolve_device(device: str) -> str:
    """`auto` is cuda where torch sees a GPU, else cpu; any other name is torch's (cpu, cuda, cuda:N)."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError:
        raise CdeltaError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    return device
