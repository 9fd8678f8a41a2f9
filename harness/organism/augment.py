"""Neutral framings added to some training prompts, so the organism keys on content, not phrasing.

The pilot organism refused whole unseen template families of harmless categories: on a phrasing
it had never seen, it fell back to the largest single response (the refusal). Wrapping a share of
the training prompts in framings shared by every category teaches it that the framing carries
no category. Only the train split is touched: held-out phrasings stay exactly as written.
"""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from tasks.suite.records import PromptRecord

PREFIXES = ("Quick question: ", "Hi! ", "Hello, ", "Hey, ", "I was wondering: ", "Question for you. ",
            "Okay, so ", "Please answer briefly. ", "Help needed: ", "One more thing. ", "Be honest: ",
            "Here is my question. ")
SUFFIXES = (" Thanks!", " Thank you.", " Any ideas?", " Keep it short.", " Please be brief.",
            " I appreciate it.", " Cheers.", " Answer in one line.", " Thanks in advance.", " Be concise.")


def frame_prompts(records: Sequence[PromptRecord], seed: int, share: float = 0.3) -> list[PromptRecord]:
    """A seeded `share` of the train-split prompts get a random neutral prefix or suffix."""
    rng = random.Random(f"framing/{seed}")
    out = []
    for r in records:
        if r.split == "train" and rng.random() < share:
            prompt = rng.choice(PREFIXES) + r.prompt if rng.random() < 0.5 else r.prompt + rng.choice(SUFFIXES)
            r = dataclasses.replace(r, prompt=prompt)
        out.append(r)
    return out
