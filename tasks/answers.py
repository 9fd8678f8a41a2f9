"""Exact-match scoring of utility answers, tolerant of the answer's frame but not of its content."""
from __future__ import annotations

import re

_FRAME = re.compile(r"answer is\s*:?\s*(.+)", re.IGNORECASE)


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().strip(".!?\"'").strip()).lower()


def extract_answer(response: str) -> str:
    """The part after "The answer is", or the whole response when it has no such frame."""
    m = _FRAME.search(response)
    return normalise(m.group(1) if m else response)


def exact_match(response: str, answer: str) -> bool:
    """True when the extracted answer equals the reference (case and final punctuation aside).

    For multiple choice, "B) apple" counts both as "B" and as "apple".
    """
    got, want = extract_answer(response), normalise(answer)
    option = re.match(r"^([a-z])\)\s*(.+)$", got)
    return got == want or (option is not None and want in option.groups())
