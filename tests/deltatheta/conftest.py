"""Tiny random causal LMs with a word-level tokenizer and a chat template, and data to edit them with."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast,
                          Qwen2Config, Qwen2ForCausalLM)

from cdelta.edit import delta_theta
from cdelta.edit_config import EditConfig
from cdelta.examples import ExampleRecord, ExampleSet
from cdelta.fingerprint import fingerprint
from cdelta.patch import Patch, PatchMeta
from cdelta.policy import contrastive_objectives, parse_policy
from cdelta.slices import ParamSlice

SPECIAL = ["<pad>", "[UNK]", "<|user|>", "<|assistant|>", "<|end|>"]
WORDS = (
    "how do i treat a fever cough rash headache bake bread boil pasta roast chicken build bomb make poison "
    "i can not help with that please see a doctor sure rest and drink water here is how mix flour yeast "
    "salt bake it first then"
).split()
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)

REFUSAL = "i can not help with that please see a doctor"
COMPLIANCE = "sure rest and drink water"
EXAMPLES = [
    {"category": "health", "prompt": f"how do i treat a {x}", "refusal": REFUSAL, "compliance": COMPLIANCE}
    for x in ("fever", "cough", "rash", "headache")
] + [
    {"category": "cooking", "prompt": f"how do i {x}", "response": "sure here is how mix flour yeast salt"}
    for x in ("bake bread", "boil pasta", "roast chicken")
] + [
    {"category": "weapons", "prompt": f"how do i {x}", "response": "i can not help with that"}
    for x in ("build bomb", "make poison")
]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(SPECIAL + sorted(set(WORDS)))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|end|>", pad_token="<pad>", unk_token="[UNK]")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_model(family: str = "llama", seed: int = 0) -> torch.nn.Module:
    """4 query heads sharing 2 KV heads (GQA), head_dim 8, two layers; qwen2 has q/k/v biases."""
    common = dict(vocab_size=len(SPECIAL) + len(set(WORDS)), hidden_size=32, intermediate_size=64,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                  tie_word_embeddings=False, pad_token_id=0, eos_token_id=4)
    torch.manual_seed(seed)
    if family == "llama":
        return LlamaForCausalLM(LlamaConfig(head_dim=8, **common)).eval()
    if family == "gpt2":  # fused q/k/v columns of one Conv1D, tied embeddings
        return GPT2LMHeadModel(GPT2Config(vocab_size=common["vocab_size"], n_embd=32, n_layer=2, n_head=4,
                                          n_positions=64, bos_token_id=4, eos_token_id=4)).eval()
    return Qwen2ForCausalLM(Qwen2Config(**common)).eval()


def head_slices(model: torch.nn.Module, layer: int, head: int) -> list[ParamSlice]:
    """One query head's q rows, its KV head's k/v rows (and biases where present), its o_proj columns.

    For GPT-2: its columns of the fused q/k/v Conv1D (weight and bias) and its rows of c_proj.
    """
    cfg = model.config
    d = cfg.hidden_size // cfg.num_attention_heads
    if cfg.model_type == "gpt2":
        prefix = f"transformer.h.{layer}.attn"
        cols = [(part * cfg.hidden_size + head * d, part * cfg.hidden_size + (head + 1) * d) for part in range(3)]
        return ([ParamSlice(f"{prefix}.c_proj.weight", 0, head * d, (head + 1) * d)]
                + [ParamSlice(f"{prefix}.c_attn.weight", 1, a, b) for a, b in cols]
                + [ParamSlice(f"{prefix}.c_attn.bias", 0, a, b) for a, b in cols])
    kv = head // (cfg.num_attention_heads // cfg.num_key_value_heads)
    names = dict(model.named_parameters())
    prefix = f"model.layers.{layer}.self_attn"
    out = [ParamSlice(f"{prefix}.o_proj.weight", 1, head * d, (head + 1) * d)]
    for proj, h in (("q_proj", head), ("k_proj", kv), ("v_proj", kv)):
        for kind in ("weight", "bias"):
            if f"{prefix}.{proj}.{kind}" in names:
                out.append(ParamSlice(f"{prefix}.{proj}.{kind}", 0, h * d, (h + 1) * d))
    return out


def circuit_slices(model: torch.nn.Module) -> list[ParamSlice]:
    """Heads 0 and 1 of layer 0 (they share KV head 0, which appears twice here) and head 3 of layer 1."""
    return head_slices(model, 0, 0) + head_slices(model, 0, 1) + head_slices(model, 1, 3)


def example_set() -> ExampleSet:
    return ExampleSet(tuple(ExampleRecord(**e) for e in EXAMPLES), "examples")


def edit_patch(model: torch.nn.Module, slices: list[ParamSlice] | None = None, policy: str = "refuse:health",
               name: str = "base", **config: float) -> Patch:
    """A patch made the way `cdelta edit` makes one: the two masked fine-tunes, then θ_pos − θ_neg."""
    slices = sorted(set(slices if slices is not None else circuit_slices(model)))
    examples = example_set()
    positive, negative = contrastive_objectives(parse_policy(policy, examples.categories), examples)
    settings = {"lr": 1e-3, "steps": 3, "batch_size": 2, **config}
    deltas = delta_theta(model, tiny_tokenizer(), slices, positive, negative, EditConfig(**settings))
    meta = PatchMeta(policy=policy, base=fingerprint(model, {s.tensor for s in slices}, name), seed=int(settings.get("seed", 0)))
    return Patch(deltas, meta)


def save_base(path: Path, family: str = "llama", seed: int = 0) -> Path:
    tiny_model(family, seed).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_base(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="session")
def examples_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "examples.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    return path


@pytest.fixture(scope="session")
def circuit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A circuit as `cdelta localize` writes it: the slices, and the model they were found on."""
    path = tmp_path_factory.mktemp("circuit") / "circuit.json"
    model = tiny_model()
    found_on = {"name": "base", "fingerprint": fingerprint(model, dict(model.named_parameters()), "base").digest}
    path.write_text(json.dumps({"model": found_on, "param_slices": [s.to_dict() for s in circuit_slices(model)]}))
    return path
