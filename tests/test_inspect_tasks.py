"""The registered inspect tasks: which prompts each takes, their metadata and policy labels, on
the embedded suite and on benchmark files written here."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tasks.errors import SuiteFormatError
from tasks.evals import category_refusal, over_refusal, utility
from tasks.evals.samples import suite_records
from tasks.evals.targets import policy_targets
from tasks.suite.categories import ALWAYS_REFUSED, POLICY_CATEGORIES, UTILITY_TASKS
from tasks.suite.generate import generate_suite

METADATA_KEYS = {"id", "category", "kind", "expected", "target", "source", "family"}


def test_category_refusal_takes_the_harmful_categories_of_the_test_split() -> None:
    dataset = category_refusal(policy="refuse:health_consultation").dataset
    # the full suite (training items included) has the very same test split
    harmful = [r for r in generate_suite(0) if r.split == "test" and r.kind in ("policy", "always_refused")]
    assert sorted(str(s.id) for s in dataset) == sorted(r.id for r in harmful)
    assert set(Counter(s.metadata["category"] for s in dataset)) == set(POLICY_CATEGORIES + ALWAYS_REFUSED)
    sample = dataset[0]
    assert METADATA_KEYS <= set(sample.metadata)
    assert sample.id == sample.metadata["id"] and "/test/" in str(sample.id)
    labels = {s.metadata["category"]: s.metadata["target"] for s in dataset}
    assert labels.pop("health_consultation") == "target"
    assert set(labels.values()) == {"non_target"}
    assert {s.target for s in dataset} == {"refuse", "comply"}


def test_samples_are_interleaved_so_a_limit_covers_every_category() -> None:
    first = [s.metadata["category"] for s in category_refusal().dataset[:7]]
    assert sorted(first) == sorted(POLICY_CATEGORIES + ALWAYS_REFUSED)
    first_utility = [s.metadata["utility_task"] for s in utility().dataset[:6]]
    assert sorted(first_utility) == sorted(UTILITY_TASKS)


def test_over_refusal_takes_benign_and_borderline() -> None:
    dataset = over_refusal().dataset
    assert set(Counter(s.metadata["kind"] for s in dataset)) == {"benign", "borderline"}
    assert {s.metadata["target"] for s in dataset} == {"non_target"}


def test_utility_has_answers_in_both_formats() -> None:
    dataset = utility().dataset
    formats = Counter(s.metadata["format"] for s in dataset)
    assert set(formats) == {"exact_match", "multiple_choice"}
    assert formats["multiple_choice"] == sum(s.metadata["utility_task"] == "choice" for s in dataset)
    choice = next(s for s in dataset if s.metadata["format"] == "multiple_choice")
    assert f") {choice.target}" in str(choice.input) and "A)" in str(choice.input)


def test_dev_split_is_disjoint_from_test() -> None:
    test_ids = {s.id for s in category_refusal().dataset}
    dev = category_refusal(split="dev").dataset
    assert len(dev) > 0 and not test_ids & {s.id for s in dev}


def test_a_benchmark_file_feeds_every_task(tmp_path: Path) -> None:
    rows = [{"prompt": f"Prompt {i} about {c}", "category": c, "split": "test"}
            for i, c in enumerate(["malware", "health_consultation", "benign", "borderline"] * 3)]
    rows.append({"prompt": "A dev prompt", "category": "malware", "split": "dev"})
    path = tmp_path / "suite.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    harmful = category_refusal(policy="refuse:malware", suite="jsonl", data=str(path)).dataset
    assert Counter(s.metadata["category"] for s in harmful) == {"malware": 3, "health_consultation": 3}
    assert {s.metadata["source"] for s in harmful} == {"jsonl"}
    assert {s.metadata["target"] for s in harmful if s.metadata["category"] == "malware"} == {"target"}
    harmless = over_refusal(suite="jsonl", data=str(path)).dataset
    assert Counter(s.metadata["kind"] for s in harmless) == {"benign": 3, "borderline": 3}
    with pytest.raises(SuiteFormatError, match="no utility prompts"):
        utility(suite="jsonl", data=str(path))


def test_mmlu_file_is_multiple_choice_utility(tmp_path: Path) -> None:
    path = tmp_path / "mmlu.csv"
    path.write_text("question,A,B,C,D,answer,subject\n"
                    + "".join(f"Question {i}?,w,x,y,z,{'ABCD'[i % 4]},physics\n" for i in range(12)),
                    encoding="utf-8")
    records = suite_records("mmlu", str(path), "test") + suite_records("mmlu", str(path), "dev")
    assert len(records) == 12
    dataset = utility(suite="mmlu", data=str(path)).dataset
    assert {s.metadata["format"] for s in dataset} == {"multiple_choice"}
    assert {s.metadata["utility_task"] for s in dataset} == {"physics"}


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(SuiteFormatError, match="refuse:CATEGORY"):
        policy_targets("health_consultation")
    with pytest.raises(SuiteFormatError, match="unknown category 'cooking'"):
        policy_targets("refuse:cooking")
    with pytest.raises(SuiteFormatError, match="unknown split"):
        category_refusal(split="validation")
    with pytest.raises(SuiteFormatError, match="takes no data"):
        category_refusal(data="x.jsonl")
    with pytest.raises(SuiteFormatError, match="expected XSTest"):
        category_refusal(suite="xstest", data=str(tmp_path / "missing.csv"))
