"""Gemma2: Llama-style projections, but norms after attention and MLP as well as before."""
from __future__ import annotations

import torch
from torch import nn

from cdelta.errors import CdeltaError
from cdelta.graph.adapters.llama import LlamaAdapter
from cdelta.graph.adapters.norms import NormVJP, rms_norm_vjp


class Gemma2Adapter(LlamaAdapter):
    """Head (MLP group) outputs are taken after the post-attention (post-MLP) norm, its scale frozen at its run.

    The post-attention RMSNorm is linear in its input once its 1/rms factor is fixed, so each
    head's share of the normed sum is well defined and the shares add up to what the block
    writes into the residual stream.
    """

    family = "Gemma2"
    model_types = ("gemma2",)

    def __init__(self, model: nn.Module, mlp_groups: int = 1):
        super().__init__(model, mlp_groups)
        if self.out_proj(0).bias is not None:
            raise CdeltaError("Gemma2 with an out-projection bias (attention_bias=True) is not supported")

    def mlp_norm(self, layer: int) -> nn.Module:
        return self.layers()[layer].pre_feedforward_layernorm

    def mlp_out(self, layer: int) -> nn.Module:
        return self.layers()[layer].post_feedforward_layernorm

    def norm_vjp(self, norm: nn.Module, residual: torch.Tensor) -> NormVJP:
        return rms_norm_vjp(residual, 1.0 + norm.weight, norm.eps)

    def head_outputs(self, layer: int, z: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return _shares(self.layers()[layer].post_attention_layernorm, out, super().head_outputs(layer, z, out))

    def mlp_group_outputs(self, layer: int, units: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        groups = super().mlp_group_outputs(layer, units, out)
        return _shares(self.layers()[layer].post_feedforward_layernorm, out, groups)


def _shares(norm: nn.Module, out: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
    """Each part's share of norm(sum of parts), with the norm's 1/rms factor of this run; `out` is that sum."""
    scale = torch.rsqrt(out.float().pow(2).mean(-1, keepdim=True) + norm.eps) * (1.0 + norm.weight.float())
    return (parts.float() * scale.unsqueeze(0)).to(parts.dtype)
