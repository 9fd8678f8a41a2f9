"""θ' = θ + ΔθC: in memory, and as a drop-in Hugging Face checkpoint folder that needs no hooks.

A patch is added only after its base fingerprint matches the model. Each touched tensor gets the
sum of all its slice values first (in fp32) and is then written once, so entries outside the
slices keep their exact bits and a patch composed with its negation restores the base exactly.
The checkpoint is written to a hidden folder beside the output and renamed into place only when
complete (`cdelta.atomic`): the output folder never exists half-written.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from cdelta.atomic import atomic_dir
from cdelta.base_model import load_base
from cdelta.errors import CdeltaError
from cdelta.patch import Patch, slice_key

PROVENANCE_FILE = "cdelta_patch.json"


def add_patch(model: torch.nn.Module, patch: Patch, model_name: str = "the model") -> None:
    """θ ← θ + k·ΔθC in place, with the patch's own k (1 for a composed patch, whose k is folded in)."""
    patch.meta.base.verify(model, model_name)
    params = dict(model.named_parameters())
    totals: dict[str, torch.Tensor] = {}
    touched: dict[str, torch.Tensor] = {}
    for s, delta in patch.deltas.items():
        weight = params[s.tensor]
        if s.dim >= weight.ndim or s.stop > weight.shape[s.dim]:
            raise CdeltaError(f"slice {slice_key(s)} does not fit tensor of shape {tuple(weight.shape)} in {model_name}")
        total = totals.setdefault(s.tensor, torch.zeros(weight.shape, dtype=torch.float32, device=weight.device))
        mask = touched.setdefault(s.tensor, torch.zeros(weight.shape, dtype=torch.bool, device=weight.device))
        region = total.narrow(s.dim, s.start, s.stop - s.start)
        if region.shape != delta.shape:
            raise CdeltaError(f"slice {slice_key(s)} holds shape {tuple(delta.shape)}, expected {tuple(region.shape)}")
        region.add_(patch.meta.k * delta.to(weight.device))
        mask.narrow(s.dim, s.start, s.stop - s.start).fill_(True)
    with torch.no_grad():
        for name, total in totals.items():
            base = params[name].float()
            params[name].copy_(torch.where(touched[name], base + total, base).to(params[name].dtype))


@contextmanager
def patched(model: torch.nn.Module, patch: Patch, model_name: str = "the model") -> Iterator[torch.nn.Module]:
    """The model with the patch added for the duration of a `with` block, then restored bit for bit (for k sweeps)."""
    params = dict(model.named_parameters())
    saved = {name: params[name].detach().clone() for name in {s.tensor for s in patch.deltas}}
    add_patch(model, patch, model_name)
    try:
        yield model
    finally:
        with torch.no_grad():
            for name, value in saved.items():
                params[name].copy_(value)


def write_checkpoint(model_path: str, patch: Patch, out: str | Path, overwrite: bool = False) -> Path:
    """Load the base, add the patch and write a standard HF folder (weights, config, tokenizer, chat template)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise CdeltaError(f"output {out} exists; pass --overwrite to replace it")
    model, tokenizer = load_base(model_path)
    add_patch(model, patch, model_path)
    provenance = {key: json.loads(text) for key, text in patch.meta.header().items()}
    with atomic_dir(out, overwrite=overwrite) as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        (folder / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    return out
