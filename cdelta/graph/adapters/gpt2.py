"""GPT-2: one fused Conv1D for q/k/v, Conv1D weights stored [in, out], learned positions in `input`."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cdelta.errors import CdeltaError
from cdelta.graph.adapters.base import Adapter
from cdelta.graph.adapters.norms import NormVJP, layer_norm_vjp
from cdelta.slices import ParamSlice

_OFFSET = {"q": 0, "k": 1, "v": 2}


class GPT2Adapter(Adapter):
    family = "GPT-2"
    model_types = ("gpt2",)

    def __init__(self, model: nn.Module, mlp_groups: int = 1):
        base = getattr(model, "transformer", None)
        if base is None or not hasattr(base, "h") or model.get_output_embeddings() is None:
            raise CdeltaError(f"{type(model).__name__} is not a GPT-2 causal LM with a language-model head")
        config = model.config
        if getattr(config, "add_cross_attention", False):
            raise CdeltaError("GPT-2 with cross-attention is not a decoder-only model; not supported")
        super().__init__(
            model,
            n_layers=len(base.h),
            n_heads=config.n_head,
            n_kv_heads=config.n_head,
            head_dim=config.n_embd // config.n_head,
            d_model=config.n_embd,
            intermediate=base.h[0].mlp.c_fc.nf,
            mlp_groups=mlp_groups,
        )
        self._base = base

    def layers(self) -> Sequence[nn.Module]:
        return self._base.h

    def attention(self, layer: int) -> nn.Module:
        return self._base.h[layer].attn

    def attn_norm(self, layer: int) -> nn.Module:
        return self._base.h[layer].ln_1

    def qkv_modules(self, layer: int) -> list[tuple[nn.Module, str]]:
        return [(self.attention(layer).c_attn, "qkv")]

    def out_proj(self, layer: int) -> nn.Module:
        return self.attention(layer).c_proj

    def mlp_norm(self, layer: int) -> nn.Module:
        return self._base.h[layer].ln_2

    def norm_vjp(self, norm: nn.Module, residual: torch.Tensor) -> NormVJP:
        return layer_norm_vjp(residual, norm.weight, norm.eps)

    def mlp_module(self, layer: int) -> nn.Module:
        return self._base.h[layer].mlp

    def mlp_out(self, layer: int) -> nn.Module:
        return self.mlp_module(layer)

    def final_norm(self) -> nn.Module:
        return self._base.ln_f

    def head_in_weights(self, layer: int, kind: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        c_attn = self.attention(layer).c_attn
        cols = slice(_OFFSET[kind] * self.d_model, (_OFFSET[kind] + 1) * self.d_model)
        weight = c_attn.weight[:, cols].T.reshape(self.n_heads, self.head_dim, self.d_model)
        return weight, c_attn.bias[cols].view(self.n_heads, self.head_dim)

    def head_out_weights(self, layer: int) -> torch.Tensor:
        weight = self.out_proj(layer).weight
        return weight.view(self.n_heads, self.head_dim, self.d_model).transpose(1, 2)

    def head_slices(self, layer: int, head: int) -> list[ParamSlice]:
        c_attn = self.attention(layer).c_attn
        slices = []
        for kind in "qkv":
            start = _OFFSET[kind] * self.d_model + head * self.head_dim
            slices += [
                ParamSlice(self.name_of(c_attn.weight), 1, start, start + self.head_dim),
                ParamSlice(self.name_of(c_attn.bias), 0, start, start + self.head_dim),
            ]
        rows = (head * self.head_dim, (head + 1) * self.head_dim)
        slices.append(ParamSlice(self.name_of(self.out_proj(layer).weight), 0, *rows))
        return slices
