"""`experiment.toml`: the pipeline's settings in one validated file, so that a real model on a GPU
machine is one config away from the demo. Unknown keys and wrong types fail with the key's name."""
from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cdelta.edit_config import EditConfig
from cdelta.errors import CdeltaError
from harness.edit_study import StudyConfig
from harness.pipeline import ARTIFACTS, BenchSettings, Pipeline
from harness.steer import SteerConfig
from harness.validation import first_problem
from tasks.suite.records import PromptRecord


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The study's own defaults, so that an experiment file that leaves a key out runs what `cdelta demo` and the
# benchmarks run.
_STUDY = StudyConfig()


class LocalizeSection(_Section):
    budget: float = Field(_STUDY.budget, gt=0, le=1, description="circuit parameter budget, a fraction of all parameters")
    method: Literal["EAP", "EAP-IG-inputs", "EAP-IG-activations"] = _STUDY.method
    ig_steps: int = Field(_STUDY.ig_steps, ge=1)
    pairs: int = Field(_STUDY.n_pairs, ge=2)
    mlp_groups: int = Field(_STUDY.mlp_groups, ge=1, description="split each MLP into this many nodes (a budget can afford parts)")
    cost_exponent: float = Field(_STUDY.cost_exponent, ge=0, allow_inf_nan=False,
                                 description="rank edges by |score| / (source parameters)^a under the budget")
    curve_points: int = Field(_STUDY.curve_points, ge=2, description="points on the circuit's faithfulness curve")


class EditSection(_Section):
    lr: float = Field(_STUDY.edit.lr, gt=0)
    steps: int = Field(_STUDY.edit.steps, ge=1)
    batch_size: int = Field(_STUDY.edit.batch_size, ge=1)
    decision_weight: float = Field(_STUDY.edit.decision_weight, gt=0, description="weight of the first response position in the retain KL")
    ks: list[float] = list(_STUDY.ks)
    retention_floor: float = Field(_STUDY.retention_floor, ge=0, le=1)
    max_refusal_drop: float = Field(_STUDY.max_refusal_drop, ge=0, le=1, description="fall in always-refused refusal a k may cause on dev")
    target_examples: int = Field(_STUDY.n_target, ge=1)
    retain_examples: int = Field(_STUDY.n_retain, ge=1)
    mine_rounds: int = Field(_STUDY.edit.mine_rounds, ge=0, description="rounds of mined retain examples (docs/deltatheta.md)")
    mine_size: int = Field(_STUDY.edit.mine_size, ge=1, description="examples each mining round adds to the retain set")
    mine_k: float = Field(_STUDY.edit.mine_k, description="scale of the previous ΔθC under which mining ranks examples")
    mine_pool: int = Field(_STUDY.mine_pool, ge=1, description="non-target prompts mining searches, beyond retain_examples")

    @field_validator("mine_k")
    @classmethod
    def _nonzero_finite(cls, k: float) -> float:
        if k == 0 or not math.isfinite(k):
            raise ValueError("must be a finite, non-zero scale")
        return k


class EvalSection(_Section):
    backends: list[str] = list(ARTIFACTS)
    tasks: list[Literal["category_refusal", "over_refusal", "utility"]] = ["category_refusal", "over_refusal", "utility"]
    limit: int | None = Field(None, ge=1, description="samples per task; none = the whole test split")
    parallel: int = Field(2, ge=1)
    batch_size: int = Field(64, ge=1, description="prompts per generation batch (transformers engine)")


class BenchSection(_Section):
    enabled: bool = True
    batch_sizes: list[int] = [1, 8, 32]
    repeats: int = Field(3, ge=1)
    max_new_tokens: int = Field(32, ge=1)
    prompts: int = Field(64, ge=1)
    schedule: Literal["rounds", "sequential"] | None = Field(
        None, description="rounds (paired, ratios vs noop) or sequential; none = rounds, sequential for vLLM on CUDA")


class Experiment(_Section):
    model: str = Field(description="a model folder (Hugging Face format) or an organism name")
    policy: str = "refuse:health_consultation"
    out: str = "reports/run"
    engine: Literal["hf", "vllm"] = "hf"
    device: str = Field("cpu", description="where the transformers engine runs every stage: cpu, cuda or cuda:N")
    seed: int = 0
    localize: LocalizeSection = LocalizeSection()
    edit: EditSection = EditSection()
    eval: EvalSection = EvalSection()
    bench: BenchSection = BenchSection()

    def pipeline(self, model: Path, records: list[PromptRecord], suite_fingerprint: str,
                 out: Path | None = None) -> Pipeline:
        category = self.policy.split(":", 1)[-1]
        study = StudyConfig(policy=self.policy, budget=self.localize.budget, n_pairs=self.localize.pairs,
                            method=self.localize.method, ig_steps=self.localize.ig_steps,
                            mlp_groups=self.localize.mlp_groups, cost_exponent=self.localize.cost_exponent,
                            curve_points=self.localize.curve_points,
                            edit=EditConfig(lr=self.edit.lr, steps=self.edit.steps, batch_size=self.edit.batch_size,
                                             decision_weight=self.edit.decision_weight,
                                             mine_rounds=self.edit.mine_rounds, mine_size=self.edit.mine_size,
                                             mine_k=self.edit.mine_k),
                            n_target=self.edit.target_examples, n_retain=self.edit.retain_examples,
                            mine_pool=self.edit.mine_pool,
                            ks=tuple(self.edit.ks), retention_floor=self.edit.retention_floor,
                            max_refusal_drop=self.edit.max_refusal_drop, seed=self.seed)
        bench = BenchSettings(tuple(self.bench.batch_sizes), self.bench.repeats, 1, self.bench.max_new_tokens,
                              self.bench.prompts, self.bench.schedule) if self.bench.enabled else None
        return Pipeline(model=model, records=records, suite_fingerprint=suite_fingerprint, study=study,
                        steer=SteerConfig(category=category, seed=self.seed), out=out or Path(self.out),
                        backends=tuple(self.eval.backends), tasks=tuple(self.eval.tasks), eval_limit=self.eval.limit,
                        parallel=self.eval.parallel, eval_batch_size=self.eval.batch_size, bench=bench,
                        engine=self.engine, device=self.device)


def read_experiment(path: Path) -> Experiment:
    """Parse and validate; the first problem is named with its key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CdeltaError(f"cannot read experiment {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CdeltaError(f"experiment {path} is not valid TOML: {exc}") from None
    try:
        return Experiment.model_validate(data)
    except ValidationError as exc:
        raise CdeltaError(f"experiment {path}: {first_problem(exc)}; see docs/run.md for every key") from None
