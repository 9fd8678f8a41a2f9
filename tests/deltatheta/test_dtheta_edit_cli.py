"""`cdelta edit` end to end, and the bad inputs it must refuse before writing anything."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cdelta.errors import CdeltaError
from cdelta.examples import load_examples
from cdelta.fingerprint import fingerprint
from cdelta.patch import load_patch
from cdelta.policy import contrastive_objectives, parse_policy
from harness.cli import main

from .conftest import COMPLIANCE, REFUSAL, tiny_model


def edit(base_dir: Path, circuit_file: Path, examples_file: Path, out: Path, *extra: str) -> int:
    return main(["edit", "--model", str(base_dir), "--circuit", str(circuit_file), "--examples", str(examples_file),
                 "--policy", "refuse:health", "-o", str(out), "--steps", "2", "--batch-size", "2", *extra])


def err(capsys: pytest.CaptureFixture[str]) -> str:
    return " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("ablation", ["circuit", "random", "dense"])
def test_edit_writes_a_patch_with_its_provenance(base_dir, circuit_file, examples_file, tmp_path, ablation) -> None:
    out = tmp_path / "patch.safetensors"
    assert edit(base_dir, circuit_file, examples_file, out, "--ablation", ablation, "--k", "1.5", "--seed", "7") == 0
    patch = load_patch(out)
    circuit = patch.meta.circuit
    assert circuit is not None and circuit.sha256 == hashlib.sha256(circuit_file.read_bytes()).hexdigest()
    assert (patch.meta.policy, patch.meta.k, patch.meta.seed, patch.meta.ablation) == ("refuse:health", 1.5, 7, ablation)
    assert patch.meta.edit["steps"] == 2 and patch.meta.base.name == str(base_dir)
    circuit_numel = 10 * 8 * 32  # 3 heads' q rows and o columns, 2 distinct KV heads' k and v rows; 8 x 32 each
    if ablation == "dense":
        assert patch.numel() == sum(p.numel() for p in tiny_model().parameters())
    else:
        assert patch.numel() == circuit_numel


def test_mining_options_reach_the_patch_and_bad_ones_are_refused(base_dir, circuit_file, examples_file, tmp_path,
                                                                 capsys) -> None:
    out = tmp_path / "patch.safetensors"
    assert edit(base_dir, circuit_file, examples_file, out, "--retain-size", "3", "--mine-rounds", "1",
                "--mine-size", "2", "--mine-k", "0.5") == 0
    recorded = load_patch(out).meta.edit
    assert (recorded["retain_size"], recorded["mine_rounds"], recorded["mine_size"], recorded["mine_k"]) == (3, 1, 2, 0.5)
    bad = tmp_path / "bad.safetensors"
    assert edit(base_dir, circuit_file, examples_file, bad, "--mine-rounds", "-1") == 1
    assert "invalid retain or mining settings" in err(capsys) and not bad.exists()


def test_slices_file_is_accepted_as_a_plain_list(base_dir, circuit_file, examples_file, tmp_path) -> None:
    slices_file = tmp_path / "slices.json"
    slices_file.write_text(json.dumps(json.loads(circuit_file.read_text())["param_slices"]))
    out = tmp_path / "patch.safetensors"
    argv = ["edit", "--model", str(base_dir), "--slices", str(slices_file), "--examples", str(examples_file),
            "--policy", "release:health", "-o", str(out), "--steps", "1"]
    assert main(argv) == 0
    assert load_patch(out).meta.policy == "release:health"


def test_unknown_category_is_refused_with_the_known_ones(base_dir, circuit_file, examples_file, tmp_path, capsys) -> None:
    out = tmp_path / "patch.safetensors"
    argv = ["edit", "--model", str(base_dir), "--circuit", str(circuit_file), "--examples", str(examples_file),
            "--policy", "refuse:finance", "-o", str(out)]
    assert main(argv) == 1
    assert "unknown category 'finance'; known: cooking, health, weapons" in err(capsys)
    assert not out.exists()


def test_circuit_of_another_model_is_refused(base_dir, circuit_file, examples_file, tmp_path, capsys) -> None:
    out = tmp_path / "patch.safetensors"
    foreign_slices = tmp_path / "gpt2.json"
    foreign_slices.write_text(json.dumps({"param_slices": [
        {"tensor": "transformer.h.0.attn.c_attn.weight", "dim": 1, "start": 0, "stop": 8}]}))
    assert edit(base_dir, foreign_slices, examples_file, out) == 1
    assert "another model" in err(capsys)
    same_shapes = tmp_path / "seed1.json"  # fits the base tensor for tensor, but was found on another model
    other = tiny_model(seed=1)
    circuit = json.loads(circuit_file.read_text())
    circuit["model"] = {"name": "seed1", "fingerprint": fingerprint(other, dict(other.named_parameters()), "x").digest}
    same_shapes.write_text(json.dumps(circuit))
    assert edit(base_dir, same_shapes, examples_file, out) == 1
    assert "was found on model 'seed1'" in err(capsys)
    assert not out.exists()


def test_existing_patch_is_refused_unless_overwrite(base_dir, circuit_file, examples_file, tmp_path, capsys) -> None:
    out = tmp_path / "patch.safetensors"
    out.write_text("keep")
    assert edit(base_dir, circuit_file, examples_file, out) == 1
    assert out.read_text() == "keep" and "--overwrite" in err(capsys)
    assert edit(base_dir, circuit_file, examples_file, out, "--overwrite") == 0
    assert load_patch(out).numel() > 0


def test_policy_parsing_and_objectives(examples_file) -> None:
    examples = load_examples(examples_file)
    for bad in ("health", "ban:health", "refuse:"):
        with pytest.raises(CdeltaError, match="not of the form"):
            parse_policy(bad, examples.categories)
    pos, neg = contrastive_objectives(parse_policy("release:health", examples.categories), examples)
    assert {e.response for e in pos.target} == {COMPLIANCE} and {e.response for e in neg.target} == {REFUSAL}
    assert pos.retain == neg.retain and len(pos.retain) == 5


def test_examples_file_errors_name_the_line(tmp_path) -> None:
    path = tmp_path / "examples.jsonl"
    path.write_text('{"category": "health", "prompt": "how"}\n{"category": "health"}\n')
    with pytest.raises(CdeltaError, match=r"examples.jsonl:2: field 'prompt'"):
        load_examples(path)
    path.write_text('{"category": "health", "prompt": "how", "refusal": "no"}\n{"category": "x", "prompt": "y", "response": "z"}\n')
    examples = load_examples(path)
    with pytest.raises(CdeltaError, match=r":1: a target example of 'health' needs field 'compliance'"):
        contrastive_objectives(parse_policy("refuse:health", examples.categories), examples)
