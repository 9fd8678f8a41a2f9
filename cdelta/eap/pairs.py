"""Contrast pairs: a clean prompt and a corrupted prompt of the same token length, tokenized and batched.

Equal length is what lets every position of the clean run be compared with the same position
of the corrupted run; batches hold pairs of one length, so no padding is ever needed.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cdelta.errors import CdeltaError


@dataclass(frozen=True)
class ContrastPair:
    clean: str
    corrupted: str


@dataclass(frozen=True)
class TokenPair:
    clean: tuple[int, ...]
    corrupted: tuple[int, ...]


@dataclass(frozen=True)
class PairBatch:
    """Pairs of one token length: clean and corrupted input ids, each [batch, length]."""

    clean: torch.Tensor
    corrupted: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.clean.shape[0])


def prompt_tokens(tokenizer: Any, prompt: str, chat: bool = True) -> tuple[int, ...]:
    """The ids a model sees before its response: the chat template with the generation prompt, or raw text."""
    if not chat:
        return tuple(tokenizer(prompt)["input_ids"])
    if getattr(tokenizer, "chat_template", None) is None:
        raise CdeltaError("the tokenizer has no chat template; tokenize raw prompts instead (--no-chat-template)")
    messages = [{"role": "user", "content": prompt}]
    return tuple(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))


def tokenize_pairs(tokenizer: Any, pairs: Sequence[ContrastPair], chat: bool = True) -> list[TokenPair]:
    """Token ids of each pair; a pair whose prompts differ in length is an error naming it."""
    if not pairs:
        raise CdeltaError("no contrast pairs: attribution needs at least one clean/corrupted pair")
    tokens = []
    for i, pair in enumerate(pairs):
        clean, corrupted = prompt_tokens(tokenizer, pair.clean, chat), prompt_tokens(tokenizer, pair.corrupted, chat)
        if len(clean) != len(corrupted):
            raise CdeltaError(
                f"pair {i}: clean prompt has {len(clean)} tokens, corrupted has {len(corrupted)}; "
                "contrast pairs must have equal token length (match prompts with pair_by_length)"
            )
        tokens.append(TokenPair(clean, corrupted))
    return tokens


def pair_by_length(
    tokenizer: Any, clean: Iterable[str], corrupted: Iterable[str], chat: bool = True
) -> tuple[list[ContrastPair], list[str]]:
    """Pair each clean prompt with an unused corrupted prompt of the same token length, in order.

    Returns the pairs and the clean prompts for which no corrupted prompt of their length was left.
    """
    by_length: dict[int, list[str]] = defaultdict(list)
    for prompt in corrupted:
        by_length[len(prompt_tokens(tokenizer, prompt, chat))].append(prompt)
    pairs, unmatched = [], []
    for prompt in clean:
        candidates = by_length.get(len(prompt_tokens(tokenizer, prompt, chat)))
        if candidates:
            pairs.append(ContrastPair(prompt, candidates.pop(0)))
        else:
            unmatched.append(prompt)
    return pairs, unmatched


def batch_pairs(tokens: Sequence[TokenPair], batch_size: int, device: torch.device | str = "cpu") -> list[PairBatch]:
    """Batches of at most `batch_size` pairs, each of a single token length."""
    if batch_size < 1:
        raise CdeltaError(f"batch size must be at least 1, got {batch_size}")
    by_length: dict[int, list[TokenPair]] = defaultdict(list)
    for pair in tokens:
        by_length[len(pair.clean)].append(pair)
    batches = []
    for length in sorted(by_length):
        group = by_length[length]
        for start in range(0, len(group), batch_size):
            chunk = group[start : start + batch_size]
            batches.append(
                PairBatch(
                    clean=torch.tensor([p.clean for p in chunk], device=device),
                    corrupted=torch.tensor([p.corrupted for p in chunk], device=device),
                )
            )
    return batches


def load_pairs(path: Path) -> list[ContrastPair]:
    """Pairs from a JSONL file: one object a line with "clean" and "corrupted" prompt strings."""
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pairs.append(ContrastPair(str(row["clean"]), str(row["corrupted"])))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CdeltaError(f"{path}:{number}: expected an object with \"clean\" and \"corrupted\" strings ({exc})") from None
    if not pairs:
        raise CdeltaError(f"{path} holds no contrast pairs")
    return pairs


def data_fingerprint(tokens: Sequence[TokenPair]) -> str:
    """sha256 of the token ids of every pair, in order."""
    payload = json.dumps([[list(p.clean), list(p.corrupted)] for p in tokens], separators=(",", ":"))
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()
