"""One adapter per supported architecture family, chosen from the model's config."""
from __future__ import annotations

from torch import nn

from cdelta.errors import CdeltaError
from cdelta.graph.adapters.base import Adapter
from cdelta.graph.adapters.gemma2 import Gemma2Adapter
from cdelta.graph.adapters.gpt2 import GPT2Adapter
from cdelta.graph.adapters.llama import LlamaAdapter, MistralAdapter, Qwen2Adapter

FAMILIES: tuple[type[Adapter], ...] = (LlamaAdapter, Qwen2Adapter, MistralAdapter, Gemma2Adapter, GPT2Adapter)


def supported_families() -> str:
    return ", ".join(f"{cls.family} ({'/'.join(cls.model_types)})" for cls in FAMILIES)


def adapter_for(model: nn.Module, mlp_groups: int = 1) -> Adapter:
    """The adapter of the model's family, MLPs split into `mlp_groups` unit groups; anything else is a clear error."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    for cls in FAMILIES:
        if model_type in cls.model_types:
            return cls(model, mlp_groups)
    raise CdeltaError(
        f"unsupported architecture: {type(model).__name__} (model_type={model_type!r}); "
        f"supported families are {supported_families()}"
    )


__all__ = ["Adapter", "FAMILIES", "adapter_for", "supported_families"]
