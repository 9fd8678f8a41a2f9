"""What attribution needs from a model family, and the computations shared by all families.

An adapter names the modules whose inputs and outputs are the graph's tapped points and reads
each head's weights, so that attribution, editing and steering never branch on model names.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import ClassVar

import torch
from torch import nn

from cdelta.errors import CdeltaError
from cdelta.graph.adapters.norms import NormVJP
from cdelta.graph.structure import Graph
from cdelta.slices import ParamSlice


class Adapter(ABC):
    """Access to one loaded Hugging Face causal LM of a supported family."""

    family: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]

    splits_mlp: ClassVar[bool] = False
    """Whether the family can split its MLPs into unit groups (`mlp_groups` > 1)."""

    def __init__(
        self,
        model: nn.Module,
        n_layers: int,
        n_heads: int,
        n_kv_heads: int,
        head_dim: int,
        d_model: int,
        intermediate: int,
        mlp_groups: int = 1,
    ):
        if n_heads % n_kv_heads:
            raise CdeltaError(f"{self.family}: {n_heads} query heads do not split into {n_kv_heads} key/value heads")
        if mlp_groups < 1:
            raise CdeltaError(f"mlp_groups must be a positive number of groups per MLP, got {mlp_groups}")
        if mlp_groups > 1 and not self.splits_mlp:
            raise CdeltaError(f"{self.family}: MLP unit groups are not supported for this family; use mlp_groups=1")
        if intermediate % mlp_groups:
            divisors = [g for g in range(1, intermediate + 1) if intermediate % g == 0]
            raise CdeltaError(
                f"mlp_groups={mlp_groups} does not split the MLP's {intermediate} units into equal groups; "
                f"choose one of {divisors}"
            )
        self.model = model
        self.n_layers, self.n_heads, self.n_kv_heads = n_layers, n_heads, n_kv_heads
        self.head_dim, self.d_model = head_dim, d_model
        self.intermediate, self.mlp_groups = intermediate, mlp_groups
        self._names = {id(p): name for name, p in model.named_parameters()}

    @property
    def graph(self) -> Graph:
        return Graph(self.n_layers, self.n_heads, self.mlp_groups)

    @property
    def group_size(self) -> int:
        """Intermediate units per MLP group."""
        return self.intermediate // self.mlp_groups

    # -- tapped points: modules whose inputs or outputs are graph nodes ----------------------
    @abstractmethod
    def layers(self) -> Sequence[nn.Module]:
        """Decoder layers in order; the input of the first is the `input` node's output."""

    @abstractmethod
    def attention(self, layer: int) -> nn.Module: ...

    @abstractmethod
    def attn_norm(self, layer: int) -> nn.Module:
        """The norm whose input is the residual stream that the layer's heads read."""

    @abstractmethod
    def qkv_modules(self, layer: int) -> list[tuple[nn.Module, str]]:
        """Modules producing q, k, v from the normed residual, with the kinds each produces ("q" or "qkv")."""

    @abstractmethod
    def out_proj(self, layer: int) -> nn.Module:
        """The projection whose input is the concatenated head results."""

    @abstractmethod
    def mlp_norm(self, layer: int) -> nn.Module:
        """The norm whose input is the residual stream that the MLP reads."""

    @abstractmethod
    def mlp_out(self, layer: int) -> nn.Module:
        """The module whose output is what the MLP adds to the residual stream."""

    @abstractmethod
    def final_norm(self) -> nn.Module:
        """The norm whose input is the residual stream that the unembedding reads (the `logits` node)."""

    # -- weights -----------------------------------------------------------------------------
    @abstractmethod
    def head_in_weights(self, layer: int, kind: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """q, k or v weights as [heads, head_dim, d_model] and bias [heads, head_dim]; k/v per KV head."""

    @abstractmethod
    def head_out_weights(self, layer: int) -> torch.Tensor:
        """The out projection split per head: [heads, d_model, head_dim]."""

    @abstractmethod
    def head_slices(self, layer: int, head: int) -> list[ParamSlice]:
        """The parameters one query head owns or shares: q/k/v rows (with biases), out-projection columns."""

    def mlp_slices(self, layer: int) -> list[ParamSlice]:
        """An MLP node owns every parameter of its MLP."""
        return [
            ParamSlice(self.name_of(p), 0, 0, p.shape[0])
            for p in self.mlp_module(layer).parameters()
        ]

    @abstractmethod
    def mlp_module(self, layer: int) -> nn.Module: ...

    @abstractmethod
    def norm_vjp(self, norm: nn.Module, residual: torch.Tensor) -> NormVJP:
        """The transposed Jacobian of the input norm `norm` (attention or MLP) at `residual`, for many cotangents."""

    # -- MLP unit groups (families with `splits_mlp`) -----------------------------------------
    def mlp_in_projections(self, layer: int) -> list[nn.Linear]:
        """The MLP's projections that read its normed input, one row per intermediate unit."""
        raise NotImplementedError(self.family)

    def mlp_down(self, layer: int) -> nn.Linear:
        """The MLP's projection from its intermediate units to the residual stream, one column per unit."""
        raise NotImplementedError(self.family)

    def mlp_group_slices(self, layer: int, group: int) -> list[ParamSlice]:
        """A group's parameters: its units' rows of every input projection and columns of the down projection."""
        start, stop = group * self.group_size, (group + 1) * self.group_size
        slices = []
        for proj in self.mlp_in_projections(layer):
            slices += [ParamSlice(self.name_of(t), 0, start, stop) for t in (proj.weight, proj.bias) if t is not None]
        slices.append(ParamSlice(self.name_of(self.mlp_down(layer).weight), 1, start, stop))
        return slices

    def project_mlp(self, proj: nn.Linear, normed: torch.Tensor) -> torch.Tensor:
        """Each group's units of `proj` from the group's own normed input [groups, b, p, d] -> [b, p, intermediate]."""
        groups, b, p, d = normed.shape
        out = torch.bmm(normed.reshape(groups, -1, d), proj.weight.view(groups, -1, d).transpose(1, 2))
        out = out.view(groups, b, p, -1)
        if proj.bias is not None:
            out = out + proj.bias.view(groups, 1, 1, -1)
        return out.permute(1, 2, 0, 3).reshape(b, p, -1)

    def mlp_group_outputs(self, layer: int, units: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """What each group adds to the residual stream, [groups, b, p, d], from the down projection's input."""
        del out  # families with a norm after the MLP need it
        weight = self.mlp_down(layer).weight.view(self.d_model, self.mlp_groups, self.group_size)
        return torch.einsum("bpgu,dgu->gbpd", units.unflatten(-1, (self.mlp_groups, self.group_size)), weight)

    def attention_bias(self, layer: int) -> torch.Tensor | None:
        """A constant the attention block adds to the residual stream outside any head (out-projection bias)."""
        return getattr(self.out_proj(layer), "bias", None)

    def name_of(self, tensor: torch.Tensor) -> str:
        return self._names[id(tensor)]

    # -- computations shared by all families -------------------------------------------------
    def project(self, layer: int, kind: str, normed: torch.Tensor) -> torch.Tensor:
        """Each query head's q (k, v) from its own normed input [heads, b, p, d] -> [b, p, heads * head_dim].

        k and v come out per query head (ungrouped); the attention must then skip its KV repeat,
        which `ungrouped` arranges.
        """
        weight, bias = self.head_in_weights(layer, kind)
        groups = weight.shape[0]
        _, b, p, d = normed.shape
        out = torch.bmm(normed.reshape(groups, -1, d), weight.transpose(1, 2))  # [groups, heads/groups * b * p, e]
        out = out.view(groups, self.n_heads // groups, b, p, self.head_dim)
        if bias is not None:
            out = out + bias[:, None, None, None, :]
        return out.permute(2, 3, 0, 1, 4).reshape(b, p, self.n_heads * self.head_dim)

    def per_query_head(self, projected: torch.Tensor) -> torch.Tensor:
        """q, k or v of [b, p, its heads * head_dim] with one head per query head, the layout `project` gives."""
        b, p, width = projected.shape
        repeat = self.n_heads // (width // self.head_dim)
        if repeat == 1:
            return projected
        return projected.view(b, p, -1, self.head_dim).repeat_interleave(repeat, dim=2).reshape(b, p, -1)

    def head_read_grads(self, layer: int, kind: str, grad: torch.Tensor) -> torch.Tensor:
        """The transpose of `project`: d metric / d (each query head's q, k or v) [b, p, heads * head_dim] to
        d metric / d (each head's own normed input), [heads, b, p, d]."""
        weight, _ = self.head_in_weights(layer, kind)
        groups = weight.shape[0]
        b, p, _ = grad.shape
        per_group = grad.reshape(b, p, groups, self.n_heads // groups, self.head_dim).permute(2, 3, 0, 1, 4)
        out = torch.bmm(per_group.reshape(groups, -1, self.head_dim), weight)  # [groups, heads/groups * b * p, d]
        return out.view(self.n_heads, b, p, self.d_model)

    def mlp_group_read_grad(self, proj: nn.Linear, grad: torch.Tensor) -> torch.Tensor:
        """The transpose of `project_mlp` for one input projection: from d metric / d (its output) [b, p,
        intermediate] to its share of d metric / d (each group's own normed input), [groups, b, p, d]."""
        b, p, _ = grad.shape
        per_group = grad.reshape(b * p, self.mlp_groups, self.group_size).transpose(0, 1)
        out = torch.bmm(per_group, proj.weight.view(self.mlp_groups, self.group_size, self.d_model))
        return out.view(self.mlp_groups, b, p, self.d_model)

    def head_outputs(self, layer: int, z: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """What each head adds to the residual stream, [heads, b, p, d], from the out projection's input z."""
        del out  # families with a norm after attention need it
        return torch.einsum("bphe,hde->hbpd", z.unflatten(-1, (self.n_heads, self.head_dim)), self.head_out_weights(layer))

    @contextmanager
    def ungrouped(self) -> Iterator[None]:
        """Let attention take one k/v per query head, as `project` produces them."""
        saved = []
        for layer in range(self.n_layers):
            attention = self.attention(layer)
            if hasattr(attention, "num_key_value_groups"):
                saved.append((attention, attention.num_key_value_groups))
                attention.num_key_value_groups = 1
        try:
            yield
        finally:
            for attention, groups in saved:
                attention.num_key_value_groups = groups

    def total_params(self) -> int:
        """All parameters of the model, tied tensors counted once."""
        return sum(p.numel() for p in self.model.parameters())

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(p.shape) for name, p in self.model.named_parameters()}
