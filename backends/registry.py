"""The interchangeable backends by name: `make_backend("cast", model_dir, artifact)` -> a Generator.

- `noop`: the model as it is;
- `actadd`, `cast`: the model under a steering artifact from `cdelta steer fit` (its JSON file, or
  the folder that holds it), checked against the model before use;
- `cdelta`, and the ablations `dense`, `random`: an edited checkpoint folder, or the base model plus a
  patch file (`cdelta edit`) added in memory; a patch must be of the named kind.
"""
from __future__ import annotations

from pathlib import Path

import torch

from backends.generation import Generator
from backends.hf_engine import HFEngine
from backends.steering import intervention_for
from cdelta.apply import add_patch
from cdelta.errors import CdeltaError
from cdelta.patch import load_patch
from cdelta.steering import load_artifact

STEERING = ("actadd", "cast")
CHECKPOINTS = {"cdelta": "circuit", "dense": "dense", "random": "random"}  # backend -> the patch's ablation
BACKENDS: tuple[str, ...] = ("noop", *STEERING, *CHECKPOINTS)


def make_backend(name: str, model_path: str | Path, artifact: str | Path | None = None,
                 dtype: torch.dtype = torch.float32, device: str = "cpu") -> Generator:
    """One backend on the transformers engine; `artifact` is a steering artifact or a patch file."""
    if name not in BACKENDS:
        raise CdeltaError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")
    if name == "noop":
        if artifact is not None:
            raise CdeltaError("the noop backend takes no artifact")
        return HFEngine.from_path(model_path, dtype, device)
    if name in STEERING:
        if artifact is None:
            raise CdeltaError(f"the {name} backend needs a steering artifact (`cdelta steer fit` writes {name}.json)")
        steering = load_artifact(artifact, name)  # type: ignore[arg-type]
        engine = HFEngine.from_path(model_path, dtype, device)
        steering.check_fits(engine.model, engine.tokenizer, str(model_path))
        return engine.with_intervention(intervention_for(steering))
    engine = HFEngine.from_path(model_path, dtype, device)
    if artifact is not None:
        patch = load_patch(artifact)
        if patch.meta.ablation not in (None, CHECKPOINTS[name]):
            raise CdeltaError(f"{artifact} is a {patch.meta.ablation} patch; the {name} backend takes "
                              f"{CHECKPOINTS[name]} patches")
        add_patch(engine.model, patch, str(model_path))
    return engine
