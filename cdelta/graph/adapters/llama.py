"""Llama-style decoders (Llama, Qwen2, Mistral): pre-norm blocks with separate q/k/v/o projections."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cdelta.errors import CdeltaError
from cdelta.graph.adapters.base import Adapter
from cdelta.graph.adapters.norms import NormVJP, rms_norm_vjp
from cdelta.slices import ParamSlice


class LlamaAdapter(Adapter):
    family = "Llama"
    model_types = ("llama",)

    splits_mlp = True

    def __init__(self, model: nn.Module, mlp_groups: int = 1):
        base = getattr(model, "model", None)
        if base is None or not hasattr(base, "layers") or model.get_output_embeddings() is None:
            raise CdeltaError(f"{type(model).__name__} is not a {self.family} causal LM with a language-model head")
        config = model.config
        attention = base.layers[0].self_attn
        down = base.layers[0].mlp.down_proj
        if mlp_groups > 1 and down.bias is not None:
            raise CdeltaError(f"{self.family}: MLP unit groups need an MLP without an output bias (mlp_bias=False)")
        super().__init__(
            model,
            n_layers=len(base.layers),
            n_heads=config.num_attention_heads,
            n_kv_heads=config.num_key_value_heads,
            head_dim=attention.head_dim,
            d_model=config.hidden_size,
            intermediate=down.in_features,
            mlp_groups=mlp_groups,
        )
        self._base = base

    def layers(self) -> Sequence[nn.Module]:
        return self._base.layers

    def attention(self, layer: int) -> nn.Module:
        return self._base.layers[layer].self_attn

    def attn_norm(self, layer: int) -> nn.Module:
        return self._base.layers[layer].input_layernorm

    def qkv_modules(self, layer: int) -> list[tuple[nn.Module, str]]:
        attention = self.attention(layer)
        return [(attention.q_proj, "q"), (attention.k_proj, "k"), (attention.v_proj, "v")]

    def out_proj(self, layer: int) -> nn.Module:
        return self.attention(layer).o_proj

    def mlp_norm(self, layer: int) -> nn.Module:
        return self._base.layers[layer].post_attention_layernorm

    def mlp_module(self, layer: int) -> nn.Module:
        return self._base.layers[layer].mlp

    def mlp_out(self, layer: int) -> nn.Module:
        return self.mlp_module(layer)

    def norm_vjp(self, norm: nn.Module, residual: torch.Tensor) -> NormVJP:
        return rms_norm_vjp(residual, norm.weight, norm.variance_epsilon)

    def mlp_in_projections(self, layer: int) -> list[nn.Linear]:
        mlp = self.mlp_module(layer)
        return [mlp.gate_proj, mlp.up_proj]

    def mlp_down(self, layer: int) -> nn.Linear:
        return self.mlp_module(layer).down_proj

    def final_norm(self) -> nn.Module:
        return self._base.norm

    def _proj(self, layer: int, kind: str) -> nn.Linear:
        return getattr(self.attention(layer), f"{kind}_proj")

    def head_in_weights(self, layer: int, kind: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        proj = self._proj(layer, kind)
        heads = self.n_heads if kind == "q" else self.n_kv_heads
        bias = None if proj.bias is None else proj.bias.view(heads, self.head_dim)
        return proj.weight.view(heads, self.head_dim, self.d_model), bias

    def head_out_weights(self, layer: int) -> torch.Tensor:
        weight = self.out_proj(layer).weight
        return weight.view(self.d_model, self.n_heads, self.head_dim).permute(1, 0, 2)

    def head_slices(self, layer: int, head: int) -> list[ParamSlice]:
        kv_head = head // (self.n_heads // self.n_kv_heads)
        slices = []
        for kind, index in (("q", head), ("k", kv_head), ("v", kv_head)):
            proj = self._proj(layer, kind)
            rows = (index * self.head_dim, (index + 1) * self.head_dim)
            slices += [ParamSlice(self.name_of(t), 0, *rows) for t in (proj.weight, proj.bias) if t is not None]
        out = self.out_proj(layer).weight
        slices.append(ParamSlice(self.name_of(out), 1, head * self.head_dim, (head + 1) * self.head_dim))
        return slices


class Qwen2Adapter(LlamaAdapter):
    family = "Qwen2"
    model_types = ("qwen2",)


class MistralAdapter(LlamaAdapter):
    family = "Mistral"
    model_types = ("mistral",)
