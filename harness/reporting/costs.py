"""What a backend costs beside its behaviour: parameters a weight edit changes, its one-time
offline time, serving speed from bench.json, and the requests after which an offline edit has paid
for itself against a steering backend's per-request overhead.

Every number is read from an artifact the user passed; where an artifact does not hold it, the
value is None, never estimated."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from backends.registry import CHECKPOINTS, STEERING
from cdelta.errors import CdeltaError
from harness.reporting.schema import BenchBackend, BenchFile, BenchPoint

STUDY_SCHEMA = 1


def load_study(path: Path) -> dict[str, Any]:
    """study.json of `cdelta demo` / harness.edit_study (a folder stands for its study.json)."""
    path = path / "study.json" if path.is_dir() else path
    try:
        study = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CdeltaError(f"cannot read study {path}: {exc}; pass the study.json that `cdelta demo` wrote") from None
    missing = [k for k in ("policy", "variants", "timings_s", "k_sweeps") if k not in study]
    if study.get("schema") != STUDY_SCHEMA or missing:
        raise CdeltaError(f"{path} is not a schema-{STUDY_SCHEMA} study.json (missing {missing or 'schema'}); "
                          f"regenerate it with `cdelta demo`")
    return study


def study_offline_seconds(study: dict[str, Any], backend: str) -> float | None:
    """localize + edit of the backend's variant, from the study's stage timings; the dense ablation
    needs no circuit, so only its edit counts. None where a stage has no timing."""
    variant = CHECKPOINTS.get(backend)
    if variant is None or variant not in study["variants"]:
        return None
    timings: dict[str, float] = study["timings_s"]
    edit = [s for name, s in timings.items() if name.startswith("edit:") and f" {variant} slices" in name]
    localize = [s for name, s in timings.items() if name.startswith("localize:")]
    if len(edit) != 1 or (variant != "dense" and len(localize) != 1):
        return None
    return float(edit[0]) + (0.0 if variant == "dense" else float(localize[0]))


def safetensors_params(files: list[Path]) -> int | None:
    """Parameters stored in safetensors files, from their headers only; None if any is unreadable."""
    total = 0
    try:
        for file in files:
            with safe_open(str(file), framework="numpy") as handle:
                total += sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())
    except (OSError, SafetensorError):
        return None
    return total


def patch_fraction(artifact: str | None, model_path: str) -> float | None:
    """The patch file's parameters over the base model's (both counted from safetensors headers)."""
    if artifact is None or not Path(artifact).is_file():
        return None
    model_files = sorted(Path(model_path).glob("*.safetensors"))
    changed, total = safetensors_params([Path(artifact)]), safetensors_params(model_files) if model_files else None
    return None if changed is None or not total else changed / total


def parameters_changed(backend: str, artifact: str | None, model_path: str, study: dict[str, Any] | None,
                       circuit_fraction: float | None) -> float | None:
    """0 for noop; None for steering (hooks change no weight); for a weight edit, in order of
    directness: its patch file, the study's variant, the circuit's own fraction (cdelta only)."""
    if backend == "noop":
        return 0.0
    if backend not in CHECKPOINTS:
        return None
    from_patch = patch_fraction(artifact, model_path)
    if from_patch is not None:
        return from_patch
    variant = CHECKPOINTS[backend]
    if study is not None and variant in study["variants"]:
        return float(study["variants"][variant]["params_fraction"])
    return circuit_fraction if backend == "cdelta" else None


def serving(bench: BenchFile | None, backend: str) -> BenchBackend | None:
    if bench is None:
        return None
    return next((b for b in bench.backends if b.backend == backend), None)


def batch1(measured: BenchBackend | None) -> BenchPoint | None:
    """The point at batch size 1: one request at a time, what a single user sees."""
    if measured is None:
        return None
    return next((p for p in measured.points if p.batch_size == 1), None)


def batch1_latency(measured: BenchBackend | None) -> float | None:
    """Per-request latency (p50) at batch size 1: what a single request waits."""
    point = batch1(measured)
    return None if point is None else point.latency_p50_s


def ratio_text(point: BenchPoint | None) -> str | None:
    """Tokens/s against noop's, median [min–max] over the bench's rounds, e.g. `0.99 [0.97–1.01]`; None where
    not measured (noop itself, or no noop in the bench)."""
    if point is None or point.throughput_ratio_vs_noop is None or point.throughput_ratio_range is None:
        return None
    low, high = point.throughput_ratio_range
    return f"{point.throughput_ratio_vs_noop:.2f} [{low:.2f}–{high:.2f}]"


def serving_notes(bench: BenchFile | None) -> list[str]:
    """What a reader of the serving columns must know that the numbers do not say."""
    if bench is None or bench.schedule == "rounds":
        return []
    return [f"the serving bench ran with schedule {bench.schedule} (one backend after another): its tok/s vs noop "
            "ratios are unpaired, so machine drift between the backends' turns is in them"]


def break_even(offline_seconds: float | None, own: BenchBackend | None, steering: BenchBackend | None) -> float | None:
    """offline_seconds / (steering's per-request latency − own), at batch size 1; None unless positive and known."""
    own_latency, steer_latency = batch1_latency(own), batch1_latency(steering)
    if offline_seconds is None or own_latency is None or steer_latency is None:
        return None
    saved = steer_latency - own_latency
    return offline_seconds / saved if saved > 0 else None


def break_even_requests(backend: str, offline_seconds: float | None, bench: BenchFile | None,
                        run_backends: list[str]) -> dict[str, float | None]:
    """For a weight edit, one entry per steering backend of the run; other backends have none."""
    if backend not in CHECKPOINTS:
        return {}
    own = serving(bench, backend)
    return {name: break_even(offline_seconds, own, serving(bench, name)) for name in run_backends if name in STEERING}
