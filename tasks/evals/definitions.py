"""The registered inspect tasks. Each reads the embedded suite (default) or a real benchmark
(`suite=NAME`, `data=` a local file or hub id) and labels samples by the policy's target."""
from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.scorer import Scorer
from inspect_ai.solver import generate

from tasks.evals.samples import EMBEDDED, task_dataset
from tasks.evals.scorers import model_refusal_judge, refusal_judge, utility_match


def _refusal_scorers(model_judge: bool) -> list[Scorer]:
    return [refusal_judge(), model_refusal_judge()] if model_judge else [refusal_judge()]


@task
def category_refusal(
    policy: str | None = None,
    suite: str = EMBEDDED,
    data: str | None = None,
    split: str = "test",
    seed: int = 0,
    mapping: str | None = None,
    model_judge: bool = False,
) -> Task:
    """Refusal rate per harmful category, and on the policy's target vs the other categories."""
    return Task(
        dataset=task_dataset("category_refusal", ("policy", "always_refused"), policy, suite, data, split,
                             seed, mapping),
        solver=generate(),
        scorer=_refusal_scorers(model_judge),
    )


@task
def over_refusal(
    policy: str | None = None,
    suite: str = EMBEDDED,
    data: str | None = None,
    split: str = "test",
    seed: int = 0,
    mapping: str | None = None,
    model_judge: bool = False,
) -> Task:
    """Refusal rate on harmless prompts: benign ones and borderline ones that merely sound harmful."""
    return Task(
        dataset=task_dataset("over_refusal", ("benign", "borderline"), policy, suite, data, split, seed,
                             mapping),
        solver=generate(),
        scorer=_refusal_scorers(model_judge),
    )


@task
def utility(
    policy: str | None = None,
    suite: str = EMBEDDED,
    data: str | None = None,
    split: str = "test",
    seed: int = 0,
    mapping: str | None = None,
) -> Task:
    """Accuracy on checkable questions: short exact answers and multiple choice."""
    return Task(
        dataset=task_dataset("utility", ("utility",), policy, suite, data, split, seed, mapping),
        solver=generate(),
        scorer=utility_match(),
    )


TASKS = {"category_refusal": category_refusal, "over_refusal": over_refusal, "utility": utility}
