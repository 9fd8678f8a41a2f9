"""The fingerprint of the base model a patch was computed on, so it is never applied to another.

It hashes the model config (without runtime flags) and, one by one, the base tensors the patch
touches (as fp32, so loading a bf16 base in fp32 is the same base). Per-tensor hashes let patches
that touch different tensors of one base be composed and checked against each other: they must
agree on the config and on every tensor they share.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from transformers import PretrainedConfig

from cdelta.errors import CdeltaError

# Config entries that say how a model was saved, loaded or is run, not which model it is
# (`architectures` appears only once a model has been saved; `model_type` stays in).
_RUNTIME_KEYS = {"transformers_version", "architectures", "dtype", "torch_dtype", "use_cache", "output_attentions",
                 "output_hidden_states", "return_dict"}


def config_sha256(config: PretrainedConfig) -> str:
    entries = {k: v for k, v in config.to_dict().items() if not k.startswith("_") and k not in _RUNTIME_KEYS}
    return hashlib.sha256(json.dumps(entries, sort_keys=True, default=str).encode()).hexdigest()


def tensor_sha256(tensor: torch.Tensor) -> str:
    values = tensor.detach().to("cpu", torch.float32).contiguous()
    digest = hashlib.sha256(repr(tuple(values.shape)).encode())
    digest.update(values.numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class BaseFingerprint:
    """Which base a patch belongs to; `name` is only for messages and is not hashed."""

    name: str
    config_sha256: str
    tensors: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        body = json.dumps({"config": self.config_sha256, "tensors": self.tensors}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "config_sha256": self.config_sha256, "tensors": dict(sorted(self.tensors.items())),
                "sha256": self.digest}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> "BaseFingerprint":
        tensors = d["tensors"]
        if not isinstance(tensors, dict):
            raise ValueError("tensors must be an object")
        return cls(str(d["name"]), str(d["config_sha256"]), {str(k): str(v) for k, v in tensors.items()})

    def _made_for(self) -> str:
        return f"it was made for base {self.name!r} (fingerprint {self.digest[:12]})"

    def merged(self, other: "BaseFingerprint") -> "BaseFingerprint":
        """One fingerprint covering both, or a CdeltaError if they cannot be the same base."""
        clash = [t for t in self.tensors.keys() & other.tensors.keys() if self.tensors[t] != other.tensors[t]]
        if self.config_sha256 != other.config_sha256 or clash:
            raise CdeltaError(
                f"patches for different bases cannot be composed: one was made for base {self.name!r}, "
                f"the other for base {other.name!r} ({'tensor ' + clash[0] if clash else 'the config'} differs)"
            )
        return BaseFingerprint(self.name, self.config_sha256, {**self.tensors, **other.tensors})

    def verify(self, model: torch.nn.Module, model_name: str) -> None:
        """Refuse a model that is not this base: a different config or a different touched tensor."""
        if config_sha256(model.config) != self.config_sha256:
            raise CdeltaError(f"the patch does not fit {model_name}: {self._made_for()}, and the model configs differ")
        params = dict(model.named_parameters())
        for name, expected in sorted(self.tensors.items()):
            if name not in params:
                raise CdeltaError(f"the patch does not fit {model_name}: {self._made_for()}, which has tensor {name!r}")
            if tensor_sha256(params[name]) != expected:
                raise CdeltaError(
                    f"the patch does not fit {model_name}: {self._made_for()}, and tensor {name!r} differs "
                    "(another checkpoint, or a base that was already edited)"
                )


def fingerprint(model: torch.nn.Module, tensors: Iterable[str], name: str) -> BaseFingerprint:
    """The fingerprint of `model` over the named tensors (those a patch touches)."""
    params = dict(model.named_parameters())
    return BaseFingerprint(name, config_sha256(model.config), {t: tensor_sha256(params[t]) for t in sorted(set(tensors))})
