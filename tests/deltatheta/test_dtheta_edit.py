"""The masked contrastive fine-tune: support of ΔθC, direction of the edit, determinism, slice sets."""
from __future__ import annotations

import copy

import pytest
import torch
from torch.func import functional_call

from cdelta.apply import add_patch
from cdelta.edit import collate, encode, masked_finetune, retain_kl, with_slices
from cdelta.edit_config import EditConfig
from cdelta.errors import CdeltaError
from cdelta.patch import save_patch
from cdelta.policy import Example, contrastive_objectives, parse_policy
from cdelta.slice_sets import checked, dense_slices, model_shapes, param_count, random_slices
from cdelta.slices import ParamSlice

from .conftest import COMPLIANCE, REFUSAL, circuit_slices, edit_patch, example_set, tiny_model, tiny_tokenizer


def changed_outside(base: torch.nn.Module, edited: torch.nn.Module, slices: list[ParamSlice]) -> list[str]:
    """Names of tensors that differ from the base anywhere outside `slices` (bitwise)."""
    edited_params = dict(edited.named_parameters())
    out = []
    for name, before in base.named_parameters():
        inside = torch.zeros(before.shape, dtype=torch.bool)
        for s in slices:
            if s.tensor == name:
                inside.narrow(s.dim, s.start, s.stop - s.start).fill_(True)
        if not torch.equal(before[~inside], edited_params[name][~inside]):
            out.append(name)
    return out


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2"])
def test_delta_is_zero_outside_the_slices_even_with_weight_decay(family: str) -> None:
    base = tiny_model(family)
    slices = circuit_slices(base)
    patch = edit_patch(base, slices, weight_decay=0.5, lr=1e-2)
    assert set(patch.deltas) == set(slices)
    if family != "gpt2":
        assert len(patch.deltas) < len(slices)  # the KV slices that heads 0 and 1 share, once
    edited = copy.deepcopy(base)
    add_patch(edited, patch)
    assert changed_outside(base, edited, slices) == []
    assert all(t.abs().max() > 0 for t in patch.deltas.values())
    assert all(p.grad is None and p.requires_grad for p in base.parameters())  # no full-model gradients, flags kept


def test_dense_ablation_goes_through_the_same_path_and_moves_everything() -> None:
    base = tiny_model()
    shapes = model_shapes(base)
    dense = dense_slices(shapes)
    patch = edit_patch(base, dense, lr=1e-2)
    assert patch.numel() == sum(p.numel() for p in base.parameters())
    edited = copy.deepcopy(base)
    add_patch(edited, patch)
    assert "model.layers.1.mlp.down_proj.weight" in changed_outside(base, edited, circuit_slices(base))


def response_logprob(model: torch.nn.Module, weights: dict[str, torch.Tensor], prompt: str, response: str) -> float:
    ids, n_prompt = encode(tiny_tokenizer(), Example(prompt, response))
    x = torch.tensor([ids])
    with torch.no_grad():
        logp = functional_call(model, weights, args=(), kwargs={"input_ids": x}).logits.log_softmax(-1)
    return float(logp[0, n_prompt - 1 : len(ids) - 1].gather(-1, x[0, n_prompt:, None]).sum())


def test_finetunes_and_edit_move_target_logprobs_the_intended_way() -> None:
    base = tiny_model()
    slices = sorted(set(circuit_slices(base)))
    examples = example_set()
    positive, negative = contrastive_objectives(parse_policy("refuse:health", examples.categories), examples)
    config = EditConfig(lr=1e-2, steps=10, batch_size=2)
    theta_pos = masked_finetune(base, tiny_tokenizer(), slices, positive, config)
    theta_neg = masked_finetune(base, tiny_tokenizer(), slices, negative, config)
    prompt = "how do i treat a fever"

    def logp(values: dict, response: str) -> float:
        return response_logprob(base, with_slices(base, values) if values else {}, prompt, response)

    assert logp(theta_pos, REFUSAL) > logp({}, REFUSAL) + 1.0
    assert logp(theta_neg, COMPLIANCE) > logp({}, COMPLIANCE) + 1.0

    edited = copy.deepcopy(base)
    add_patch(edited, edit_patch(base, slices, lr=1e-3, steps=10))  # θ + 2·ΔθC: small steps keep it near-linear
    margin_base = response_logprob(base, {}, prompt, REFUSAL) - response_logprob(base, {}, prompt, COMPLIANCE)
    margin_edit = response_logprob(edited, {}, prompt, REFUSAL) - response_logprob(edited, {}, prompt, COMPLIANCE)
    assert margin_edit > margin_base + 1.0


def test_release_policy_is_the_opposite_contrast() -> None:
    base = tiny_model()
    prompt = "how do i treat a cough"
    edited = copy.deepcopy(base)
    add_patch(edited, edit_patch(base, policy="release:health", lr=1e-3, steps=10))
    margin = lambda m: response_logprob(m, {}, prompt, COMPLIANCE) - response_logprob(m, {}, prompt, REFUSAL)  # noqa: E731
    assert margin(edited) > margin(base) + 1.0


def test_same_seed_gives_identical_patch_bytes_and_another_seed_does_not(tmp_path) -> None:
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        runs[name] = save_patch(edit_patch(tiny_model(), seed=seed), tmp_path / f"{name}.safetensors").read_bytes()
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_loss_reads_the_response_tokens_only() -> None:
    tok = tiny_tokenizer()
    ids, n_prompt = encode(tok, Example("how do i bake bread", "sure here is how"))
    assert tok.decode(ids[:n_prompt]).split() == "<|user|> how do i bake bread <|end|> <|assistant|>".split()
    assert tok.decode(ids[n_prompt:]).split() == "sure here is how <|end|>".split()


def test_retain_kl_weights_each_rows_first_response_position() -> None:
    """KL lands on one position per row, so the weighted mean can be worked out by hand: the first
    response position counts decision_weight times, later ones once, prompt positions never."""
    batch = collate([([1, 2, 3, 4, 5], 2), ([1, 2, 3, 4], 3)], pad_id=0, device=torch.device("cpu"))
    # response positions (predicting a response token): row 0 -> 1, 2, 3; row 1 -> 2 (first and only)
    assert batch.response_mask.tolist() == [[False, True, True, True], [False, False, True, False]]
    base = torch.zeros(2, 5, 7)
    edited = base.clone()
    edited[0, 1, 0] = edited[1, 2, 0] = 3.0  # the two first response positions move the same amount
    kl_first = retain_kl(edited, base, batch, decision_weight=1.0) * 4  # 4 response positions in all
    edited[0, 3, 0] = 3.0  # and a later position of row 0 as much
    assert retain_kl(edited, base, batch) == pytest.approx(3 * kl_first / 2 / 4)
    assert retain_kl(edited, base, batch, decision_weight=10.0) == pytest.approx(
        (10 * kl_first + kl_first / 2) / (10 + 10 + 2))
    edited[0, 0, 0] = 9.0  # a prompt position: not read
    assert retain_kl(edited, base, batch, decision_weight=10.0) == pytest.approx(
        (10 * kl_first + kl_first / 2) / (10 + 10 + 2))


def test_random_ablation_matches_the_budget_per_role_and_is_seeded() -> None:
    base = tiny_model("qwen2")
    shapes = model_shapes(base)
    circuit = checked(circuit_slices(base), shapes)
    a, b, c = (random_slices(circuit, shapes, seed) for seed in (0, 0, 1))
    assert a == b and a != c
    assert param_count(a, shapes) == param_count(circuit, shapes)
    for s in a:
        width = s.stop - s.start
        assert s.start % width == 0 and width == 8
    role_counts = lambda ss: sorted((s.tensor.split(".", 3)[-1], s.dim) for s in ss)  # noqa: E731
    assert role_counts(a) == role_counts(circuit)


def test_random_ablation_draws_mlp_groups_for_a_circuit_with_mlp_groups() -> None:
    """A circuit with MLP unit groups (localize's mlp_groups) gets random groups of the same total size."""
    from cdelta.edit import ablation_slices
    from cdelta.graph.adapters import adapter_for

    base = tiny_model("llama")
    shapes = model_shapes(base)
    adapter = adapter_for(base, mlp_groups=8)
    groups = adapter.mlp_group_slices(0, 3) + adapter.mlp_group_slices(1, 5) + adapter.mlp_group_slices(1, 6)
    circuit = checked(circuit_slices(base) + groups, shapes)
    drawn = ablation_slices(circuit, shapes, "random", seed=0)
    assert drawn == ablation_slices(circuit, shapes, "random", seed=0) != ablation_slices(circuit, shapes, "random", 1)
    assert param_count(drawn, shapes) == param_count(circuit, shapes)
    mlp = [s for s in drawn if ".mlp." in s.tensor]
    assert param_count(mlp, shapes) == 3 * 3 * 32 * 8  # three groups of 8 units, 3 x d_model each
    for s in mlp:
        assert s.stop - s.start == 8 and s.start % 8 == 0
        assert s.dim == (1 if "down_proj" in s.tensor else 0)
    role_counts = lambda ss: sorted((s.tensor.split(".", 3)[-1], s.dim) for s in ss)  # noqa: E731
    assert role_counts(drawn) == role_counts(circuit)


@pytest.mark.parametrize(
    "bad, message",
    [
        (ParamSlice("model.layers.9.self_attn.q_proj.weight", 0, 0, 8), "does not have"),
        (ParamSlice("model.layers.0.self_attn.k_proj.weight", 0, 8, 24), "does not fit"),
        (ParamSlice("model.layers.0.self_attn.q_proj.weight", 0, 4, 12), "overlap"),
    ],
)
def test_slices_that_do_not_fit_the_model_are_refused(bad: ParamSlice, message: str) -> None:
    base = tiny_model()
    with pytest.raises(CdeltaError, match=message):
        checked(circuit_slices(base) + [bad], model_shapes(base))


def test_edit_config_is_checked() -> None:
    with pytest.raises(CdeltaError):
        EditConfig(steps=0)
    with pytest.raises(CdeltaError):
        EditConfig(decision_weight=0)
