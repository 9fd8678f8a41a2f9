"""What inspect loads through the `inspect_ai` entry point named `cdelta`: importing registers the
`cdelta` model provider and the tasks (`inspect eval cdelta/category_refusal --model cdelta/noop ...`)."""
from harness.evaluation.provider import CdeltaModelAPI
from tasks.evals import category_refusal, over_refusal, utility

__all__ = ["CdeltaModelAPI", "category_refusal", "over_refusal", "utility"]
