"""`cdelta demo --small` end to end: every stage runs, the report agrees with the study's numbers,
and the shipped checkpoint is the base plus the patch."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from cdelta.apply import patched
from cdelta.patch import load_patch
from harness.cli import main


@pytest.fixture(scope="module")
def demo_run(small_organism: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo on the session's --small organism (it finds it in the session cache)."""
    out = tmp_path_factory.mktemp("demo") / "report"
    assert main(["demo", "--small", "--out", str(out)]) == 0
    return out


def test_demo_writes_every_artifact(demo_run: Path):
    for name in ("circuit.json", "circuit_heatmap.png", "patch_circuit.safetensors", "patch_random.safetensors",
                 "patch_dense.safetensors", "k_sweep_circuit.json", "k_sweep_circuit.png", "study.json",
                 "report.md", "refusal_heatmap.png", "checkpoint/config.json", "checkpoint/model.safetensors"):
        assert (demo_run / name).is_file(), name


def test_report_numbers_match_the_study(demo_run: Path):
    study = json.loads((demo_run / "study.json").read_text())
    report = (demo_run / "report.md").read_text()
    for variant, d in study["variants"].items():
        s = d["selectivity"]
        assert f"| {variant} | {d['k']:g} | {d['params_changed']:,} " in report
        assert f"{100 * s['target_refusal']:.1f}%" in report
    base = study["behaviour"]["base"]["refusal"]
    for category, r in base.items():
        assert f"| {category} | {100 * r['value']:.1f} [" in report
    circuit = json.loads((demo_run / "circuit.json").read_text())
    assert study["variants"]["circuit"]["params_fraction"] <= study["config"]["budget"] + 1e-9
    assert study["variants"]["random"]["params_changed"] == study["variants"]["circuit"]["params_changed"]
    assert study["variants"]["dense"]["params_fraction"] == pytest.approx(1.0)
    assert circuit["param_fraction"] == pytest.approx(study["circuit"]["param_fraction"])


def test_shipped_checkpoint_is_base_plus_patch(demo_run: Path, small_organism: Path):
    patch = load_patch(demo_run / "patch_circuit.safetensors")
    edited = AutoModelForCausalLM.from_pretrained(demo_run / "checkpoint").eval()
    base = AutoModelForCausalLM.from_pretrained(small_organism).eval()
    ids = torch.tensor([[1, 3, 60, 61, 62, 2, 4]])
    with torch.no_grad(), patched(base, patch):
        expected = base(ids).logits
    with torch.no_grad():
        got = edited(ids).logits
    assert torch.max(torch.abs(got - expected)).item() <= 1e-5
