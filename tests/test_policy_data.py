"""From the suite to the method's inputs: the dev subsample the k sweep and the steering fit read."""
from __future__ import annotations

from collections import Counter

from harness.policy_data import subsample
from tasks.suite.generate import SuiteCounts, generate_suite


def test_subsample_caps_each_category_and_takes_more_utility_items_when_asked() -> None:
    records = generate_suite(0, SuiteCounts(train=10, train_per_utility_task=5, train_benign=10))
    dev = [r for r in records if r.split == "dev"]
    available = Counter(r.category for r in dev)
    plain = Counter(r.category for r in subsample(records, "dev", 5, seed=0))
    assert plain == {c: min(5, n) for c, n in available.items()}
    wide = subsample(records, "dev", 5, seed=0, wider={"utility": 40})
    assert Counter(r.category for r in wide)["utility"] == min(40, available["utility"]) > 5
    # the other categories are drawn exactly as before: utility comes last
    assert [r.id for r in wide if r.category != "utility"] == [
        r.id for r in subsample(records, "dev", 5, seed=0) if r.category != "utility"]
    assert subsample(records, "dev", 5, seed=0) == subsample(records, "dev", 5, seed=0)


def test_a_release_study_measures_more_always_refused_dev_prompts() -> None:
    from cdelta.policy import parse_policy
    from harness.edit_study import StudyConfig, dev_counts
    from tasks.suite.categories import CATEGORIES

    cfg = StudyConfig()
    assert dev_counts(parse_policy("refuse:crime_planning", list(CATEGORIES)), cfg) == {"utility": 200}
    assert dev_counts(parse_policy("release:borderline", list(CATEGORIES)), cfg) == {
        "utility": 200, "weapons": 100, "malware": 100}
