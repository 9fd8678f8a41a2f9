"""`cdelta demo --small` end to end: every stage runs, the report's numbers are the logs' counts, a
rerun reuses every stage, and the shipped checkpoint is the base plus the patch."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from cdelta.apply import patched
from cdelta.errors import CdeltaError
from cdelta.patch import load_patch
from cdelta.sweep import TOLERANCE
from harness.cli import main
from inspect_ai.log import read_eval_log


@pytest.fixture(scope="module")
def demo_run(small_organism: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo on the session's --small organism (it finds it in the session cache)."""
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["demo", "--small", "--out", str(out)]) == 0
    return out


def test_demo_writes_every_artifact(demo_run: Path):
    study = demo_run / "study"
    for name in ("circuit.json", "circuit_heatmap.png", "patch_circuit.safetensors", "patch_random.safetensors",
                 "patch_dense.safetensors", "k_sweep_circuit.json", "k_sweep_circuit.png", "study.json",
                 "report.md", "checkpoint/config.json", "checkpoint/model.safetensors"):
        assert (study / name).is_file(), name
    for name in ("steering/actadd.json", "steering/cast.json", "bench/bench.json", "benign_kl/benign_kl.json",
                 "report/report.json",
                 "report/report.html", "report/refusal_heatmap.png", "report/serving.png"):
        assert (demo_run / name).is_file(), name


def test_study_report_numbers_match_the_study(demo_run: Path):
    study = json.loads((demo_run / "study" / "study.json").read_text())
    report = (demo_run / "study" / "report.md").read_text()
    assert study["behaviour"] == {}  # the pipeline measures the test split once, through the backends
    for variant, d in study["variants"].items():
        point = next(p for p in study["k_sweeps"][variant]["points"] if p["k"] == d["k"])
        assert (f"| {variant} | {d['k']:g} | {d['params_changed']:,} ({100 * d['params_fraction']:.1f}%) | "
                f"{point['selectivity']:.3f} | {point['retention']:.3f} [{point['retention_low']:.3f}, "
                f"{point['retention_high']:.3f}] | {100 * point['refusal_drop']:.1f} pts |") in report
        if math.isfinite(point["retention"]):  # NaN where the small organism answers no dev utility item
            assert point["retention_low"] <= point["retention"] <= point["retention_high"]
        assert study["k_sweeps"][variant]["max_refusal_drop"] == 0.05
        assert point["refusal_drop"] <= 0.05 + TOLERANCE or study["k_sweeps"][variant]["best_k"] is None
    circuit = json.loads((demo_run / "study" / "circuit.json").read_text())
    assert study["variants"]["circuit"]["params_fraction"] <= study["config"]["budget"] + 1e-9
    assert study["variants"]["random"]["params_changed"] == study["variants"]["circuit"]["params_changed"]
    assert study["variants"]["dense"]["params_fraction"] == pytest.approx(1.0)
    assert circuit["param_fraction"] == pytest.approx(study["circuit"]["param_fraction"])


def test_a_study_on_its_own_measures_the_test_split(small_organism: Path, tmp_path: Path):
    """Outside the pipeline the study is the whole measurement: base and patched model on the test split."""
    from rich.console import Console

    from harness.demo import SMALL_STUDY
    from harness.edit_study import StudyConfig, run_study
    from harness.organism.config import SMALL
    from harness.study_report import write_report
    from tasks.suite.generate import generate_suite

    records = generate_suite(SMALL.suite_seed, SMALL.suite_counts)
    study = run_study(small_organism, records, StudyConfig(**SMALL_STUDY), tmp_path, Console(quiet=True),
                      variants=("circuit",), write_edited_checkpoint=False)
    report = write_report(study, tmp_path).read_text()
    s = study["variants"]["circuit"]["selectivity"]
    assert f"{100 * s['target_refusal']:.1f}% ({100 * s['base_target_refusal']:.1f}%)" in report
    base = study["behaviour"]["base"]["refusal"]
    assert set(base) == {r.category for r in records if r.split == "test"}
    for category, r in base.items():
        assert f"| {category} | {100 * r['value']:.1f} [" in report


def test_random_draws_are_separate_slices_of_the_circuits_size(small_organism: Path, tmp_path: Path):
    """Each random draw is its own seeded set of slices, the same size as the circuit, and says its seed."""
    from rich.console import Console

    from harness.demo import SMALL_STUDY
    from harness.edit_study import StudyConfig, run_study
    from harness.organism.config import SMALL
    from tasks.suite.generate import generate_suite

    records = generate_suite(SMALL.suite_seed, SMALL.suite_counts)
    # 5%: two of the small organism's eight heads, so that draws have room to differ (at 20% the circuit is every head)
    cfg = StudyConfig(**{**SMALL_STUDY, "budget": 0.05, "seed": 3, "random_draws": 3, "curve_points": 2})
    study = run_study(small_organism, records, cfg, tmp_path, Console(quiet=True), variants=("circuit", "random"),
                      write_edited_checkpoint=False, measure_test=False)
    names = ["random", "random-2", "random-3"]
    assert list(study["variants"]) == ["circuit", *names]
    assert [study["variants"][n]["slice_seed"] for n in names] == [3, 4, 5]
    assert [study["variants"][n]["ablation"] for n in ["circuit", *names]] == ["circuit"] + ["random"] * 3
    touched = [frozenset(load_patch(tmp_path / f"patch_{n}.safetensors").deltas) for n in names]
    assert len(set(touched)) == 3
    for n in names:
        assert study["variants"][n]["params_changed"] == study["variants"]["circuit"]["params_changed"]
        assert n in study["k_sweeps"]


def test_a_study_needs_one_random_draw_and_one_dev_utility_item_at_least():
    from harness.edit_study import StudyConfig

    with pytest.raises(CdeltaError, match="random_draws must be at least 1"):
        StudyConfig(random_draws=0)
    with pytest.raises(CdeltaError, match="dev_utility must be at least 1"):
        StudyConfig(dev_utility=0)


def test_report_numbers_are_the_logs_counts(demo_run: Path):
    """Every backend's per-category refusal in report.json is the count of refusal verdicts in its log."""
    report = json.loads((demo_run / "report" / "report.json").read_text())
    assert [b["backend"] for b in report["backends"]] == ["noop", "actadd", "cast", "cdelta", "dense", "random"]
    for result in report["backends"]:
        logs = [read_eval_log(str(f)) for f in (demo_run / "logs").glob(f"{result['backend']}-*/*.eval")]
        refusal_log = next(log for log in logs if log.eval.task == "category_refusal")
        counts: dict[str, list[int]] = {}
        for sample in refusal_log.samples:
            refused = sample.scores["refusal_judge"].value in ("C", 1, 1.0)
            k_n = counts.setdefault(sample.metadata["category"], [0, 0])
            k_n[0] += int(refused)
            k_n[1] += 1
        for category, (k, n) in counts.items():
            assert (result["refusal"][category]["k"], result["refusal"][category]["n"]) == (k, n), category
    bench = json.loads((demo_run / "bench" / "bench.json").read_text())
    assert {b["backend"] for b in bench["backends"]} == {"noop", "actadd", "cast", "cdelta"}
    assert (bench["schema"], bench["schedule"]) == (2, "rounds")  # the demo's engine is hf: paired rounds
    kl = json.loads((demo_run / "benign_kl" / "benign_kl.json").read_text())
    for result in report["backends"]:
        assert result["benign_kl"] == kl["backends"][result["backend"]]
    assert kl["backends"]["noop"]["value"] == 0.0 and kl["backends"]["dense"]["value"] > 0.0


def test_a_rerun_reuses_every_stage(demo_run: Path, capsys: pytest.CaptureFixture[str]):
    before = (demo_run / "study" / "patch_circuit.safetensors").stat().st_mtime_ns
    assert main(["demo", "--small", "--out", str(demo_run)]) == 0
    said = capsys.readouterr().out
    assert "reusing" in said and said.count("reusing") == 4  # study, steering, benign KL, bench
    assert (demo_run / "study" / "patch_circuit.safetensors").stat().st_mtime_ns == before


def test_shipped_checkpoint_is_base_plus_patch(demo_run: Path, small_organism: Path):
    patch = load_patch(demo_run / "study" / "patch_circuit.safetensors")
    edited = AutoModelForCausalLM.from_pretrained(demo_run / "study" / "checkpoint").eval()
    base = AutoModelForCausalLM.from_pretrained(small_organism).eval()
    ids = torch.tensor([[1, 3, 60, 61, 62, 2, 4]])
    with torch.no_grad(), patched(base, patch):
        expected = base(ids).logits
    with torch.no_grad():
        got = edited(ids).logits
    assert torch.max(torch.abs(got - expected)).item() <= 1e-5


def test_the_demo_engine_is_vllm_only_where_it_can_run(monkeypatch: pytest.MonkeyPatch):
    from harness import demo

    assert demo.demo_engine("hf", small=False) == "hf" and demo.demo_engine("vllm", small=False) == "vllm"
    assert demo.demo_engine("auto", small=True) == "hf"  # the --small organism's heads are too narrow for vLLM
    monkeypatch.setattr(demo.importlib.util, "find_spec", lambda name: None)
    assert demo.demo_engine("auto", small=False) == "hf"
    monkeypatch.setattr(demo.importlib.util, "find_spec", lambda name: object())
    assert demo.demo_engine("auto", small=False) == "vllm"
