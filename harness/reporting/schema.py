"""The on-disk shapes of `bench.json` and `report.json`: what `cdelta bench` and `cdelta report`
write and what `cdelta check` and `cdelta leaderboard` read. Versioned, validated on read, so a
file from another version or a hand-edited one fails with a message instead of a wrong number."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cdelta.errors import CdeltaError
from harness.validation import first_problem

REPORT_SCHEMA = 1
BENCH_SCHEMA = 2
BENIGN_KL_SCHEMA = 1


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateStat(Strict):
    """A rate with its sample count and Wilson 95% interval (harness.stats.Rate)."""

    value: float
    k: int
    n: int
    ci95: tuple[float, float]


class MeanStat(Strict):
    """A mean with its sample count and, where defined, a 95% interval."""

    value: float
    n: int
    ci95: tuple[float, float] | None = None


# ----- bench.json -------------------------------------------------------------------------------

class BenchPoint(Strict):
    """One backend at one batch size: medians over `repeats` timed runs after warm-up; against noop at the
    same batch size, medians over rounds of the paired (same-round) runs, None for noop and without noop."""

    batch_size: int
    repeats: int
    output_tokens_per_s: float
    latency_p50_s: float
    latency_p95_s: float
    ttft_p50_s: float | None  # time to first token; None where the engine cannot observe it
    peak_memory_mb: float
    hook_overhead_per_step_ms: float | None
    # Defaults only so that report.json files written before bench schema 2 still read; bench.json always has them.
    throughput_ratio_vs_noop: float | None = None  # tokens/s ÷ noop's, per round
    throughput_ratio_range: tuple[float, float] | None = None  # [min, max] of that ratio over the rounds


class BenchBackend(Strict):
    backend: str
    artifact: str | None
    points: list[BenchPoint]


class BenchFile(Strict):
    schema_version: Literal[2] = Field(BENCH_SCHEMA, alias="schema")
    schedule: Literal["rounds", "sequential"]  # rounds: ratios vs noop are paired; sequential: unpaired
    engine: Literal["hf", "vllm"]
    model: str
    model_fingerprint: str
    shape: str | None = None  # set when the model is a randomly initialised shape (`--shape`)
    prompts: int
    max_new_tokens: int
    threads: int
    device: str
    versions: dict[str, str]
    backends: list[BenchBackend]

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ----- benign_kl.json ---------------------------------------------------------------------------

class BenignKLFile(Strict):
    """KL(noop ‖ backend) of the first response token's distribution, in nats, over benign prompts."""

    schema_version: Literal[1] = Field(BENIGN_KL_SCHEMA, alias="schema")
    model: str
    model_fingerprint: str
    prompts: int
    split: str
    backends: dict[str, MeanStat]
    versions: dict[str, str]

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ----- report.json ------------------------------------------------------------------------------

class BackendResult(Strict):
    """What one backend did, against the noop backend of the same run where it is needed."""

    backend: str
    artifact: str | None
    refusal: dict[str, RateStat]  # per category of the suite
    target_refusal: RateStat  # pooled over the policy's target categories
    off_target_change: MeanStat  # mean |Δ refusal vs noop| over non-target policy categories
    over_refusal: RateStat  # benign + borderline pooled
    utility: RateStat
    utility_retention: float | None  # utility / noop's utility
    benign_kl: MeanStat | None = None  # mean first-response-token KL(noop ‖ backend) on benign prompts, where measured
    parameters_changed: float | None = None  # fraction of parameters an edit changes; None for hooks
    serving: BenchBackend | None = None
    offline_seconds: float | None = None  # one-time cost (localize + edit) of a weight edit
    break_even_requests: dict[str, float | None] = Field(default_factory=dict)  # vs each steering backend


class ReportFile(Strict):
    schema_version: Literal[1] = Field(REPORT_SCHEMA, alias="schema")
    run: str
    policy: str
    targets: list[str]
    model: str
    model_fingerprint: str
    engine: str
    log_dir: str
    logs: list[str]
    selectivity_score: str  # the stated formula the leaderboard ranks by
    backends: list[BackendResult]
    versions: dict[str, str]

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def backend(self, name: str) -> BackendResult:
        for result in self.backends:
            if result.backend == name:
                return result
        raise CdeltaError(f"report {self.run} has no backend {name!r}; it has {[b.backend for b in self.backends]}")


Model = TypeVar("Model", bound=BaseModel)


def read_json_model(path: Path, model: type[Model], what: str) -> Model:
    """Load and validate one artifact; every failure names the file and what to do."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CdeltaError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CdeltaError(f"{what} {path} is not JSON ({exc}); regenerate it") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CdeltaError(f"{what} {path} does not match schema {model.__name__}: {first_problem(exc)}; "
                          "regenerate it with this version of cdelta") from None


def dump_json_model(model: BaseModel) -> str:
    return json.dumps(model.model_dump(mode="json", by_alias=True), indent=2) + "\n"
