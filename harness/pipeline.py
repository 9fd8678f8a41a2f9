"""The whole comparison on one model and one policy, as `cdelta demo` and `cdelta run` execute it:

study (EAP-IG circuit, ΔθC on the circuit and on the dense and random ablations, k on dev) →
steering baselines (ActAdd, CAST) → inspect evaluation of every backend → benign KL → serving bench
→ report.

Each stage writes into its own folder under `out` with a `stage.json` holding a key of everything
it depends on (model fingerprint, suite fingerprint, settings, upstream keys); a rerun whose key
matches reuses the folder, so an interrupted pipeline resumes at the stage it stopped in.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from backends.hf_engine import HFEngine
from backends.registry import check_device, check_engine
from cdelta.atomic import atomic_write_text
from cdelta.errors import CdeltaError
from cdelta.provenance import library_versions
from harness.bench.prompts import check_batch_sizes
from harness.bench.runner import BenchRequest, run_bench
from harness.edit_study import StudyConfig, run_study
from harness.evaluation.fingerprints import path_fingerprint
from harness.evaluation.runner import DEFAULT_TASKS, EvalRequest, run_eval
from harness.reporting.cli import make_report
from harness.reporting.schema import BENCH_SCHEMA, dump_json_model
from harness.steer import SteerConfig, fit_steering, write_artifacts
from harness.study_report import write_report
from tasks.suite.records import PromptRecord

STAGE_FILE = "stage.json"
# Backends the pipeline can evaluate, and the artifact each one takes from the earlier stages.
ARTIFACTS = {"noop": None, "actadd": "steering/actadd.json", "cast": "steering/cast.json",
             "cdelta": "study/patch_circuit.safetensors", "dense": "study/patch_dense.safetensors",
             "random": "study/patch_random.safetensors"}
ABLATION_VARIANTS = {"cdelta": "circuit", "dense": "dense", "random": "random"}
BENIGN_KL_PROMPTS = 200  # benign test prompts the benign KL is averaged over


@dataclass(frozen=True)
class BenchSettings:
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    repeats: int = 3
    warmup: int = 1
    max_new_tokens: int = 32
    prompts: int = 64
    schedule: str | None = None  # rounds or sequential; None: the engine's default (harness.bench.runner)

    def __post_init__(self) -> None:
        check_batch_sizes(self.batch_sizes, self.prompts)  # here, not after the evaluation's minutes


@dataclass(frozen=True)
class Pipeline:
    """One comparison: which model, policy, settings and backends, and where it goes."""

    model: Path
    records: list[PromptRecord]
    suite_fingerprint: str
    study: StudyConfig
    steer: SteerConfig
    out: Path
    backends: tuple[str, ...] = tuple(ARTIFACTS)
    tasks: tuple[str, ...] = DEFAULT_TASKS
    eval_limit: int | None = None
    parallel: int = 2
    eval_batch_size: int = 64  # on the organism, 64 prompts a batch evaluate ~10% faster than 32 (docs/run.md)
    bench: BenchSettings | None = field(default_factory=BenchSettings)
    engine: str = "hf"  # the evaluation's and the bench's; fitting and measuring KL need transformers
    device: str = "cpu"  # where the transformers engine runs every stage: cpu, cuda or cuda:N

    def __post_init__(self) -> None:
        unknown = [b for b in self.backends if b not in ARTIFACTS]
        if unknown:
            raise CdeltaError(f"the pipeline cannot run backends {unknown}; it runs {', '.join(ARTIFACTS)}")
        if "noop" not in self.backends:
            raise CdeltaError("the pipeline needs the noop backend: every change is measured against it")
        if self.study.policy.startswith("release:") and {"actadd", "cast"} & set(self.backends):
            raise CdeltaError("the steering baselines add refusal; a release: policy compares the edit with noop "
                              "and its ablations only: drop actadd and cast from the backends")
        check_device(self.device)
        check_engine(self.engine)


def release_gpu_cache() -> None:
    """Hand the memory torch's allocator still caches from the transformers stages back to the GPU."""
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache()


def _digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _stamped(stamp: Path, digest: str) -> bool:
    """Whether `stamp` records the same inputs' digest."""
    return stamp.is_file() and json.loads(stamp.read_text()).get("key") == digest


def _stage(folder: Path, name: str, key: dict[str, Any], run: Callable[[], None], console: Console) -> str:
    """Run a stage unless `folder` holds its output for the same key; returns the key's digest."""
    digest = _digest(key)
    stamp = folder / STAGE_FILE
    if _stamped(stamp, digest):
        console.print(f"[green]✓ {name}[/]: reusing {folder} (same inputs)")
        return digest
    console.rule(f"[bold]{name}")
    began = time.perf_counter()
    run()
    seconds = round(time.perf_counter() - began, 1)
    atomic_write_text(stamp, json.dumps({"stage": name, "key": digest, "inputs": key, "seconds": seconds,
                                         "versions": library_versions()}, indent=1, default=str) + "\n")
    console.print(f"[green]✓ {name}[/] in {seconds:.0f} s")
    return digest


def _fresh_logs(log_dir: Path, key: dict[str, Any], console: Console) -> None:
    """Logs of earlier artifacts or settings would mix into the report: clear them when the inputs
    changed; with the same inputs keep them, so inspect resumes the unfinished tasks."""
    stamp = log_dir.with_name(f"{log_dir.name}.{STAGE_FILE}")  # beside the logs: inspect reads every file in them
    digest = _digest(key)
    if log_dir.exists() and not _stamped(stamp, digest):
        console.print(f"inputs changed since the logs in {log_dir} were written: starting them afresh")
        shutil.rmtree(log_dir)
    atomic_write_text(stamp, json.dumps({"stage": "evaluation", "key": digest, "inputs": key}, indent=1,
                                        default=str) + "\n")


def run_pipeline(p: Pipeline, console: Console | None = None) -> Path:
    """Every stage in order; returns the report folder."""
    console = console or Console()
    p.out.mkdir(parents=True, exist_ok=True)
    base = {"model": path_fingerprint(p.model), "suite": p.suite_fingerprint, "device": p.device}
    edits = [b for b in p.backends if b in ABLATION_VARIANTS]
    steering = [b for b in p.backends if b in ("actadd", "cast")]
    keys: dict[str, str] = {}

    if edits:
        variants = tuple(ABLATION_VARIANTS[b] for b in edits)
        keys["study"] = _stage(p.out / "study", "study: circuit, ΔθC and ablations", {
            **base, "study": p.study.to_dict(), "variants": variants},
            lambda: write_report(run_study(p.model, p.records, p.study, p.out / "study", console, variants,
                                           measure_test=False, device=p.device), p.out / "study"), console)
    if steering:
        def steer() -> None:
            fitted = fit_steering(HFEngine.from_path(p.model, device=p.device), str(p.model), p.records, p.steer,
                                  console)
            write_artifacts(fitted, p.out / "steering", overwrite=True)
        keys["steering"] = _stage(p.out / "steering", "steering baselines: ActAdd and CAST",
                                  {**base, "steer": asdict(p.steer)}, steer, console)

    artifacts = {b: p.out / ARTIFACTS[b] for b in p.backends if ARTIFACTS[b] is not None}  # type: ignore[operator]
    request = EvalRequest(model=p.model, backends=p.backends, log_dir=p.out / "logs", tasks=p.tasks,
                          policy=p.study.policy, artifacts=artifacts, limit=p.eval_limit, engine=p.engine,
                          device=p.device, batch_size=p.eval_batch_size)
    _fresh_logs(p.out / "logs", {**base, **keys, "eval": [p.backends, p.tasks, p.eval_limit, p.engine,
                                                          p.eval_batch_size]}, console)
    console.rule(f"[bold]evaluation: inspect tasks × backends ({p.engine} engine)")
    began = time.perf_counter()
    parallel = 1 if p.engine == "vllm" else p.parallel  # vLLM starts processes of its own and batches across cores
    if p.engine == "vllm" and p.device != "cpu":
        release_gpu_cache()  # vLLM sizes its KV cache from the GPU memory free when it starts
    run_eval(request, display="rich" if parallel == 1 else "none", console=console, parallel=parallel)
    console.print(f"[green]✓ evaluation[/] in {time.perf_counter() - began:.0f} s (a rerun reuses finished logs)")

    kl_path = p.out / "benign_kl" / "benign_kl.json"

    def drift() -> None:
        from harness.benign_kl import benign_prompts, measure_benign_kl

        prompts = benign_prompts(p.records, "test", BENIGN_KL_PROMPTS)
        atomic_write_text(kl_path, dump_json_model(measure_benign_kl(p.model, p.backends, artifacts, prompts, "test",
                                                                     device=p.device)))
    _stage(p.out / "benign_kl", "benign KL: first-token distributions against noop",
           {**base, **keys, "backends": p.backends, "prompts": BENIGN_KL_PROMPTS}, drift, console)

    bench_path = None
    if p.bench is not None:
        bench_path = p.out / "bench" / "bench.json"
        served = tuple(b for b in p.backends if b in ("noop", "actadd", "cast", "cdelta"))

        def bench() -> None:
            result = run_bench(BenchRequest(model=p.model, backends=served,
                                            artifacts={b: a for b, a in artifacts.items() if b in served},
                                            engine=p.engine, device=p.device, **asdict(p.bench)))
            atomic_write_text(bench_path, dump_json_model(result))
        key = {**base, **keys, "bench": asdict(p.bench), "backends": served, "engine": p.engine,
               "schema": BENCH_SCHEMA}  # a bench.json of an earlier schema is redone, not reused
        _stage(p.out / "bench", f"serving bench ({p.engine} engine)", key, bench, console)

    study = p.out / "study" / "study.json"
    return make_report(p.out / "logs", p.out / "report", bench=bench_path, benign_kl=kl_path,
                       circuit=p.out / "study" / "circuit.json" if edits else None,
                       study=study if edits else None, run_name=p.out.resolve().name, console=console)
