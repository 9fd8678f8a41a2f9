"""Randomly initialised models of real architectures' shapes: serving cost at a realistic size
without downloading weights. The weights are seeded noise, so only cost means anything here.

The model is saved with the committed organism's tokenizer and chat template so the fixed prompts
can be encoded (the tokenizer's ids must fit the shape's vocabulary). No steering artifact can have
been fitted on random weights: steering backends get a cost-only artifact, one random unit vector of
the model's width at its middle layer (CAST: a condition that holds for every prompt, the costliest
case), labelled as such in bench.json. The cdelta backend is the plain checkpoint: an edited
checkpoint has its base's shape, hence its cost.
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig

from backends.hf_engine import load_model
from backends.registry import STEERING
from cdelta.chat import template_span
from cdelta.errors import CdeltaError
from cdelta.steering import Condition, ModelRef, SteeringArtifact, save_artifact
from harness.organism.registry import DEFAULT_DIR

SHAPE_SEED = 0
# Values from the published config of Qwen/Qwen2.5-0.5B-Instruct.
BUILTIN: dict[str, dict[str, object]] = {
    "qwen2.5-0.5b": {
        "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "intermediate_size": 4864, "vocab_size": 151936,
        "tie_word_embeddings": True, "max_position_embeddings": 32768, "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6, "hidden_act": "silu",
    },
}


def shape_config(spec: str) -> PretrainedConfig:
    """A built-in shape's config, or a Hugging Face config.json (the file or its folder)."""
    if spec in BUILTIN:
        values = dict(BUILTIN[spec])
        return AutoConfig.for_model(str(values.pop("model_type")), **values)
    path = Path(spec)
    path = path / "config.json" if path.is_dir() else path
    if not path.is_file():
        raise CdeltaError(f"--shape {spec!r} is neither a built-in shape ({', '.join(BUILTIN)}) "
                          "nor a Hugging Face config.json file or folder")
    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError, KeyError) as exc:
        raise CdeltaError(f"--shape {spec}: not a Hugging Face model config this transformers can read ({exc})") from None


def build_shape_model(spec: str, folder: Path, seed: int = SHAPE_SEED) -> Path:
    """Seeded random weights of the shape, saved with the organism's tokenizer into `folder`."""
    config = shape_config(spec)
    tokenizer = AutoTokenizer.from_pretrained(DEFAULT_DIR)
    if len(tokenizer) > config.vocab_size:
        raise CdeltaError(f"--shape {spec}: its vocabulary ({config.vocab_size}) is smaller than the organism "
                          f"tokenizer's ({len(tokenizer)}) that encodes the prompts; use a shape with a larger vocabulary")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def cost_only_label(method: str, layer: int) -> str:
    condition = "; condition holds for every prompt" if method == "cast" else ""
    return f"cost-only: random unit vector at layer {layer}{condition}; not fitted, behaviour meaningless"


def cost_only_artifacts(model_dir: Path, methods: list[str], out: Path) -> dict[str, tuple[Path, str]]:
    """For each steering method, an artifact that fits the shape model, with the label bench.json shows."""
    unknown = [m for m in methods if m not in STEERING]
    if unknown:
        raise CdeltaError(f"cost-only artifacts exist for {', '.join(STEERING)}, not {', '.join(unknown)}")
    model, tokenizer = load_model(model_dir)
    ref = ModelRef.of(model, str(model_dir))
    layer = ref.n_layers // 2
    generator = torch.Generator().manual_seed(SHAPE_SEED)
    vector = torch.randn(ref.d_model, generator=generator)
    vector = vector / vector.norm()
    made = {}
    for method in methods:
        condition = None if method == "actadd" else Condition(layer, vector, -1.0, "above", template_span(tokenizer))
        artifact = SteeringArtifact(method, ref, {layer: vector}, 1.0, condition)  # type: ignore[arg-type]
        made[method] = (save_artifact(artifact, out / method), cost_only_label(method, layer))
    return made
