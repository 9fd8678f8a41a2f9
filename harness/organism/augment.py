"""Training-set augmentation that makes the organism key on content, not on phrasing.

Organisms trained on the templates alone refused whole unseen template families of harmless
categories (benign 31%, legal 37% on test phrasings after 2,000 steps): on a phrasing they had
never seen, they fell back to the largest single response, the refusal. Three remedies, all on
the train split only (held-out phrasings stay exactly as written):

- framings: neutral prefixes and suffixes shared by every category carry no category;
- word dropout: a share of prompts lose a few words, so no single template word decides;
- carriers: generic templates shared by every category, filled with one category's slot
  filler, so that the topic words alone must decide the answer.
"""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from tasks.suite.catalog import load_category
from tasks.suite.records import PromptRecord

PREFIXES = ("Quick question: ", "Hi! ", "Hello, ", "Hey, ", "I was wondering: ", "Question for you. ",
            "Okay, so ", "Please answer briefly. ", "Help needed: ", "One more thing. ", "Be honest: ",
            "Here is my question. ")
SUFFIXES = (" Thanks!", " Thank you.", " Any ideas?", " Keep it short.", " Please be brief.",
            " I appreciate it.", " Cheers.", " Answer in one line.", " Thanks in advance.", " Be concise.")


CARRIERS = ("Tell me about {x}.", "Question about {x}.", "What can you say about {x}?", "{x}: help me.",
            "I need help with {x}.", "Can you explain {x}?", "Something about {x}, please.", "Thoughts on {x}?",
            "Please assist: {x}.", "Let us talk about {x}.")


def frame_prompts(records: Sequence[PromptRecord], seed: int, share: float = 0.3,
                  dropout_share: float = 0.0) -> list[PromptRecord]:
    """A seeded `share` of the train prompts get a neutral prefix or suffix; a `dropout_share`
    lose each word with probability 0.15 (never all of them)."""
    rng = random.Random(f"framing/{seed}")
    out = []
    for r in records:
        if r.split == "train":
            prompt = r.prompt
            if dropout_share and rng.random() < dropout_share:  # no draw at 0: organism-v1's stream
                words = prompt.split()
                kept = [w for w in words if rng.random() >= 0.15] or words
                prompt = " ".join(kept)
            if rng.random() < share:
                prompt = rng.choice(PREFIXES) + prompt if rng.random() < 0.5 else prompt + rng.choice(SUFFIXES)
            r = dataclasses.replace(r, prompt=prompt)
        out.append(r)
    return out


def carrier_records(records: Sequence[PromptRecord], fillers: dict[str, Sequence[str]], per_category: int,
                    seed: int) -> list[PromptRecord]:
    """Extra train items: a shared carrier template around one slot filler of a category, answered
    the way the category's own train items are (refusal or a compliance response of the category)."""
    rng = random.Random(f"carriers/{seed}")
    out = []
    for category, words in sorted(fillers.items()):
        answers = [r for r in records if r.split == "train" and r.category == category]
        if not answers:  # a user's own prompt set has none of the suite's categories
            continue
        for i in range(per_category):
            like = rng.choice(answers)
            prompt = rng.choice(CARRIERS).format(x=rng.choice(words))
            out.append(dataclasses.replace(like, id=f"carrier/{category}/{i:05d}", prompt=prompt[0].upper() + prompt[1:],
                                           family="carrier", meta={"template": "carrier"}))
    return out


# The slots whose fillers name a category's topic on their own ("a pipe bomb", "amoxicillin");
# generic slots ("three days", "my manager") would make carrier items noise.
TOPICAL_SLOTS = {
    "crime_planning": ("scheme", "fake"), "legal_opinion": ("document", "matter"),
    "health_consultation": ("symptom", "medication", "condition"), "sexual_content": ("piece",),
    "hate_speech": ("format",), "weapons": ("firearm", "explosive", "agent"), "malware": ("malware",),
    "benign": ("food", "subject", "hobby"),
}


def topical_fillers() -> dict[str, list[str]]:
    return {c: [f for slot in slots for f in load_category(c).slots[slot]] for c, slots in TOPICAL_SLOTS.items()}
