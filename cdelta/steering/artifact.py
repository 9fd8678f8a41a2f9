"""Steering artifacts on disk: vectors in safetensors, everything else in JSON beside them.

`<method>.safetensors` holds the behaviour vectors (`behaviour.layer<L>`, unscaled) and, for CAST, the
condition vector (`condition.layer<L>`); `<method>.json` holds the schema version, the model the
vectors were fitted on (fingerprint over every parameter), the chosen layers, the coefficient, the positions it is added at, the
condition's method, read, threshold, comparator and dev F1, the fit's dev tables, and the vectors file's sha256.
Each file is written atomically; the JSON, written last, names the vectors file it belongs to.
Before a model is steered the artifact is checked against it: same fingerprint, vectors as wide as
its residual stream, layers that exist, and (CAST) the same chat-template span around the user's text.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from cdelta.atomic import atomic_write_bytes, atomic_write_text
from cdelta.chat import template_span
from cdelta.errors import CdeltaError
from cdelta.fingerprint import config_sha256, fingerprint
from cdelta.graph.adapters import adapter_for
from cdelta.provenance import library_versions, sha256_file
from cdelta.steering.condition import COMPARATORS, CONDITION_METHODS, Condition
from cdelta.steering.hooks import POSITIONS, Positions, check_vector
from cdelta.steering.residual import READS

SCHEMA_VERSION = 3  # 2: the behaviour records its positions; 3: the condition records its method and read
READABLE_SCHEMAS = (2, 3)  # a version-2 condition is CAST's: scored by similarity, read over the user's text
FORMAT = "cdelta.steering"
Method = Literal["actadd", "cast"]
METHODS: tuple[Method, ...] = ("actadd", "cast")


@dataclass(frozen=True)
class ModelRef:
    """The model an artifact was fitted on; `name` is for messages only."""

    name: str
    fingerprint: str
    config_sha256: str
    n_layers: int
    d_model: int

    @classmethod
    def of(cls, model: nn.Module, name: str) -> "ModelRef":
        adapter = adapter_for(model)
        digest = fingerprint(model, [n for n, _ in model.named_parameters()], name).digest
        return cls(name, digest, config_sha256(model.config), adapter.n_layers, adapter.d_model)


@dataclass(frozen=True)
class SteeringArtifact:
    """ActAdd (no condition: every sequence) or CAST (behaviour only where the condition holds)."""

    method: Method
    model: ModelRef
    behaviour: dict[int, torch.Tensor]  # layer -> unscaled vector
    coefficient: float
    condition: Condition | None = None
    f1_dev: float | None = None
    fit: dict[str, Any] = field(default_factory=dict)
    positions: Positions = "all"

    def additions(self) -> dict[int, torch.Tensor]:
        """What is added to the residual stream entering each behaviour layer."""
        return {layer: self.coefficient * v for layer, v in self.behaviour.items()}

    def vectors(self) -> list[tuple[str, int, torch.Tensor]]:
        out = [("behaviour", layer, v) for layer, v in sorted(self.behaviour.items())]
        if self.condition is not None:
            out.append(("condition", self.condition.layer, self.condition.vector))
        return out

    def check_shape(self, n_layers: int, d_model: int, where: str) -> None:
        if self.method not in METHODS:
            raise CdeltaError(f"{where}: unknown steering method {self.method!r}; known: {', '.join(METHODS)}")
        if (self.condition is None) != (self.method == "actadd"):
            raise CdeltaError(f"{where}: " + ("a cast artifact needs a condition" if self.method == "cast"
                                              else "an actadd artifact carries no condition"))
        if not self.behaviour:
            raise CdeltaError(f"{where}: no behaviour vectors")
        if self.positions not in POSITIONS:
            raise CdeltaError(f"{where}: behaviour positions {self.positions!r} is not one of {', '.join(POSITIONS)}")
        for kind, layer, vector in self.vectors():
            check_vector(n_layers, d_model, layer, vector, f"{where} ({kind})")

    def check_fits(self, model: nn.Module, tokenizer: Any, model_name: str) -> None:
        """Refuse a model the artifact was not fitted on, whose shape its vectors do not fit, or whose chat
        template puts the user's text elsewhere than the condition reads it."""
        here = ModelRef.of(model, model_name)
        if here.fingerprint != self.model.fingerprint:
            what = "its config differs" if here.config_sha256 != self.model.config_sha256 else "its weights differ"
            raise CdeltaError(
                f"the {self.method} steering artifact was fitted on model {self.model.name!r} (fingerprint "
                f"{self.model.fingerprint[:12]}), not on {model_name} (fingerprint {here.fingerprint[:12]}): {what}; "
                f"fit it again on this model with `cdelta steer fit`")
        self.check_shape(here.n_layers, here.d_model, f"{self.method} artifact for {model_name}")
        span = template_span(tokenizer)
        if self.condition is not None and span != self.condition.span:
            fitted = self.condition.span
            raise CdeltaError(
                f"the cast condition was fitted with a chat template that writes {fitted[0]} tokens before and "
                f"{fitted[1]} after the user's text; the tokenizer of {model_name} writes {span[0]} before and "
                f"{span[1]} after: use the tokenizer the artifact was fitted with")


def _header(artifact: SteeringArtifact, vectors_file: str, vectors_sha256: str) -> dict[str, Any]:
    condition = artifact.condition
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "method": artifact.method,
        "model": asdict(artifact.model),
        "behaviour": {"layers": sorted(artifact.behaviour), "coefficient": artifact.coefficient,
                      "positions": artifact.positions},
        "condition": None if condition is None else {"method": condition.method, "read": condition.read,
                                                     "layer": condition.layer, "threshold": condition.threshold,
                                                     "comparator": condition.comparator, "span": list(condition.span),
                                                     "f1_dev": artifact.f1_dev},
        "vectors": {"file": vectors_file, "sha256": vectors_sha256},
        "fit": artifact.fit,
        "versions": library_versions(),
    }


def save_artifact(artifact: SteeringArtifact, folder: str | Path, overwrite: bool = False) -> Path:
    """Write `<method>.safetensors` then `<method>.json` into `folder`; returns the JSON's path."""
    folder = Path(folder)
    artifact.check_shape(artifact.model.n_layers, artifact.model.d_model, f"{artifact.method} artifact")
    meta_path, vectors_path = folder / f"{artifact.method}.json", folder / f"{artifact.method}.safetensors"
    if meta_path.exists() and not overwrite:
        raise CdeltaError(f"{meta_path} exists; pass --overwrite to replace it")
    tensors = {f"{kind}.layer{layer}": v.detach().to("cpu", torch.float32).clone()
               for kind, layer, v in artifact.vectors()}
    atomic_write_bytes(vectors_path, save_tensors(tensors))
    header = _header(artifact, vectors_path.name, sha256_file(vectors_path))
    atomic_write_text(meta_path, json.dumps(header, indent=1, sort_keys=True) + "\n")
    return meta_path


def artifact_path(path: str | Path, method: Method | None = None) -> Path:
    """The JSON file: given directly, or `<method>.json` in a folder."""
    path = Path(path)
    if path.is_dir():
        if method is None:
            raise CdeltaError(f"{path} is a folder; name the artifact's JSON file (actadd.json or cast.json)")
        path = path / f"{method}.json"
    if not path.is_file():
        raise CdeltaError(f"steering artifact {path} does not exist (write one with `cdelta steer fit`)")
    return path


def load_artifact(path: str | Path, method: Method | None = None) -> SteeringArtifact:
    """Read and validate an artifact (format, schema, vectors file and its hash, shapes); `method` if it must be one."""
    meta_path = artifact_path(path, method)
    try:
        header = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CdeltaError(f"cannot read steering artifact {meta_path}: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CdeltaError(f"{meta_path} is not a cdelta steering artifact (format {FORMAT!r})")
    if header.get("schema_version") not in READABLE_SCHEMAS:
        raise CdeltaError(f"{meta_path} has schema version {header.get('schema_version')!r}; this cdelta reads "
                          f"{', '.join(map(str, READABLE_SCHEMAS))}: fit it again with `cdelta steer fit`")
    if method is not None and header.get("method") != method:
        raise CdeltaError(f"{meta_path} is a {header.get('method')} artifact, not {method}")
    try:
        vectors_path = meta_path.parent / header["vectors"]["file"]
        if not vectors_path.is_file() or sha256_file(vectors_path) != header["vectors"]["sha256"]:
            raise CdeltaError(f"{vectors_path} is missing or is not the vectors file {meta_path.name} was written with")
        tensors = load_tensors(vectors_path.read_bytes())
        condition = header["condition"]
        artifact = SteeringArtifact(
            method=header["method"],
            model=ModelRef(**header["model"]),
            behaviour={int(layer): tensors[f"behaviour.layer{layer}"] for layer in header["behaviour"]["layers"]},
            coefficient=float(header["behaviour"]["coefficient"]),
            condition=None if condition is None else Condition(
                int(condition["layer"]), tensors[f"condition.layer{condition['layer']}"], float(condition["threshold"]),
                _one_of(condition["comparator"], COMPARATORS, "comparator"), _span(condition["span"]),
                _one_of(condition.get("method", "pca"), CONDITION_METHODS, "condition method"),
                _one_of(condition.get("read", "instruction"), READS, "condition read")),
            f1_dev=None if condition is None else condition.get("f1_dev"),
            fit=dict(header.get("fit", {})),
            positions=header["behaviour"]["positions"],
        )
    except (KeyError, TypeError, ValueError, SafetensorError) as exc:
        raise CdeltaError(f"{meta_path} is not a steering artifact this version can read: {exc!r}") from exc
    artifact.check_shape(artifact.model.n_layers, artifact.model.d_model, str(meta_path))
    return artifact


def _one_of(value: object, allowed: tuple[str, ...], what: str) -> Any:
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {allowed}")
    return value


def _span(value: object) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, int) and v >= 0 for v in value):
        raise ValueError(f"span {value!r} is not two token counts")
    return value[0], value[1]
