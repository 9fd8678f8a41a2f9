"""Runs the benchmark: one fresh worker process per backend, all on the same prompts, then the
overhead of each backend against noop at the same batch size, as one BenchFile."""
from __future__ import annotations

import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cdelta.errors import CdeltaError
from cdelta.progress import progress_bar
from cdelta.provenance import library_versions
from harness.bench.prompts import DEFAULT_PROMPTS, bench_prompts
from harness.bench.worker import BenchJob
from harness.evaluation.fingerprints import path_fingerprint
from harness.reporting.schema import BenchBackend, BenchFile, BenchPoint

STDERR_TAIL = 3000


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


def run_worker(job: BenchJob, on_run: Callable[[], None]) -> list[BenchPoint]:
    """Measure one backend in a fresh Python process; its user-facing errors come back as CdeltaError."""
    env = {**os.environ, "OMP_NUM_THREADS": str(job.threads), "MKL_NUM_THREADS": str(job.threads),
           "TOKENIZERS_PARALLELISM": "false"}
    points, error = [], None
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "harness.bench.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(job.model_dump_json())
        proc.stdin.close()
        for line in proc.stdout:
            event = json.loads(line)
            if "run" in event:
                on_run()
            elif "point" in event:
                points.append(BenchPoint.model_validate(event["point"]))
            else:
                error = str(event["error"])
        code = proc.wait()
        stderr.seek(0)
        tail = stderr.read()[-STDERR_TAIL:]
    if error is not None:
        raise CdeltaError(f"backend {job.backend}: {error}")
    if code != 0 or len(points) != len(job.batch_sizes):
        raise CdeltaError(f"the benchmark worker of backend {job.backend} failed (exit code {code}); "
                          f"its last output:\n{tail}")
    return points


def with_overhead(points: list[BenchPoint], noop: list[BenchPoint] | None) -> list[BenchPoint]:
    """Hook overhead per decode step vs noop: a full batch of B makes B tokens a step, so a step takes
    B / (tokens/s); the difference of those, in ms (prefill and CAST's prompt read spread over the steps)."""
    if noop is None:
        return points
    base = {p.batch_size: p.output_tokens_per_s for p in noop}
    return [p.model_copy(update={"hook_overhead_per_step_ms":
                                 1000 * p.batch_size * (1 / p.output_tokens_per_s - 1 / base[p.batch_size])})
            for p in points]


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


def run_bench(request: BenchRequest, show_progress: bool = True) -> BenchFile:
    """Every backend at every batch size, one worker process per backend, noop first."""
    from harness.bench.shapes import SHAPE_SEED

    check_request(request)
    prompts = bench_prompts(request.prompts)
    order = sorted(request.backends, key=lambda b: b != "noop")
    runs = len(order) * len(request.batch_sizes) * (request.warmup + request.repeats)
    measured: dict[str, list[BenchPoint]] = {}
    with bench_model(request) as (model, artifacts):
        if request.shape is None:
            check_artifacts(model, request.artifacts)
        fingerprint = path_fingerprint(model)
        with progress_bar(f"bench: {len(order)} backends x {len(request.batch_sizes)} batch sizes", runs,
                          enabled=show_progress) as advance:
            for backend in order:
                artifact = artifacts.get(backend)
                job = BenchJob(backend=backend, engine=request.engine, model=str(model),
                               artifact=None if artifact is None else str(artifact[0]),
                               prompts=prompts, batch_sizes=sorted(request.batch_sizes), warmup=request.warmup,
                               repeats=request.repeats, max_new_tokens=request.max_new_tokens, threads=request.threads,
                               device=request.device)
                measured[backend] = run_worker(job, advance)
    noop = measured.get("noop")
    return BenchFile(
        engine=request.engine,  # type: ignore[arg-type]
        model=str(request.model) if request.shape is None else f"random init of {request.shape} (seed {SHAPE_SEED})",
        model_fingerprint=fingerprint,
        shape=request.shape,
        prompts=len(prompts),
        max_new_tokens=request.max_new_tokens,
        threads=request.threads,
        device=device_name(request.device),
        versions={"python": platform.python_version(), **library_versions()},
        backends=[BenchBackend(backend=b, artifact=artifacts[b][1] if b in artifacts else None,
                               points=measured[b] if b == "noop" else with_overhead(measured[b], noop))
                  for b in request.backends],
    )
