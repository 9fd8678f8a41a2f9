"""Gemma2: Llama-style projections, but norms after attention and MLP as well as before."""
from __future__ import annotations

import torch
from torch import nn

from cdelta.errors import CdeltaError
from cdelta.graph.adapters.llama import LlamaAdapter


class Gemma2Adapter(LlamaAdapter):
    """Head outputs are taken after the post-attention norm, with the norm's scale frozen at its run.

    The post-attention RMSNorm is linear in its input once its 1/rms factor is fixed, so each
    head's share of the normed sum is well defined and the shares add up to what the block
    writes into the residual stream.
    """

    family = "Gemma2"
    model_types = ("gemma2",)

    def __init__(self, model: nn.Module):
        super().__init__(model)
        if self.out_proj(0).bias is not None:
            raise CdeltaError("Gemma2 with an out-projection bias (attention_bias=True) is not supported")

    def mlp_norm(self, layer: int) -> nn.Module:
        return self.layers()[layer].pre_feedforward_layernorm

    def mlp_out(self, layer: int) -> nn.Module:
        return self.layers()[layer].post_feedforward_layernorm

    def head_outputs(self, layer: int, z: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        norm = self.layers()[layer].post_attention_layernorm
        scale = torch.rsqrt(out.float().pow(2).mean(-1, keepdim=True) + norm.eps) * (1.0 + norm.weight.float())
        heads = super().head_outputs(layer, z, out)
        return (heads.float() * scale.unsqueeze(0)).to(heads.dtype)
