"""Runs the benchmark: a worker process per backend, all on the same prompts, driven through a
schedule (paired rounds, or one backend after another), then each backend's points against noop at
the same batch size, as one BenchFile."""
from __future__ import annotations

import gc
import os
import platform
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cdelta.errors import CdeltaError
from cdelta.progress import progress_bar
from cdelta.provenance import library_versions
from harness.bench.drive import Measured, drive
from harness.bench.prompts import DEFAULT_PROMPTS, bench_prompts, check_batch_sizes
from harness.bench.runs import Run, bench_point
from harness.bench.schedule import SCHEDULES
from harness.bench.worker import WorkerSetup
from harness.evaluation.fingerprints import path_fingerprint
from harness.reporting.schema import BenchBackend, BenchFile, BenchPoint


@dataclass(frozen=True)
class BenchRequest:
    """What `cdelta bench` measures."""

    model: Path
    backends: tuple[str, ...]
    artifacts: Mapping[str, Path] = field(default_factory=dict)
    engine: str = "hf"
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    repeats: int = 5
    warmup: int = 1
    max_new_tokens: int = 32
    prompts: int = DEFAULT_PROMPTS
    shape: str | None = None
    threads: int = 1
    device: str = "cpu"  # the transformers engine's; vLLM runs where its build runs
    schedule: str | None = None  # rounds or sequential; None: default_schedule(engine)


def serving_device(engine: str, device: str) -> str:
    """Where the measured model runs: the transformers engine's `device`; a vLLM build runs on CUDA exactly
    when its torch sees a CUDA device."""
    if engine == "vllm":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def default_schedule(engine: str) -> str:
    """Paired rounds keep every backend's engine alive at once. vLLM on a CUDA GPU reserves most of the GPU
    per engine (gpu_memory_utilization), so a second one would not start: there, one backend at a time."""
    if engine == "vllm" and serving_device(engine, "cpu") != "cpu":
        return "sequential"
    return "rounds"


def check_request(request: BenchRequest) -> None:
    """Every mistake the arguments can hold, found before any model is loaded."""
    from backends.registry import BACKENDS, STEERING, check_device, check_engine

    check_engine(request.engine)
    check_device(request.device)
    if request.device != "cpu" and request.engine != "hf":
        raise CdeltaError("--device places the transformers engine; vLLM runs where its build runs: drop --device")
    unknown = [b for b in request.backends if b not in BACKENDS]
    if unknown:
        raise CdeltaError(f"unknown backend(s) {', '.join(unknown)}; known backends: {', '.join(BACKENDS)}")
    if len(set(request.backends)) != len(request.backends):
        raise CdeltaError(f"--backends names a backend twice: {','.join(request.backends)}")
    unused = sorted(set(request.artifacts) - set(request.backends))
    if unused:
        raise CdeltaError(f"--artifact given for backends not benchmarked: {', '.join(unused)}")
    if request.shape is not None and request.artifacts:
        raise CdeltaError("--shape benchmarks randomly initialised weights, on which no artifact was fitted: drop "
                          "--artifact (steering backends get cost-only random vectors, cdelta the plain checkpoint)")
    missing = [b for b in request.backends if b in STEERING and b not in request.artifacts and request.shape is None]
    if missing:
        raise CdeltaError(f"{', '.join(missing)} need a steering artifact: --artifact {missing[0]}=PATH "
                          f"(`cdelta steer fit` writes {missing[0]}.json)")
    for name, value in (("--repeats", request.repeats), ("--max-new-tokens", request.max_new_tokens),
                        ("--threads", request.threads), ("--prompts", request.prompts),
                        *(("--batch-sizes", b) for b in request.batch_sizes)):
        if value < 1:
            raise CdeltaError(f"{name} must be at least 1, got {value}")
    if request.warmup < 0:
        raise CdeltaError(f"--warmup must be 0 or more, got {request.warmup}")
    check_batch_sizes(request.batch_sizes, request.prompts)
    if request.schedule is not None and request.schedule not in SCHEDULES:
        raise CdeltaError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {request.schedule!r}")


def check_artifacts(model: Path, artifacts: Mapping[str, Path]) -> None:
    """Build each backend that takes an artifact once, here, so a bad one fails in seconds, not after
    minutes of measuring the others (on the transformers engine: it checks an artifact as vLLM's does)."""
    from backends.registry import make_backend

    for backend, path in artifacts.items():
        make_backend(backend, model, path)
        gc.collect()


def device_name(device: str = "cpu") -> str:
    """The GPU's name on cuda; else the CPU's name and core count."""
    if device != "cpu":
        import torch

        return f"{device}: {torch.cuda.get_device_name(torch.device(device))}"
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {name}, {os.cpu_count()} logical cores"


@contextmanager
def bench_model(request: BenchRequest) -> Iterator[tuple[Path, dict[str, tuple[Path, str]]]]:
    """The model folder to measure and each backend's (artifact, label): the user's, or a shape's
    random model with cost-only steering artifacts in a temporary folder."""
    if request.shape is None:
        yield request.model, {b: (p, str(p)) for b, p in request.artifacts.items()}
        return
    from backends.registry import STEERING
    from harness.bench.shapes import build_shape_model, cost_only_artifacts

    with tempfile.TemporaryDirectory(prefix="cdelta-shape-") as tmp:
        model = build_shape_model(request.shape, Path(tmp) / "model")
        steering = [b for b in request.backends if b in STEERING]
        yield model, cost_only_artifacts(model, steering, Path(tmp) / "steering") if steering else {}


def backend_points(measured: Measured, backends: list[str], batch_sizes: list[int]) -> dict[str, list[BenchPoint]]:
    """Each backend's point per batch size, against noop's runs of the same rounds where noop was measured."""
    def noop_runs(backend: str, batch_size: int) -> list[Run] | None:
        return measured.timed("noop", batch_size) if "noop" in backends and backend != "noop" else None

    return {b: [bench_point(size, measured.timed(b, size), measured.peaks[b, size], noop_runs(b, size))
                for size in sorted(batch_sizes)]
            for b in backends}


def run_bench(request: BenchRequest, show_progress: bool = True) -> BenchFile:
    """Every backend at every batch size, in the request's schedule (default_schedule where it names none)."""
    from harness.bench.shapes import SHAPE_SEED

    check_request(request)
    schedule = request.schedule or default_schedule(request.engine)
    prompts = bench_prompts(request.prompts)
    order = sorted(request.backends, key=lambda b: b != "noop")
    runs = len(order) * len(request.batch_sizes) * (request.warmup + request.repeats)
    with bench_model(request) as (model, artifacts):
        if request.shape is None:
            check_artifacts(model, request.artifacts)
        fingerprint = path_fingerprint(model)
        setups = {b: WorkerSetup(backend=b, engine=request.engine, model=str(model),
                                 artifact=str(artifacts[b][0]) if b in artifacts else None, prompts=prompts,
                                 max_new_tokens=request.max_new_tokens, threads=request.threads, device=request.device)
                  for b in order}
        steps = SCHEDULES[schedule](order, request.batch_sizes, request.warmup, request.repeats)
        with progress_bar(f"bench ({schedule}): {len(order)} backends x {len(request.batch_sizes)} batch sizes", runs,
                          enabled=show_progress) as advance:
            measured = drive(steps, setups, advance)
    points = backend_points(measured, order, list(request.batch_sizes))
    return BenchFile(
        schedule=schedule,  # type: ignore[arg-type]
        engine=request.engine,  # type: ignore[arg-type]
        model=str(request.model) if request.shape is None else f"random init of {request.shape} (seed {SHAPE_SEED})",
        model_fingerprint=fingerprint,
        shape=request.shape,
        prompts=len(prompts),
        max_new_tokens=request.max_new_tokens,
        threads=request.threads,
        device=device_name(serving_device(request.engine, request.device)),
        versions={"python": platform.python_version(),
                  **library_versions(*(["vllm"] if request.engine == "vllm" else []))},
        backends=[BenchBackend(backend=b, artifact=artifacts[b][1] if b in artifacts else None, points=points[b])
                  for b in request.backends],
    )
