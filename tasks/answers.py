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

    For multiple choice, "B) apple" also counts as "B".
    """
    got, want = extract_answer(response), normalise(answer)
    return got == want or (len(want) == 1 and re.match(rf"^{re.escape(want)}\)", got) is not None)
