"""The patch file: roundtrip, refusal of bad files, composition, and the base fingerprint."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from cdelta.apply import add_patch, patched
from cdelta.errors import CdeltaError
from cdelta.patch import Patch, compose, load_patch, save_patch, slice_key, with_k

from .conftest import edit_patch, head_slices, tiny_model


@pytest.fixture(scope="module")
def base() -> torch.nn.Module:
    return tiny_model()


@pytest.fixture(scope="module")
def patch(base: torch.nn.Module) -> Patch:
    return edit_patch(base)


def params_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    pb = dict(b.named_parameters())
    return all(torch.equal(p, pb[n]) for n, p in a.named_parameters())


def test_roundtrip_keeps_values_and_metadata_and_bytes(patch: Patch, tmp_path: Path) -> None:
    path = save_patch(patch, tmp_path / "patch.safetensors")
    loaded = load_patch(path)
    assert loaded.meta == patch.meta
    assert set(loaded.deltas) == set(patch.deltas)
    assert all(torch.equal(loaded.deltas[s], patch.deltas[s]) for s in patch.deltas)
    assert save_patch(loaded, tmp_path / "again.safetensors").read_bytes() == path.read_bytes()


def test_file_is_sparse_and_self_describing_to_a_plain_reader(patch: Patch, tmp_path: Path) -> None:
    path = save_patch(patch, tmp_path / "patch.safetensors")
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
        assert sorted(f.keys()) == sorted(slice_key(s) for s in patch.deltas)
        assert f.get_tensor("model.layers.0.self_attn.o_proj.weight@cols[0:8]").shape == (32, 8)
    assert json.loads(header["schema_version"]) == 1
    assert json.loads(header["policy"]) == "refuse:health"
    base = json.loads(header["base"])
    assert set(base["tensors"]) == {s.tensor for s in patch.deltas} and len(base["sha256"]) == 64
    assert {"torch", "transformers", "cdelta"} <= set(json.loads(header["versions"]))
    assert {"k", "seed", "circuit", "edit"} <= set(header)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_patch_is_refused(patch: Patch, tmp_path: Path, bad: float) -> None:
    tensors = {slice_key(s): t.clone() for s, t in patch.deltas.items()}
    next(iter(tensors.values()))[0, 0] = bad
    path = tmp_path / "bad.safetensors"
    save_file(tensors, str(path), metadata=patch.meta.header())
    with pytest.raises(CdeltaError, match="NaN or Inf"):
        load_patch(path)
    with pytest.raises(CdeltaError, match="NaN or Inf"):
        save_patch(Patch({s: torch.full_like(t, bad) for s, t in patch.deltas.items()}, patch.meta), tmp_path / "x")


@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_truncated_file_is_refused(patch: Patch, tmp_path: Path, cut: float) -> None:
    data = save_patch(patch, tmp_path / "patch.safetensors").read_bytes()
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CdeltaError, match="corrupt or truncated"):
        load_patch(path)


def test_garbage_missing_and_foreign_files_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(CdeltaError, match="corrupt or truncated"):
        load_patch(garbage)
    with pytest.raises(CdeltaError, match="does not exist"):
        load_patch(tmp_path / "missing.safetensors")
    foreign = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CdeltaError, match="not a cdelta patch"):
        load_patch(foreign)


def test_other_schema_version_is_refused(patch: Patch, tmp_path: Path) -> None:
    header = {**patch.meta.header(), "schema_version": "99"}
    path = tmp_path / "future.safetensors"
    save_file({slice_key(s): t for s, t in patch.deltas.items()}, str(path), metadata=header)
    with pytest.raises(CdeltaError, match="schema version 99"):
        load_patch(path)


def test_existing_patch_file_is_not_overwritten_without_consent(patch: Patch, tmp_path: Path) -> None:
    path = tmp_path / "patch.safetensors"
    path.write_text("keep me")
    with pytest.raises(CdeltaError, match="--overwrite"):
        save_patch(patch, path)
    assert path.read_text() == "keep me"
    save_patch(patch, path, overwrite=True)
    assert load_patch(path).meta == patch.meta


def test_patch_and_its_negation_restore_the_base_exactly(base: torch.nn.Module, patch: Patch) -> None:
    edited = copy.deepcopy(base)
    add_patch(edited, compose([patch, patch], [1.0, -1.0]))
    assert params_equal(edited, base)
    once = copy.deepcopy(base)
    add_patch(once, patch)
    assert not params_equal(once, base)


def test_composition_adds_scaled_patches(base: torch.nn.Module, patch: Patch) -> None:
    other = edit_patch(base, head_slices(base, 1, 0), seed=3)
    both = compose([patch, other], [1.0, 0.5])
    assert both.meta.k == 1.0 and len(both.meta.parts) == 2
    expected = copy.deepcopy(base)
    params = dict(expected.named_parameters())
    with torch.no_grad():
        for p, factor in ((patch, patch.meta.k), (other, 0.5 * other.meta.k)):
            for s, t in p.deltas.items():
                params[s.tensor].narrow(s.dim, s.start, s.stop - s.start).add_(factor * t)
    edited = copy.deepcopy(base)
    add_patch(edited, both)
    for name, p in edited.named_parameters():
        torch.testing.assert_close(p, params[name], rtol=0, atol=1e-6)


def test_patch_for_another_base_is_refused_and_names_its_base(patch: Patch) -> None:
    other = tiny_model(seed=1)
    with pytest.raises(CdeltaError, match="made for base 'base'"):
        add_patch(other, patch, "other-model")
    foreign = edit_patch(other, name="other")
    with pytest.raises(CdeltaError, match="different bases"):
        compose([patch, foreign], [1.0, 1.0])
    with pytest.raises(CdeltaError, match="configs differ"):
        add_patch(tiny_model("qwen2"), patch)


def test_patched_context_restores_the_model_bit_for_bit(base: torch.nn.Module, patch: Patch) -> None:
    model = copy.deepcopy(base)
    x = torch.tensor([[2, 5, 6, 7]])
    with patched(model, with_k(patch, 4.0)):
        assert not params_equal(model, base)
        edited_logits = model(input_ids=x).logits
    assert params_equal(model, base)
    assert not torch.equal(edited_logits, base(input_ids=x).logits)

