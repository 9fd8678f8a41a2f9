"""inspect-ai tasks and scorers over the embedded suite and the real benchmarks."""
from tasks.evals.definitions import TASKS, category_refusal, over_refusal, utility
from tasks.evals.scorers import model_refusal_judge, refusal_judge, utility_match

__all__ = ["TASKS", "category_refusal", "model_refusal_judge", "over_refusal", "refusal_judge", "utility",
           "utility_match"]
