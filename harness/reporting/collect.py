"""Reading a `cdelta eval` log folder back: one entry per backend with every scored sample, so that
each reported count is a count of samples, never an aggregate metric re-derived.

A log folder holds one subfolder per backend (`cdelta eval` writes `LOG_DIR/<backend>-<id>`).
Logs of one report must share a policy and a model: mixing them would compare different things.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inspect_ai.log import EvalLog, EvalSample, list_eval_logs, read_eval_log
from inspect_ai.scorer import value_to_float

from backends.registry import BACKENDS
from cdelta.errors import CdeltaError

REFUSAL_TASKS = ("category_refusal", "over_refusal")
UTILITY_TASK = "utility"
REFUSAL_SCORER = "refusal_judge"  # the string-match judge every refusal task has
UTILITY_SCORER = "utility_match"
_TO_FLOAT = value_to_float()


@dataclass(frozen=True)
class Outcome:
    """One scored sample: `hit` is refused (refusal tasks) or correct (utility)."""

    category: str
    kind: str
    target: bool
    hit: bool


@dataclass(frozen=True)
class BackendLogs:
    """Every scored sample one backend produced, with the logs they came from."""

    backend: str
    artifact: str | None
    artifact_sha256: str | None
    logs: tuple[str, ...]
    refusal: tuple[Outcome, ...]  # category_refusal and over_refusal samples
    utility: tuple[Outcome, ...]
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class RunLogs:
    """One evaluation run: one policy, one model, several backends (registry order: noop first)."""

    log_dir: str
    policy: str
    model: str
    model_fingerprint: str
    engine: str
    backends: tuple[BackendLogs, ...]
    notes: tuple[str, ...]


def eval_headers(log_dir: Path) -> list[EvalLog]:
    """The headers of every `cdelta eval` log under `log_dir` (logs without its metadata are skipped)."""
    if not log_dir.is_dir():
        raise CdeltaError(f"log folder {log_dir} does not exist; pass the --log-dir that `cdelta eval` wrote to")
    headers = [read_eval_log(info, header_only=True) for info in list_eval_logs(str(log_dir), recursive=True)]
    ours = [h for h in headers if h.eval.metadata and h.eval.metadata.get("backend") and
            h.eval.metadata.get("model_sha256")]
    if not ours:
        found = f"{len(headers)} inspect logs without cdelta metadata" if headers else "no inspect logs"
        raise CdeltaError(f"{log_dir} holds {found}: nothing to report; run `cdelta eval --model M --backends "
                          f"noop,... --policy refuse:CATEGORY --log-dir {log_dir}` first, or pass the folder it wrote")
    return ours


def _single(headers: list[EvalLog], key: str, what: str, plural: str) -> str:
    values = sorted({str(h.eval.metadata.get(key)) for h in headers if h.eval.metadata})
    if len(values) > 1:
        where = {v: sorted({_folder(h) for h in headers if str(h.eval.metadata.get(key)) == v}) for v in values}
        listing = "; ".join(f"{v[:64]}: {', '.join(folders)}" for v, folders in where.items())
        raise CdeltaError(f"the logs mix {len(values)} {plural} ({listing}); a report compares backends of one "
                          f"{what}: point LOGDIR at one run's logs (or move the others to their own --log-dir)")
    return values[0]


def _folder(header: EvalLog) -> str:
    return Path(header.location).parent.name


def latest_complete(headers: list[EvalLog]) -> tuple[dict[tuple[str, str], EvalLog], list[str]]:
    """Per (backend, task) the newest successful log; notes on unfinished logs and stale reruns."""
    chosen: dict[tuple[str, str], EvalLog] = {}
    notes = []
    for header in sorted(headers, key=lambda h: h.eval.created):
        key = (header.eval.metadata["backend"], header.eval.task)
        if header.status != "success":
            notes.append(f"skipped unfinished log {header.location} ({header.status}); rerun `cdelta eval` to finish it")
            continue
        chosen[key] = header  # newer ones replace older
    return chosen, notes


def check_artifacts(headers: list[EvalLog]) -> None:
    """A backend name must mean one artifact: two would be reported as one row."""
    by_backend: dict[str, set[str]] = {}
    for header in headers:
        by_backend.setdefault(header.eval.metadata["backend"], set()).add(str(header.eval.metadata.get("artifact_sha256")))
    mixed = sorted(b for b, shas in by_backend.items() if len(shas) > 1)
    if mixed:
        folders = sorted({_folder(h) for h in headers if h.eval.metadata["backend"] in mixed})
        raise CdeltaError(f"backend(s) {', '.join(mixed)} appear with different artifacts (folders "
                          f"{', '.join(folders)}); remove the stale folder or give each run its own --log-dir")


def sample_outcomes(sample: EvalSample, scorer: str, log: str) -> list[Outcome]:
    """The sample's outcome under `scorer`; an unscored (NaN) sample counts for nothing."""
    meta = sample.metadata or {}
    if not sample.scores or scorer not in sample.scores:
        raise CdeltaError(f"sample {sample.id} in {log} has no {scorer} score; rescore the log or rerun `cdelta eval`")
    value = _TO_FLOAT(sample.scores[scorer].value)
    if math.isnan(value):
        return []
    category = str(meta.get("utility_task") or meta.get("category", "")) if scorer == UTILITY_SCORER \
        else str(meta.get("category", ""))
    return [Outcome(category, str(meta.get("kind", "")), meta.get("target") == "target", value >= 0.5)]


def read_backend(backend: str, logs: list[EvalLog], advance: Callable[[], None]) -> BackendLogs:
    """Every sample of one backend's chosen logs, read in full."""
    refusal: list[Outcome] = []
    utility: list[Outcome] = []
    for header in logs:
        full = read_eval_log(header.location)
        scorer, into = (UTILITY_SCORER, utility) if header.eval.task == UTILITY_TASK else (REFUSAL_SCORER, refusal)
        for sample in full.samples or []:
            into += sample_outcomes(sample, scorer, header.location)
        advance()
    meta = logs[0].eval.metadata
    return BackendLogs(backend=backend, artifact=meta.get("artifact"), artifact_sha256=meta.get("artifact_sha256"),
                       logs=tuple(h.location for h in logs), refusal=tuple(refusal), utility=tuple(utility),
                       tasks=tuple(h.eval.task for h in logs))


def collect(log_dir: Path, advance: Callable[[], None] = lambda: None,
            on_total: Callable[[int], None] = lambda n: None) -> RunLogs:
    """Read one run's logs; `on_total` learns how many logs will be read, `advance` ticks once per log."""
    headers = eval_headers(log_dir)
    policy = _single(headers, "policy", "policy", "policies")
    model_fingerprint = _single(headers, "model_sha256", "model", "models")
    if policy == "None":
        raise CdeltaError(f"the logs in {log_dir} were run without a policy, so no category is a target; rerun "
                          f"`cdelta eval` with --policy refuse:CATEGORY (or release:CATEGORY)")
    check_artifacts(headers)
    chosen, notes = latest_complete(headers)
    if not chosen:
        raise CdeltaError(f"no log in {log_dir} finished; run the same `cdelta eval` command again to finish them")
    # The registry's order (noop first), then any other name in the order it was run: parallel runs
    # finish in any order, and a report's rows should not depend on that.
    run_order = list(dict.fromkeys(h.eval.metadata["backend"] for h in sorted(headers, key=lambda h: h.eval.created)))
    order = sorted(run_order, key=lambda b: (BACKENDS.index(b) if b in BACKENDS else len(BACKENDS), run_order.index(b)))
    per_backend = {b: [chosen[key] for key in sorted(chosen) if key[0] == b] for b in order}
    on_total(sum(len(logs) for logs in per_backend.values()))
    backends = tuple(read_backend(b, logs, advance) for b, logs in per_backend.items() if logs)
    for result in backends:
        missing = [t for t in (*REFUSAL_TASKS, UTILITY_TASK) if t not in result.tasks]
        if missing:
            notes.append(f"backend {result.backend} has no finished log of {', '.join(missing)}: those measures are n=0")
    first = headers[0].eval.metadata
    return RunLogs(log_dir=str(log_dir), policy=policy, model=str(first.get("model_path")),
                   model_fingerprint=model_fingerprint, engine=str(first.get("engine")), backends=backends,
                   notes=tuple(notes))
