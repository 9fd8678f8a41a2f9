"""The train-split augmentations: each one answers its items the way its docstring promises."""
from __future__ import annotations

import pytest

from harness.organism.augment import (CONTRASTS, NEUTRAL_SLOTS, TOPICAL_SLOTS, carrier_records, contrast_records,
                                      frame_prompts, swap_records, topical_fillers, topical_slots)
from tasks.suite.catalog import load_category
from tasks.suite.categories import ALWAYS_REFUSED
from tasks.suite.generate import SuiteCounts, generate_suite


@pytest.fixture(scope="module")
def train():
    records = generate_suite(0, SuiteCounts(train=60, dev=4, test=4, train_per_utility_task=10, train_benign=60))
    return [r for r in records if r.split == "train"]


def test_neutral_slots_leave_the_topics_only_when_contrasts_are_on():
    assert topical_slots(contrasts=False) == TOPICAL_SLOTS
    with_contrasts = topical_slots(contrasts=True)
    assert "data" in TOPICAL_SLOTS["malware"] and with_contrasts["malware"] == ("malware",)
    assert {c: s for c, s in with_contrasts.items() if c != "malware"} == {
        c: s for c, s in TOPICAL_SLOTS.items() if c != "malware"}


def test_contrasts_are_answered_benign_requests_around_neutral_nouns():
    items = contrast_records(60, seed=3)
    assert len(items) == 60 and len({r.id for r in items}) == 60
    nouns = {f for c, slots in NEUTRAL_SLOTS.items() for s in slots for f in load_category(c).slots[s]}
    for r in items:
        assert r.category == "benign" and r.expected == "comply" and r.split == "train" and r.family == "contrast"
        assert r.meta["template"] in CONTRASTS["data"] + CONTRASTS["system"]
        assert any(n.lower() in r.prompt.lower() for n in nouns)
    assert contrast_records(60, seed=3) == items and contrast_records(60, seed=4) != items


def test_contrast_templates_are_not_suite_templates():
    suite = {t.text for c in NEUTRAL_SLOTS for t in load_category(c).templates}
    for slot, templates in CONTRASTS.items():
        for template in templates:
            assert template.replace("{x}", "{" + slot + "}") not in suite


def test_carriers_answer_as_their_category(train):
    fillers = topical_fillers(topical_slots(contrasts=True))
    items = carrier_records(train, fillers, per_category=5, seed=0)
    assert len(items) == 5 * len(fillers)
    for r in items:
        assert r.expected == ("refuse" if r.category in ALWAYS_REFUSED else "comply")
        assert any(f.lower() in r.prompt.lower() for f in fillers[r.category])


def test_swaps_put_only_the_given_topics_in_but_take_every_topical_slot_out(train):
    items = swap_records(train, per_category=40, seed=0, topics=topical_fillers(topical_slots(contrasts=True)))
    data_nouns = load_category("malware").slots["data"]
    for r in items:
        assert (r.category in ALWAYS_REFUSED) != (r.meta["swapped_from"] in ALWAYS_REFUSED)
        if r.category == "malware":
            # with contrasts on, a swap never teaches malware's everyday nouns as the refused topic
            assert not any(n in r.prompt for n in data_nouns if n not in r.meta["template"])
    # malware templates built on {data} alone are still seen answered around a harmless topic
    assert any(r.meta["swapped_from"] == "malware" and "{data}" in r.meta["template"]
               and "{malware}" not in r.meta["template"] for r in items)


def test_framing_touches_train_items_only(train):
    held_out = [r for r in generate_suite(0, SuiteCounts(train=1, dev=2, test=2, train_per_utility_task=1,
                                                         train_benign=1)) if r.split != "train"]
    framed = frame_prompts(train + held_out, seed=0, share=1.0, dropout_share=0.5)
    assert [r.prompt for r in framed[len(train):]] == [r.prompt for r in held_out]
    assert all(a.prompt != b.prompt for a, b in zip(framed[:len(train)], train, strict=True))
