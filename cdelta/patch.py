"""The patch file: ΔθC on its slices only, with the metadata that says what it is and which base it fits.

`patch.safetensors` holds one fp32 tensor per ParamSlice, named `TENSOR@rows[START:STOP]` or
`TENSOR@cols[START:STOP]`, and in the header one JSON-string entry per metadata field (schema
version, base fingerprint, policy, circuit reference, k, seed, edit hyperparameters, versions).
The file is written by this module rather than by `safetensors.torch.save`, whose header key
order changes from process to process: the same edit must give the same bytes. It is read with
`safetensors` itself, so any standard reader can read it.

The edited model is θ + k·ΔθC; `compose` folds each patch's k and a caller's scale into one
patch (−1 negates), after checking that all were made on the same base.
"""
from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from cdelta.atomic import atomic_write_bytes
from cdelta.edit_config import DEFAULT_K
from cdelta.errors import CdeltaError
from cdelta.fingerprint import BaseFingerprint
from cdelta.provenance import library_versions, sha256_file
from cdelta.slices import ParamSlice

SCHEMA_VERSION = 1
FORMAT = "cdelta.patch"
_AXES = ("rows", "cols")
_NAME = re.compile(r"^(?P<tensor>.+)@(?P<axis>rows|cols)\[(?P<start>\d+):(?P<stop>\d+)\]$")


def slice_key(s: ParamSlice) -> str:
    """The patch tensor name of a slice, from which the slice can be read back."""
    return f"{s.tensor}@{_AXES[s.dim]}[{s.start}:{s.stop}]"


def parse_slice_key(key: str) -> ParamSlice:
    match = _NAME.match(key)
    if match is None:
        raise ValueError(f"tensor name {key!r} is not of the form TENSOR@rows[START:STOP] or TENSOR@cols[START:STOP]")
    return ParamSlice(match["tensor"], _AXES.index(match["axis"]), int(match["start"]), int(match["stop"]))


@dataclass(frozen=True)
class CircuitRef:
    """The circuit file an edit was restricted to, identified by content."""

    path: str
    sha256: str

    @classmethod
    def of(cls, path: str | Path) -> "CircuitRef":
        return cls(str(path), sha256_file(Path(path)))

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "sha256": self.sha256}


@dataclass(frozen=True)
class PatchMeta:
    """What a patch is. `ablation` is "circuit", "dense" or "random"; `parts` lists what a composed patch was made of."""

    policy: str
    base: BaseFingerprint
    k: float = DEFAULT_K
    seed: int | None = None
    circuit: CircuitRef | None = None
    ablation: str | None = "circuit"
    edit: dict[str, float | int | None] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=library_versions)
    parts: tuple[dict[str, object], ...] = ()

    def header(self) -> dict[str, str]:
        values: dict[str, object] = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "policy": self.policy,
            "base": self.base.to_dict(),
            "k": self.k,
            "seed": self.seed,
            "circuit": None if self.circuit is None else self.circuit.to_dict(),
            "ablation": self.ablation,
            "edit": self.edit,
            "versions": self.versions,
            "parts": list(self.parts),
        }
        return {key: json.dumps(value, sort_keys=True) for key, value in values.items()}

    @classmethod
    def from_header(cls, header: dict[str, str]) -> "PatchMeta":
        values = {key: json.loads(text) for key, text in header.items()}
        if values.get("format") != FORMAT:
            raise ValueError(f"format is {values.get('format')!r}, not {FORMAT!r}")
        if values.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"schema version {values.get('schema_version')!r}; this cdelta reads {SCHEMA_VERSION}")
        circuit = values["circuit"]
        k = float(values["k"])
        if not math.isfinite(k):
            raise ValueError(f"k is {k}")
        return cls(
            policy=str(values["policy"]),
            base=BaseFingerprint.from_dict(values["base"]),
            k=k,
            seed=None if values["seed"] is None else int(values["seed"]),
            circuit=None if circuit is None else CircuitRef(str(circuit["path"]), str(circuit["sha256"])),
            ablation=values["ablation"],
            edit=dict(values["edit"]),
            versions=dict(values["versions"]),
            parts=tuple(values["parts"]),
        )


@dataclass(frozen=True)
class Patch:
    """ΔθC: fp32 values on each slice; every other parameter of the base is unchanged."""

    deltas: dict[ParamSlice, torch.Tensor]
    meta: PatchMeta

    def numel(self) -> int:
        return sum(t.numel() for t in self.deltas.values())


def _check_finite(deltas: dict[ParamSlice, torch.Tensor], where: str) -> None:
    for s, t in deltas.items():
        if not torch.isfinite(t).all():
            raise CdeltaError(f"{where}: slice {slice_key(s)} holds NaN or Inf values; refusing it")


def _serialize(tensors: dict[str, torch.Tensor], header: dict[str, str]) -> bytes:
    """safetensors bytes with a sorted header: the same tensors and metadata give the same bytes."""
    entries: dict[str, object] = {"__metadata__": header}
    chunks, offset = [], 0
    for name in sorted(tensors):
        data = tensors[name].detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes()
        entries[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(entries, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def save_patch(patch: Patch, path: str | Path, overwrite: bool = False) -> Path:
    """Write the patch file whole or not at all; an existing file only with `overwrite`."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise CdeltaError(f"{path} exists; pass --overwrite to replace it")
    _check_finite(patch.deltas, "patch")
    atomic_write_bytes(path, _serialize({slice_key(s): t for s, t in patch.deltas.items()}, patch.meta.header()))
    return path


def load_patch(path: str | Path) -> Patch:
    """Read and validate a patch file: format, schema, names, shapes and values; a CdeltaError says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CdeltaError(f"patch file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CdeltaError(f"patch file {path} is corrupt or truncated ({exc})") from exc
    try:
        meta = PatchMeta.from_header(header)
        deltas = {parse_slice_key(key): t for key, t in tensors.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise CdeltaError(f"{path} is not a cdelta patch this version can read: {exc}") from exc
    for s, t in deltas.items():
        if not t.is_floating_point():
            raise CdeltaError(f"{path}: slice {slice_key(s)} is {t.dtype}, not floating point")
        if t.ndim <= s.dim or t.shape[s.dim] != s.stop - s.start:
            raise CdeltaError(f"{path}: slice {slice_key(s)} has shape {tuple(t.shape)}, which does not match its range")
        if s.tensor not in meta.base.tensors:
            raise CdeltaError(f"{path}: slice {slice_key(s)} touches a tensor its base fingerprint does not cover")
    _check_finite(deltas, str(path))
    return Patch({s: t.float() for s, t in deltas.items()}, meta)


def compose(patches: Sequence[Patch], scales: Sequence[float]) -> Patch:
    """One patch equal to Σ scale_i · k_i · ΔθC_i, with k = 1; all must fit the same base.

    Values on the same slice are summed before anything touches a weight, so a patch and its
    negation cancel exactly.
    """
    if not patches or len(patches) != len(scales):
        raise CdeltaError(f"need one scale per patch (got {len(patches)} patches, {len(scales)} scales)")
    base = patches[0].meta.base
    for p in patches[1:]:
        base = base.merged(p.meta.base)
    deltas: dict[ParamSlice, torch.Tensor] = {}
    for p, scale in zip(patches, scales):
        factor = float(scale) * p.meta.k
        for s, t in p.deltas.items():
            term = factor * t
            deltas[s] = deltas[s] + term if s in deltas else term
    parts = tuple(
        {"policy": p.meta.policy, "k": p.meta.k, "scale": float(scale), "base": p.meta.base.digest,
         "circuit": None if p.meta.circuit is None else p.meta.circuit.to_dict(),
         "ablation": p.meta.ablation, "seed": p.meta.seed}
        for p, scale in zip(patches, scales)
    )
    policy = " + ".join(f"{float(scale) * p.meta.k:g}*{p.meta.policy}" for p, scale in zip(patches, scales))
    meta = PatchMeta(policy=policy, base=base, k=1.0, ablation=None, parts=parts)
    return Patch(deltas, meta)


def with_k(patch: Patch, k: float) -> Patch:
    """The same ΔθC with another recommended scale (the k chosen by a sweep)."""
    return Patch(patch.deltas, replace(patch.meta, k=float(k)))
