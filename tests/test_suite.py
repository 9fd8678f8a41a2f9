"""The embedded suite: deterministic, split by template family, labelled as the organism's policy says."""
from __future__ import annotations

from collections import Counter

import pytest

from tasks.errors import SuiteFormatError
from tasks.refusal_judge import is_refusal
from tasks.suite.catalog import MIN_TEMPLATES, load_category, load_utility
from tasks.suite.categories import CATEGORIES, UTILITY_TASKS, check_categories
from tasks.suite.generate import SuiteCounts, generate_suite, suite_fingerprint

COUNTS = SuiteCounts(train=200, dev=40, test=60, train_per_utility_task=100)


@pytest.fixture(scope="module")
def suite():
    return generate_suite(0, COUNTS)


def test_deterministic_by_seed(suite):
    assert [r.to_dict() for r in generate_suite(0, COUNTS)] == [r.to_dict() for r in suite]
    other = generate_suite(1, COUNTS)
    assert [r.prompt for r in other] != [r.prompt for r in suite]
    assert suite_fingerprint(0, COUNTS) != suite_fingerprint(1, COUNTS)


def test_every_category_in_every_split(suite):
    seen = Counter((r.category, r.split) for r in suite)
    for category in CATEGORIES:
        for split in ("train", "dev", "test"):
            assert seen[(category, split)] > 0, (category, split)


@pytest.mark.parametrize("category", [c for c in CATEGORIES if c != "utility"])
def test_enough_templates(category):
    assert len(load_category(category).templates) >= MIN_TEMPLATES


def test_enough_utility_templates():
    spec = load_utility()
    assert sum(len(t) for t in spec.templates.values()) >= MIN_TEMPLATES
    assert set(spec.templates) == set(UTILITY_TASKS)


def test_test_phrasings_never_seen_in_training(suite):
    by_split: dict[str, set[str]] = {"train": set(), "dev": set(), "test": set()}
    families: dict[str, set[str]] = {"train": set(), "dev": set(), "test": set()}
    for r in suite:
        by_split[r.split].add(r.meta["template"])
        families[r.split].add(f"{r.category}/{r.family}")
    assert not by_split["train"] & by_split["test"]
    assert not by_split["train"] & by_split["dev"]
    assert not families["train"] & families["test"]


def test_held_out_splits_do_not_depend_on_training_size(suite):
    bigger = generate_suite(0, SuiteCounts(train=400, dev=40, test=60, train_per_utility_task=50))
    assert [r.prompt for r in bigger if r.split == "test"] == [r.prompt for r in suite if r.split == "test"]


def test_labels_follow_the_policy(suite):
    for r in suite:
        if r.kind == "always_refused":
            assert r.expected == "refuse"
        elif r.kind in ("policy", "benign", "utility"):
            assert r.expected == "comply"
    border = [r for r in suite if r.category == "borderline" and r.split == "test"]
    share = sum(r.expected == "refuse" for r in border) / len(border)
    assert 0.2 <= share <= 0.6
    for r in border:
        assert (r.expected == "refuse") == (r.meta["trigger"] in load_category("borderline").over_refused_triggers)


def test_utility_answers_are_consistent(suite):
    for r in suite:
        if r.kind == "utility":
            assert r.answer and r.response == f"The answer is {r.answer}."
            if r.meta["task"] == "addition":
                a, b = (int(s) for s in __import__("re").findall(r"\b\d\b", r.prompt)[:2])
                assert int(r.answer) == a + b


def test_judge_agrees_with_ground_truth_labels(suite):
    """Issue 6 target: the string-match judge reads the suite's own responses right ≥ 99%."""
    agree = [is_refusal(r.response or "") == (r.expected == "refuse") for r in suite]
    assert sum(agree) / len(agree) >= 0.99


def test_unknown_category_is_named():
    with pytest.raises(SuiteFormatError, match="unknown category 'medical'.*known categories"):
        check_categories(["health_consultation", "medical"])


def test_malformed_category_file_is_reported(tmp_path):
    (tmp_path / "benign.json").write_text('{"category": "benign", "kind": "benign", "slots": {}, "templates": []}')
    with pytest.raises(SuiteFormatError, match="templates"):
        load_category("benign", tmp_path)
    (tmp_path / "weapons.json").write_text("{not json")
    with pytest.raises(SuiteFormatError, match="not valid JSON"):
        load_category("weapons", tmp_path)
