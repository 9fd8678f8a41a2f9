"""Activation-steering baselines: the refusal direction (ActAdd) and conditional activation steering (CAST).

Model math only, on plain data (prompts as strings, token ids): which data to fit on and how well the
steered model behaves are the harness's business.
"""
from cdelta.steering.artifact import METHODS, ModelRef, SteeringArtifact, load_artifact, save_artifact
from cdelta.steering.condition import Condition, ConditionFit, condition_vectors, fit_condition, similarity
from cdelta.steering.hooks import POSITIONS, Positions, ablating, adding
from cdelta.steering.refusal import RefusalDirection, fit_refusal_direction, refusal_score
from cdelta.steering.residual import READS, Read, read_batch, read_mean, read_prompts

__all__ = [
    "METHODS", "POSITIONS", "READS", "Condition", "ConditionFit", "ModelRef", "Positions", "Read", "RefusalDirection",
    "SteeringArtifact", "ablating", "adding", "condition_vectors", "fit_condition", "fit_refusal_direction",
    "load_artifact", "read_batch", "read_mean", "read_prompts", "refusal_score", "save_artifact", "similarity",
]
