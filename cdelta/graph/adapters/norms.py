"""Vector-Jacobian products of the families' input norms at one residual stream, for many cotangents at once.

A gradient run without a patch reads the residual stream once per layer; the gradient at each
head's (MLP group's) own copy of it is the norm's Jacobian, transposed, applied to that head's
gradient at the normed input. The norm's statistics are shared by all heads, so they are taken
once and each head costs a few elementwise passes, in float32 as the families' norms compute.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

NormVJP = Callable[[torch.Tensor], torch.Tensor]
"""[n, b, p, d] gradients at the normed input -> [n, b, p, d] gradients at the residual stream."""


def rms_norm_vjp(residual: torch.Tensor, scale: torch.Tensor, eps: float) -> NormVJP:
    """y = scale * x / rms(x):  dx = c * scale / rms - x / (d rms^3) * <c * scale, x>."""
    x = residual.detach().float()
    inv_rms = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    scale = scale.detach().float()
    scaled_inv, scaled_x = scale * inv_rms, scale * x
    x_term = x * inv_rms.pow(3) / x.shape[-1]

    def vjp(cotangent: torch.Tensor) -> torch.Tensor:
        c = cotangent.float()
        grad = c * scaled_inv
        grad.addcmul_((c * scaled_x).sum(-1, keepdim=True), x_term, value=-1)
        return grad.to(cotangent.dtype)

    return vjp


def layer_norm_vjp(residual: torch.Tensor, weight: torch.Tensor, eps: float) -> NormVJP:
    """y = weight * (x - mean) / std + bias:  dx = (g - mean(g) - x_hat * mean(g * x_hat)) / std, g = c * weight."""
    x = residual.detach().float()
    centred = x - x.mean(-1, keepdim=True)
    inv_std = torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + eps)
    x_hat, weight = centred * inv_std, weight.detach().float()
    d = x.shape[-1]
    # Shared by every cotangent, so taken once here, as in rms_norm_vjp.
    weighted_inv, weighted_x_hat, x_hat_inv = weight * inv_std, weight * x_hat, x_hat * inv_std

    def vjp(cotangent: torch.Tensor) -> torch.Tensor:
        c = cotangent.float()
        g_mean = (c @ weight).unsqueeze(-1) / d
        gx_mean = (c * weighted_x_hat).sum(-1, keepdim=True) / d
        grad = c * weighted_inv
        grad.sub_(g_mean * inv_std).sub_(gx_mean * x_hat_inv)
        return grad.to(cotangent.dtype)

    return vjp
