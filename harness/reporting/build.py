"""One run's logs and artifacts → the validated `report.json` model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdelta.circuit.artifact import Circuit
from cdelta.errors import CdeltaError
from cdelta.provenance import library_versions
from harness.reporting.collect import RunLogs
from harness.reporting.costs import break_even_requests, parameters_changed, serving, study_offline_seconds
from harness.reporting.measures import Behaviour, behaviour, off_target_change, retention
from harness.reporting.schema import BackendResult, BenchFile, BenignKLFile, ReportFile
from harness.reporting.score import SCORE_FORMULA
from tasks.errors import SuiteFormatError
from tasks.evals.targets import policy_targets

NOOP = "noop"


@dataclass(frozen=True)
class Artifacts:
    """The optional inputs of `cdelta report` besides the logs."""

    bench: BenchFile | None = None
    circuit: Circuit | None = None
    study: dict[str, Any] | None = None
    benign_kl: BenignKLFile | None = None


def check_artifacts_match(run: RunLogs, artifacts: Artifacts) -> list[str]:
    """A study of another policy would lend its timings to the wrong edit; a bench of another model
    is worth a note, since its fingerprint may be computed differently."""
    if artifacts.study is not None and artifacts.study["policy"] != run.policy:
        raise CdeltaError(f"the study is for policy {artifacts.study['policy']!r} but the logs for {run.policy!r}; "
                          f"pass the study.json of the same policy")
    notes = []
    if artifacts.bench is not None and artifacts.bench.model_fingerprint != run.model_fingerprint:
        notes.append(f"bench.json measured model {artifacts.bench.model} (fingerprint "
                     f"{artifacts.bench.model_fingerprint[:12]}), the logs {run.model} ({run.model_fingerprint[:12]})")
    if artifacts.benign_kl is not None and artifacts.benign_kl.model_fingerprint != run.model_fingerprint:
        raise CdeltaError(f"benign_kl.json measured model {artifacts.benign_kl.model} (fingerprint "
                          f"{artifacts.benign_kl.model_fingerprint[:12]}), the logs {run.model} "
                          f"({run.model_fingerprint[:12]}); pass the benign KL of the same model")
    return notes


def build_report(run: RunLogs, artifacts: Artifacts, name: str) -> ReportFile:
    """Every backend measured against the run's noop backend where there is one."""
    seen: dict[str, Behaviour] = {b.backend: behaviour(b) for b in run.backends}
    noop = seen.get(NOOP)
    names = list(seen)
    circuit_fraction = artifacts.circuit.param_fraction if artifacts.circuit is not None else None
    results = []
    for logs in run.backends:
        mine = seen[logs.backend]
        offline = study_offline_seconds(artifacts.study, logs.backend) if artifacts.study is not None else None
        results.append(BackendResult(
            backend=logs.backend,
            artifact=logs.artifact,
            refusal=mine.refusal,
            target_refusal=mine.target_refusal,
            off_target_change=off_target_change(mine, noop),
            over_refusal=mine.over_refusal,
            utility=mine.utility,
            utility_retention=retention(mine, noop),
            benign_kl=artifacts.benign_kl.backends.get(logs.backend) if artifacts.benign_kl is not None else None,
            parameters_changed=parameters_changed(logs.backend, logs.artifact, run.model, artifacts.study,
                                                  circuit_fraction),
            serving=serving(artifacts.bench, logs.backend),
            offline_seconds=offline,
            break_even_requests=break_even_requests(logs.backend, offline, artifacts.bench, names),
        ))
    try:
        targets = sorted(policy_targets(run.policy))
    except SuiteFormatError as exc:
        raise CdeltaError(f"the logs' policy cannot be read: {exc}; rerun `cdelta eval` with a valid --policy") from None
    return ReportFile(
        run=name, policy=run.policy, targets=targets, model=run.model,
        model_fingerprint=run.model_fingerprint, engine=run.engine, log_dir=run.log_dir,
        logs=[log for b in run.backends for log in b.logs], selectivity_score=SCORE_FORMULA, backends=results,
        versions=library_versions("inspect_ai", "matplotlib"),
    )
