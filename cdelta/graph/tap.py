"""One forward pass through a Hugging Face model with every graph node tapped.

Sources (`input`, each head, each MLP) are read where they enter the residual stream;
destinations (each head's q/k/v input, each MLP input, the logits) are the residual stream
as that destination reads it. A run can keep the sources' live outputs, feed chosen edges a
target activation instead (`Patch`), and hand the gradient at every destination to a callback.
Each head reads its own copy of the residual stream, so its q, k and v inputs (and their
gradients) are separate, as in the EAP-IG reference; with grouped-query attention every
query head gets its own k and v input. Likewise each MLP unit group (when the graph splits
MLPs) reads its own copy, from which only its own units are computed.

The copies are needed only where destinations read different things, that is under a patch.
A gradient run without one (EAP, and EAP-IG-inputs, whose patch of the input alone is a
different input) runs the model as it is and splits the gradient afterwards: d metric / d q of
one head, taken back through that head's weights and the norm's Jacobian at the shared
residual, is the gradient at that head's own copy, at a fraction of the copies' cost.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from cdelta.graph.adapters import Adapter
from cdelta.graph.adapters.norms import NormVJP
from cdelta.graph.structure import DestinationGroup

GradHook = Callable[[DestinationGroup, torch.Tensor], None]
"""Called in the backward pass with a destination group and d metric / d input, [n_cols, b, p, d]."""


@dataclass(frozen=True)
class Patch:
    """Feed destinations the `target` activation of sources `rows` instead of their live one.

    `mask[i, c]` weighs how much of (target - live) of source `rows.start + i` destination `c`
    receives: 1 patches the edge, 0 leaves it clean.
    """

    rows: slice
    mask: torch.Tensor  # [n_rows, n_destinations]
    target: torch.Tensor  # [n_rows, b or 1, p or 1, d]


class Tap:
    """Hooks for one run; `values` holds the live outputs of sources `keep` afterwards, [n_keep, b, p, d].

    Node-major layouts ([node, b, p, d]) let every score and correction be one matrix product
    over a contiguous [node, b * p * d] view.
    """

    def __init__(
        self,
        adapter: Adapter,
        *,
        keep: slice | None = None,
        patch: Patch | None = None,
        on_grad: GradHook | None = None,
    ):
        self.adapter, self.graph = adapter, adapter.graph
        self._input_target: torch.Tensor | None = None
        if patch is not None and _input_only(patch):
            self._input_target, patch = patch.target[0], None
        if patch is not None:
            keep = patch.rows if keep is None else slice(min(keep.start, patch.rows.start), max(keep.stop, patch.rows.stop))
        self.keep, self.patch, self.on_grad = keep, patch, on_grad
        self.values: torch.Tensor | None = None
        self._groups = {(g.layer, g.kind): g for g in self.graph.destination_groups()}
        self._residual: torch.Tensor | None = None
        self._mlp_normed: torch.Tensor | None = None
        self._differences: torch.Tensor | None = None
        self._differences_done = 0
        self._norm_vjps: dict[tuple[int, str], NormVJP] = {}

    # -- the run -----------------------------------------------------------------------------
    def run(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits at the last position, [b, vocab]."""
        # The norms' products stay until the backward pass, which comes after the run.
        self.values, self._norm_vjps, handles = None, {}, self._install()
        try:
            with self.adapter.ungrouped() if self._separate_heads or self._split_grads else nullcontext():
                logits = self.adapter.model(input_ids=input_ids, use_cache=False, logits_to_keep=1).logits
        finally:
            for handle in handles:
                handle.remove()
            self._residual = self._mlp_normed = self._differences = None
            self._differences_done = 0
        return logits[:, -1]

    @property
    def _separate_heads(self) -> bool:
        return self.patch is not None

    @property
    def _split_grads(self) -> bool:
        return self.patch is None and self.on_grad is not None

    def _install(self) -> list[RemovableHandle]:
        a, handles = self.adapter, []
        handles.append(a.layers()[0].register_forward_pre_hook(self._at_input, with_kwargs=True))
        for layer in range(a.n_layers):
            if self._separate_heads:
                handles.append(a.attn_norm(layer).register_forward_pre_hook(self._at_attn_norm))
                for module, kinds in a.qkv_modules(layer):
                    handles.append(module.register_forward_hook(self._qkv_hook(layer, kinds)))
            elif self._split_grads:
                handles.append(a.attn_norm(layer).register_forward_pre_hook(self._norm_vjp_hook(layer, "attn")))
                for module, kinds in a.qkv_modules(layer):
                    handles.append(module.register_forward_hook(self._qkv_split_hook(layer, kinds)))
            handles.append(a.out_proj(layer).register_forward_hook(self._heads_hook(layer)))
            if self.graph.mlp_groups == 1:
                handles.append(a.mlp_norm(layer).register_forward_pre_hook(self._read_hook(self._groups[layer, "mlp"])))
                handles.append(a.mlp_out(layer).register_forward_hook(self._mlp_hook(layer)))
                continue
            if self._separate_heads:
                handles.append(a.mlp_norm(layer).register_forward_pre_hook(self._mlp_groups_read_hook(layer)))
                for proj in a.mlp_in_projections(layer):
                    handles.append(proj.register_forward_hook(self._mlp_in_hook))
            elif self._split_grads:
                handles.append(a.mlp_norm(layer).register_forward_pre_hook(self._norm_vjp_hook(layer, "mlp")))
                handles += self._mlp_split_hooks(layer)
            handles.append(a.mlp_down(layer).register_forward_hook(self._mlp_groups_hook(layer)))
        handles.append(a.final_norm().register_forward_pre_hook(self._read_hook(self._groups[a.n_layers, "logits"])))
        return handles

    # -- sources -----------------------------------------------------------------------------
    def _store(self, rows: slice, value: torch.Tensor) -> None:
        keep = self.keep
        if keep is None:
            return
        start, stop = max(rows.start, keep.start), min(rows.stop, keep.stop)
        if start >= stop:
            return
        if self.values is None:
            self.values = value.new_zeros(keep.stop - keep.start, *value.shape[1:])
        self.values[start - keep.start : stop - keep.start] = (
            value[start - rows.start : stop - rows.start].detach().to(self.values.device)
        )

    def _wants(self, rows: slice) -> bool:
        return self.keep is not None and rows.start < self.keep.stop and self.keep.start < rows.stop

    def _at_input(self, module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        hidden = args[0] if args else kwargs["hidden_states"]
        self._store(slice(0, 1), hidden.unsqueeze(0))
        if self._input_target is None and self.on_grad is None:
            return None
        if self._input_target is not None:
            hidden = hidden + (self._input_target.to(hidden) - hidden)
        if self.on_grad is not None:
            # A fresh leaf, so the backward pass reaches every destination but no parameter.
            hidden = hidden.detach().requires_grad_(True)
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    def _heads_hook(self, layer: int) -> Callable:
        rows = self.graph.head_rows(layer)

        def hook(module: Any, args: tuple, output: torch.Tensor) -> None:
            if self._wants(rows):
                self._store(rows, self.adapter.head_outputs(layer, args[0], output))

        return hook

    def _mlp_hook(self, layer: int) -> Callable:
        rows = self.graph.mlp_rows(layer)

        def hook(module: Any, args: tuple, output: torch.Tensor) -> None:
            self._store(rows, output.unsqueeze(0))

        return hook

    def _mlp_groups_hook(self, layer: int) -> Callable:
        rows = self.graph.mlp_rows(layer)

        def hook(module: Any, args: tuple, output: torch.Tensor) -> None:
            if self._wants(rows):
                self._store(rows, self.adapter.mlp_group_outputs(layer, args[0], output))

        return hook

    # -- destinations ------------------------------------------------------------------------
    def _correction(self, group: DestinationGroup) -> torch.Tensor | None:
        """Sum over upstream patched edges of (target - live), [n_cols, b, p, d], or None."""
        patch = self.patch
        if patch is None or self.values is None:
            return None
        start, stop = patch.rows.start, min(patch.rows.stop, group.upstream)
        if start >= stop:
            return None
        mask = patch.mask[: stop - start, group.cols]
        if not bool(mask.any()):
            return None
        difference = self._difference(stop - start)
        correction = weighted_sum(mask.to(difference), difference.reshape(stop - start, -1))
        return correction.view(mask.shape[1], *difference.shape[1:])

    def _difference(self, n_rows: int) -> torch.Tensor:
        """(target - live) of the patch's first `n_rows` sources, each computed once a run: sources are final
        once stored, and every later destination group reads them again."""
        patch, values = self.patch, self.values
        assert patch is not None and values is not None and self.keep is not None
        if self._differences is None:
            self._differences = values.new_empty(patch.rows.stop - patch.rows.start, *values.shape[1:])
        if n_rows > self._differences_done:
            offset, done = patch.rows.start - self.keep.start, self._differences_done
            live = values[offset + done : offset + n_rows]
            torch.sub(patch.target[done:n_rows].to(live.device), live, out=self._differences[done:n_rows])
            self._differences_done = n_rows
        return self._differences[:n_rows]

    def _destination(self, group: DestinationGroup, read: torch.Tensor) -> torch.Tensor:
        """The input `group` reads, given the residual stream broadcast to [n_cols, b, p, d]."""
        correction = self._correction(group)
        if correction is not None:
            read = read + correction.to(read.device, read.dtype)
        elif self.on_grad is not None:
            read = read.clone()
        if self.on_grad is not None:
            on_grad = self.on_grad
            read.register_hook(lambda grad: on_grad(group, grad))
        return read

    def _read_hook(self, group: DestinationGroup) -> Callable:
        def hook(module: Any, args: tuple) -> tuple | None:
            if self.patch is None and self.on_grad is None:
                return None
            return (self._destination(group, args[0].unsqueeze(0)).squeeze(0), *args[1:])

        return hook

    def _at_attn_norm(self, module: Any, args: tuple) -> None:
        self._residual = args[0]

    def _qkv_hook(self, layer: int, kinds: str) -> Callable:
        norm = self.adapter.attn_norm(layer)
        n_heads = self.adapter.n_heads

        def hook(module: Any, args: tuple, output: torch.Tensor) -> torch.Tensor:
            residual = self._residual
            assert residual is not None, "the attention norm ran before its projections"
            per_head = residual.unsqueeze(0).expand(n_heads, *residual.shape)
            outs = []
            for kind in kinds:
                read = self._destination(self._groups[layer, kind], per_head)
                outs.append(self.adapter.project(layer, kind, norm.forward(read)))  # .forward: not our hooks
            return torch.cat(outs, dim=-1)

        return hook

    def _mlp_groups_read_hook(self, layer: int) -> Callable:
        """Normalise each MLP group's own input once; the MLP's input projections then read it."""
        group = self._groups[layer, "mlp"]

        def hook(module: Any, args: tuple) -> None:
            residual = args[0]
            per_group = residual.unsqueeze(0).expand(self.graph.mlp_groups, *residual.shape)
            self._mlp_normed = module.forward(self._destination(group, per_group))  # .forward: not our hooks

        return hook

    def _mlp_in_hook(self, module: Any, args: tuple, output: torch.Tensor) -> torch.Tensor:
        normed = self._mlp_normed
        assert normed is not None, "the MLP norm ran before its input projections"
        return self.adapter.project_mlp(module, normed)

    # -- gradient runs without a patch: one shared read, the gradient split per destination --------
    def _norm_vjp_hook(self, layer: int, block: str) -> Callable:
        """Keep the norm's vector-Jacobian product at this run's residual, batched over destinations."""

        def hook(module: Any, args: tuple) -> None:
            self._norm_vjps[layer, block] = self.adapter.norm_vjp(module, args[0])

        return hook

    def _qkv_split_hook(self, layer: int, kinds: str) -> Callable:
        widths = [(self.adapter.n_heads if kind == "q" else self.adapter.n_kv_heads) * self.adapter.head_dim
                  for kind in kinds]

        def hook(module: Any, args: tuple, output: torch.Tensor) -> torch.Tensor:
            outs = []
            for kind, part in zip(kinds, output.split(widths, dim=-1) if len(kinds) > 1 else [output]):
                part = self.adapter.per_query_head(part)
                part.register_hook(self._heads_grad(layer, kind))
                outs.append(part)
            return torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]

        return hook

    def _heads_grad(self, layer: int, kind: str) -> Callable[[torch.Tensor], None]:
        group, on_grad = self._groups[layer, kind], self.on_grad
        assert on_grad is not None

        def on(grad: torch.Tensor) -> None:
            on_grad(group, self._norm_vjps[layer, "attn"](self.adapter.head_read_grads(layer, kind, grad)))

        return on

    def _mlp_split_hooks(self, layer: int) -> list[RemovableHandle]:
        """Each input projection's gradient is taken back to the groups' normed inputs and summed; once every
        projection's has arrived, the sum goes through the norm to the groups."""
        projections = self.adapter.mlp_in_projections(layer)
        group, on_grad = self._groups[layer, "mlp"], self.on_grad
        assert on_grad is not None
        # Plain tensor hooks and a list: torch.autograd.graph.register_multi_grad_hook kept each run's graph alive.
        parts: list[torch.Tensor] = []

        def hook(module: Any, args: tuple, output: torch.Tensor) -> None:
            def on(grad: torch.Tensor) -> None:
                parts.append(self.adapter.mlp_group_read_grad(module, grad))
                if len(parts) == len(projections):
                    total = parts.pop()
                    while parts:
                        total.add_(parts.pop())
                    on_grad(group, self._norm_vjps[layer, "mlp"](total))

            output.register_hook(on)

        return [proj.register_forward_hook(hook) for proj in projections]


def _input_only(patch: Patch) -> bool:
    """A patch of the input alone that every destination takes: the same as running on the target input."""
    return patch.rows == slice(0, 1) and bool(patch.mask.eq(1).all())


def weighted_sum(mask: torch.Tensor, difference: torch.Tensor) -> torch.Tensor:
    """mask.T @ difference ([rows, cols] and [rows, n] -> [cols, n]) over as few rows as it can.

    A circuit patches nearly every edge and spares a few, so the sum of every row less the spared
    edges' shares touches only the circuit's sources; a sparse patch touches only its own rows.
    Whichever touches fewer rows is taken, which makes faithfulness runs cheaper.
    """
    patched, spared = mask.ne(0).any(dim=1), mask.ne(1).any(dim=1)
    if int(spared.sum()) < int(patched.sum()):
        rows = spared.nonzero().flatten()
        return difference.sum(0, keepdim=True) - (1 - mask[rows]).T @ difference[rows]
    rows = patched.nonzero().flatten()
    return mask[rows].T @ difference[rows]
