"""The interchangeable backends by name: `make_backend("cast", model_dir, artifact, engine="vllm")` -> a Generator.

- `noop`: the model as it is;
- `actadd`, `cast`: the model under a steering artifact from `cdelta steer fit` (its JSON file, or
  the folder that holds it), checked against the model before use;
- `cdelta`, and the ablations `dense`, `random`: an edited checkpoint folder, or the base model plus a
  patch file (`cdelta edit`); a patch must be of the named kind.

Every backend runs on either engine: `hf` (transformers, in this process) or `vllm` (offline vLLM).
On vLLM a steering artifact is checked against the transformers model (the fingerprint is over its
parameters), and base + patch is written out as a checkpoint folder, since vLLM loads folders.
"""
from __future__ import annotations

from pathlib import Path

import torch

from backends.generation import Generator
from backends.hf_engine import HFEngine, load_model
from backends.steering import intervention_for
from backends.vllm_engine import VLLMEngine, require_vllm
from cdelta.apply import add_patch
from cdelta.errors import CdeltaError
from cdelta.patch import Patch, load_patch
from cdelta.steering import load_artifact

STEERING = ("actadd", "cast")
CHECKPOINTS = {"cdelta": "circuit", "dense": "dense", "random": "random"}  # backend -> the patch's ablation
BACKENDS: tuple[str, ...] = ("noop", *STEERING, *CHECKPOINTS)
ENGINES = ("hf", "vllm")


def check_device(device: str) -> None:
    """A device this torch can place a model on (cpu, cuda, cuda:N); fails before any model is loaded."""
    try:
        place = torch.device(device)
    except RuntimeError:
        raise CdeltaError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if place.type == "cpu":
        return
    if place.type != "cuda":
        raise CdeltaError(f"device {device!r}: the transformers engine runs on cpu or cuda")
    if not torch.cuda.is_available():
        raise CdeltaError(f"device {device!r} asked for, but this torch build sees no GPU "
                          f"(torch {torch.__version__}); use device cpu, or install a CUDA build of torch")
    if place.index is not None and place.index >= torch.cuda.device_count():
        raise CdeltaError(f"device {device!r}: this machine has {torch.cuda.device_count()} GPU(s)")


def check_engine(engine: str) -> None:
    """A known engine whose library imports; fails before any model is loaded."""
    if engine not in ENGINES:
        raise CdeltaError(f"unknown engine {engine!r}; known engines: {', '.join(ENGINES)}")
    if engine == "vllm":
        require_vllm()


def _checked_patch(name: str, artifact: str | Path) -> Patch:
    patch = load_patch(artifact)
    if patch.meta.ablation not in (None, CHECKPOINTS[name]):
        raise CdeltaError(f"{artifact} is a {patch.meta.ablation} patch; the {name} backend takes "
                          f"{CHECKPOINTS[name]} patches")
    return patch


def make_backend(name: str, model_path: str | Path, artifact: str | Path | None = None,
                 dtype: torch.dtype = torch.float32, device: str = "cpu", engine: str = "hf") -> Generator:
    """One backend on one engine; `artifact` is a steering artifact or a patch file. On vLLM the device is
    the one its build runs on (CPU build or CUDA build)."""
    if name not in BACKENDS:
        raise CdeltaError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")
    check_engine(engine)
    check_device(device)
    if name == "noop":
        if artifact is not None:
            raise CdeltaError("the noop backend takes no artifact")
        return HFEngine.from_path(model_path, dtype, device) if engine == "hf" else \
            VLLMEngine.from_path(model_path, dtype)
    if name in STEERING:
        if artifact is None:
            raise CdeltaError(f"the {name} backend needs a steering artifact (`cdelta steer fit` writes {name}.json)")
        steering = load_artifact(artifact, name)  # type: ignore[arg-type]
        model, tokenizer = load_model(model_path, dtype, device)
        steering.check_fits(model, tokenizer, str(model_path))
        if engine == "hf":
            return HFEngine(model, tokenizer, intervention_for(steering))
        del model
        return VLLMEngine.from_path(model_path, dtype, steerable=True).with_intervention(intervention_for(steering))
    patch = None if artifact is None else _checked_patch(name, artifact)
    if engine == "vllm":
        return VLLMEngine.from_path(model_path, dtype) if patch is None else \
            VLLMEngine.from_patch(model_path, patch, dtype)
    hf = HFEngine.from_path(model_path, dtype, device)
    if patch is not None:
        add_patch(hf.model, patch, str(model_path))
    return hf
