"""Tiny random models of every supported family and a word-level chat tokenizer, for the EAP-IG tests."""
from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

WORDS = ["<pad>", "<s>", "<|user|>", "<|assistant|>", "<|end|>", "I", "Sorry", "Sure", "Here"]
WORDS += [f"w{i}" for i in range(23)] + ["<unk>"]
VOCAB = len(WORDS)
REFUSAL = [WORDS.index("I"), WORDS.index("Sorry")]
COMPLIANCE = [WORDS.index("Sure"), WORDS.index("Here")]
FAMILIES = ["llama", "qwen2", "mistral", "gemma2", "gpt2"]


def tokenizer() -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", unk_token="<unk>")
    tok.chat_template = (
        "<s> {% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    return tok


def config(family: str, n_layers: int = 2):
    common = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=n_layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.15)
    if family == "llama":
        return LlamaConfig(**common, attention_bias=True)
    if family == "qwen2":
        return Qwen2Config(**common)
    if family == "mistral":
        return MistralConfig(**common, head_dim=8)
    if family == "gemma2":
        return Gemma2Config(**common, head_dim=8, query_pre_attn_scalar=8, sliding_window=4,
                            attn_logit_softcapping=50.0, final_logit_softcapping=30.0)
    if family == "gpt2":
        return GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=n_layers, n_head=4, n_positions=64,
                          initializer_range=0.15, bos_token_id=1, eos_token_id=4)
    raise ValueError(family)


def model(family: str, seed: int = 0, n_layers: int = 2) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = AutoModelForCausalLM.from_config(config(family, n_layers), attn_implementation="eager")
    return m.eval()


def checkpoint(folder: Path, family: str = "llama", seed: int = 0, n_layers: int = 2) -> Path:
    """A tiny random model and the tiny tokenizer saved as a checkpoint folder, as backends load models."""
    model(family, seed, n_layers).save_pretrained(folder)
    tokenizer().save_pretrained(folder)
    return folder


def ids(*rows: list[int]) -> torch.Tensor:
    return torch.tensor(rows)
