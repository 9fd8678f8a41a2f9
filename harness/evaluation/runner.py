"""Runs inspect tasks × backends into one log folder per backend: one engine per backend, shared
by its tasks; every log tagged with backend, policy and fingerprints; a rerun resumes.

Backends run one after another, or `parallel` at a time in their own processes: inspect's event
loop and a small model's generation loop are both Python, so within one process they take turns
on the interpreter lock, and only separate processes keep two cores busy.

Resuming is inspect's `eval_set`: a task whose log is complete is not run again, and a task
whose run was interrupted (killed or failed) is rerun reusing every sample its log already holds.
"""
from __future__ import annotations

import hashlib
import inspect as pyinspect
import multiprocessing
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspect_ai import Task, eval_set
from inspect_ai.log import EvalLog, read_eval_log
from inspect_ai.model import GenerateConfig, get_model
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from backends.generation import GenerationParams
from cdelta.errors import CdeltaError
from backends.registry import BACKENDS, check_device, check_engine
from harness.evaluation import provider  # noqa: F401  registers `cdelta/<backend>` with inspect
from harness.evaluation.fingerprints import path_fingerprint
from tasks.errors import SuiteFormatError
from tasks.evals import TASKS
from tasks.evals.samples import EMBEDDED

DEFAULT_TASKS = tuple(TASKS)


@dataclass(frozen=True)
class EvalRequest:
    """What `cdelta eval` runs: every task on every backend of one model."""

    model: Path
    backends: tuple[str, ...]
    log_dir: Path
    tasks: tuple[str, ...] = DEFAULT_TASKS
    policy: str | None = None
    artifacts: Mapping[str, Path] = field(default_factory=dict)
    suite: str = EMBEDDED
    data: str | None = None
    split: str = "test"
    limit: int | None = None
    engine: str = "hf"
    device: str = "cpu"  # the transformers engine's; vLLM runs where its build runs
    batch_size: int = GenerationParams().batch_size
    max_tokens: int = GenerationParams().max_new_tokens
    grader: str | None = None


@dataclass(frozen=True)
class BackendRun:
    """One backend's identity in the logs: its tags, metadata and log folder."""

    backend: str
    artifact: Path | None
    tags: list[str]
    metadata: dict[str, Any]
    log_dir: Path


def backend_runs(request: EvalRequest) -> list[BackendRun]:
    """Fingerprint the model and each artifact once; a changed artifact gets a fresh log folder."""
    unknown = [b for b in request.backends if b not in BACKENDS]
    if unknown:  # before any fingerprint is taken or model loaded
        raise CdeltaError(f"unknown backend(s) {', '.join(unknown)}; known backends: {', '.join(BACKENDS)}")
    unused = set(request.artifacts) - set(request.backends)
    if unused:
        raise CdeltaError(f"artifacts given for backends not run: {', '.join(sorted(unused))}")
    model_sha = path_fingerprint(request.model)
    runs = []
    for backend in request.backends:
        artifact = request.artifacts.get(backend)
        artifact_sha = path_fingerprint(artifact) if artifact is not None else None
        identity = hashlib.sha256(f"{model_sha}:{artifact_sha}".encode()).hexdigest()[:12]
        metadata = {
            "backend": backend,
            "policy": request.policy,
            "model_path": str(request.model),
            "model_sha256": model_sha,
            "artifact": str(artifact) if artifact else None,
            "artifact_sha256": artifact_sha,
            "engine": request.engine,
            "generation": {"max_new_tokens": request.max_tokens, "temperature": 0.0,
                           "batch_size": request.batch_size},
        }
        tags = [f"backend:{backend}", f"policy:{request.policy or 'none'}", f"model:{model_sha[:12]}",
                f"artifact:{artifact_sha[:12] if artifact_sha else 'none'}"]
        runs.append(BackendRun(backend, artifact, tags, metadata, request.log_dir / f"{backend}-{identity}"))
    return runs


def build_tasks(request: EvalRequest) -> list[Task]:
    """The requested tasks with the request's suite and policy (each takes the arguments it has)."""
    unknown = [t for t in request.tasks if t not in TASKS]
    if unknown:
        raise CdeltaError(f"unknown task(s) {', '.join(unknown)}; known tasks: {', '.join(TASKS)}")
    offered = {"policy": request.policy, "suite": request.suite, "data": request.data, "split": request.split,
               "model_judge": request.grader is not None}
    tasks = []
    for name in request.tasks:
        accepted = pyinspect.signature(TASKS[name]).parameters
        try:
            tasks.append(TASKS[name](**{k: v for k, v in offered.items() if k in accepted}))
        except SuiteFormatError as error:
            raise CdeltaError(f"task {name}: {error}") from error
    return tasks


def run_backend(request: EvalRequest, run: BackendRun, tasks: list[Task], display: str) -> list[EvalLog]:
    """All tasks on one backend: its engine loads once and serves every task."""
    config = GenerateConfig(max_tokens=request.max_tokens, temperature=0.0, max_connections=2 * request.batch_size)
    model_args = {"model_path": str(request.model), "engine": request.engine, "device": request.device,
                  "batch_size": request.batch_size}
    if run.artifact is not None:
        model_args["artifact"] = str(run.artifact)
    with get_model(f"cdelta/{run.backend}", config=config, memoize=False, **model_args) as model:
        success, logs = eval_set(
            tasks,
            log_dir=str(run.log_dir),
            model=model,
            model_roles={"grader": request.grader} if request.grader else None,
            tags=run.tags,
            metadata=run.metadata,
            limit=request.limit,
            display=display,  # type: ignore[arg-type]
            retry_attempts=0,
            retry_immediate=False,
            log_dir_allow_dirty=True,
        )
    if not success:
        failed = [f"{log.eval.task}: {log.error.message if log.error else log.status}" for log in logs
                  if log.status != "success"]
        raise CdeltaError(f"backend {run.backend} did not finish ({'; '.join(failed)}); "
                          f"logs in {run.log_dir}; run the same command again to resume")
    return logs


def _backend_in_process(request: EvalRequest, run: BackendRun, threads: int) -> list[str]:
    """A worker process: one backend, no display; its logs come back by location."""
    import torch

    torch.set_num_threads(threads)
    return [log.location for log in run_backend(request, run, build_tasks(request), display="none")]


def _run_parallel(request: EvalRequest, runs: list[BackendRun], parallel: int, console: Console) -> list[EvalLog]:
    threads = max(1, (os.cpu_count() or 1) // parallel)
    done: dict[str, list[str]] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with ProcessPoolExecutor(parallel, mp_context=multiprocessing.get_context("spawn")) as pool, \
            Progress(*columns, console=console) as progress:
        bar = progress.add_task(f"backends, {parallel} at a time", total=len(runs))
        futures = {pool.submit(_backend_in_process, request, run, threads): run for run in runs}
        for future in as_completed(futures):
            run = futures[future]
            done[run.backend] = future.result()
            progress.console.print(f"[green]done[/] {run.backend} → {run.log_dir}")
            progress.advance(bar)
    return [read_eval_log(location, header_only=True) for run in runs for location in done[run.backend]]


def run_eval(request: EvalRequest, display: str = "rich", console: Console | None = None,
             parallel: int = 1) -> list[EvalLog]:
    """Every backend, one engine per backend; returns the logs of this run in backend order."""
    console = console or Console()
    check_engine(request.engine)
    check_device(request.device)
    tasks = build_tasks(request)  # a malformed suite fails before any model loads
    runs = backend_runs(request)
    if parallel > 1 and len(runs) > 1 and request.engine == "vllm":
        raise CdeltaError("--parallel runs backends in pool processes, which may not start processes of their own "
                          "as vLLM does: use --parallel 1 with --engine vllm (vLLM batches across cores itself)")
    if parallel > 1 and len(runs) > 1 and request.device != "cpu":
        raise CdeltaError(f"--parallel runs one model per pool process; on {request.device} use --parallel 1 "
                          "(the GPU batches within a backend)")
    if parallel > 1 and len(runs) > 1:
        return _run_parallel(request, runs, min(parallel, len(runs)), console)
    logs: list[EvalLog] = []
    for index, run in enumerate(runs, start=1):
        console.print(f"[bold]backend {index}/{len(runs)}: {run.backend}[/] → {run.log_dir}", soft_wrap=True)
        logs += run_backend(request, run, tasks, display)
    return logs
