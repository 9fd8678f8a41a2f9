"""`cdelta apply`: a plain checkpoint equal to base + k·ΔθC, written whole or not at all."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from cdelta.apply_cli import scales_for
from cdelta.errors import CdeltaError
from cdelta.patch import Patch, save_patch
from harness.cli import main

from .conftest import edit_patch, save_base


@pytest.fixture(scope="module")
def base(base_dir: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(base_dir).eval()


@pytest.fixture(scope="module")
def patch(base: torch.nn.Module, base_dir: Path) -> Patch:
    return edit_patch(base, name=str(base_dir))


@pytest.fixture()
def patch_file(patch: Patch, tmp_path: Path) -> Path:
    return save_patch(patch, tmp_path / "patch.safetensors")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_checkpoint_logits_equal_base_plus_delta_in_memory(base, base_dir, patch, patch_file, tmp_path) -> None:
    out = tmp_path / "edited"
    assert main(["apply", "--model", str(base_dir), "--patch", str(patch_file), "-o", str(out)]) == 0
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja"} <= {p.name for p in out.iterdir()}

    expected = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    params = dict(expected.named_parameters())
    with torch.no_grad():
        for s, delta in patch.deltas.items():
            params[s.tensor].narrow(s.dim, s.start, s.stop - s.start).add_(patch.meta.k * delta)
    edited = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "how do i treat a rash"}],
                                         add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        got, want, before = (m(input_ids=ids).logits for m in (edited, expected, base))
    assert (got - want).abs().max() <= 1e-5
    assert (got - before).abs().max() > 1e-3  # the patch did something


def test_negating_scale_composes_to_the_base(base, base_dir, patch_file, tmp_path) -> None:
    out = tmp_path / "cancelled"
    argv = ["apply", "--model", str(base_dir), "--patch", str(patch_file), "--patch", str(patch_file),
            "--scale", "1", "--scale", "-1", "-o", str(out)]
    assert main(argv) == 0
    edited = dict(AutoModelForCausalLM.from_pretrained(out).named_parameters())
    assert all(torch.equal(p, edited[n]) for n, p in base.named_parameters())


def test_patch_for_another_base_is_refused_without_output(patch, patch_file, tmp_path, capsys) -> None:
    other = save_base(tmp_path / "other", seed=1)
    out = tmp_path / "edited"
    assert main(["apply", "--model", str(other), "--patch", str(patch_file), "-o", str(out)]) == 1
    assert f"made for base '{patch.meta.base.name}'" in " ".join(capsys.readouterr().err.split())
    assert not out.exists() and leftovers(tmp_path) == []


def test_existing_output_is_refused_unless_overwrite(base_dir, patch_file, tmp_path, capsys) -> None:
    out = tmp_path / "edited"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    argv = ["apply", "--model", str(base_dir), "--patch", str(patch_file), "-o", str(out)]
    assert main(argv) == 1
    assert "--overwrite" in " ".join(capsys.readouterr().err.split())
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert main(argv + ["--overwrite"]) == 0
    assert not (out / "mine.txt").exists() and (out / "model.safetensors").is_file()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("existing", [False, True])
def test_failure_midway_leaves_no_half_written_output(base_dir, patch_file, tmp_path, monkeypatch, existing) -> None:
    out = tmp_path / "edited"
    if existing:
        out.mkdir()
        (out / "mine.txt").write_text("keep")

    def disk_full(self, *args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", disk_full)  # after the weights were written
    with pytest.raises(OSError, match="No space"):
        main(["apply", "--model", str(base_dir), "--patch", str(patch_file), "-o", str(out), "--overwrite"])
    assert leftovers(tmp_path) == []
    assert (out.exists() and [p.name for p in out.iterdir()] == ["mine.txt"]) if existing else not out.exists()


def test_scales_are_one_for_all_or_one_per_patch() -> None:
    assert scales_for(2, []) == [1.0, 1.0]
    assert scales_for(3, [-1.0]) == [-1.0, -1.0, -1.0]
    assert scales_for(2, [1.0, 0.5]) == [1.0, 0.5]
    with pytest.raises(CdeltaError):
        scales_for(3, [1.0, 2.0])
