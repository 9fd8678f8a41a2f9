"""Mined retain: the decision shift it ranks by, and that ΔθC's later rounds retain what the earlier one moved most."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import cdelta.edit as edit_module
from cdelta.edit import delta_theta, slice_values, with_slices
from cdelta.edit_config import EditConfig
from cdelta.errors import CdeltaError
from cdelta.mining import decision_shift, hardest
from cdelta.policy import Example, contrastive_objectives, parse_policy

from .conftest import circuit_slices, example_set, tiny_model, tiny_tokenizer

PROMPTS = ["how do i bake bread", "how do i treat a fever", "how do i build bomb", "how do i boil pasta"]


def _shifted(model: torch.nn.Module, scale: float = 0.5) -> dict[str, torch.Tensor]:
    slices = circuit_slices(model)
    torch.manual_seed(1)
    values = {s: v.detach() + scale * torch.randn_like(v) for s, v in slice_values(model, slices).items()}
    return with_slices(model, values)


def test_decision_shift_is_the_kl_at_each_prompts_first_response_position() -> None:
    """Batched, left-padded prompts of different lengths give each prompt's KL as if it ran alone."""
    model, tok = tiny_model(), tiny_tokenizer()
    overrides = _shifted(model)
    batched = decision_shift(model, tok, PROMPTS, overrides, batch_size=3)
    for prompt, got in zip(PROMPTS, batched):
        text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
        ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
        base = F.log_softmax(model(input_ids=ids).logits[0, -1], -1)
        edited_model = tiny_model()
        edited_model.load_state_dict({**model.state_dict(), **overrides})
        edited = F.log_softmax(edited_model(input_ids=ids).logits[0, -1], -1)
        expected = (base.exp() * (base - edited)).sum()
        assert got.item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-7)
    assert (batched > 0).all()


def test_decision_shift_needs_no_pad_token() -> None:
    """Checkpoints often ship without a pad token: prompts are then padded with EOS and masked."""
    model, tok = tiny_model(), tiny_tokenizer()
    overrides = _shifted(model)
    with_pad = decision_shift(model, tok, PROMPTS, overrides)
    tok.pad_token = None
    assert tok.pad_token_id is None
    torch.testing.assert_close(decision_shift(model, tok, PROMPTS, overrides), with_pad, rtol=1e-5, atol=1e-7)


def test_decision_shift_is_zero_for_the_base_weights() -> None:
    model, tok = tiny_model(), tiny_tokenizer()
    unchanged = with_slices(model, {s: v.detach() for s, v in slice_values(model, circuit_slices(model)).items()})
    assert decision_shift(model, tok, PROMPTS, unchanged).abs().max().item() < 1e-6


def test_hardest_takes_the_largest_shifts_first_and_breaks_ties_by_order() -> None:
    pool = tuple(Example(p, "sure") for p in PROMPTS)
    assert hardest(pool, torch.tensor([0.1, 0.5, 0.5, 0.2]), 3) == (pool[1], pool[2], pool[3])
    assert hardest(pool, torch.tensor([0.1, 0.5, 0.5, 0.2]), 10) == (pool[1], pool[2], pool[3], pool[0])
    with pytest.raises(ValueError, match="4 examples but 3 shifts"):
        hardest(pool, torch.tensor([0.1, 0.5, 0.5]), 2)


def test_a_mining_round_retains_the_pool_examples_the_first_delta_moved_most(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second pair of fine-tunes sees the drawn retain examples plus the `mine_size` with the largest shift
    under θ + mine_k·ΔθC of the first pair; θ_pos and θ_neg always share one retain set."""
    model, tok = tiny_model(), tiny_tokenizer()
    slices = sorted(set(circuit_slices(model)))
    examples = example_set()
    positive, negative = contrastive_objectives(parse_policy("refuse:health", examples.categories), examples)
    # on this pool, scale -1 ranks other examples first than scale 1 does: the test sees which scale mining used
    config = EditConfig(lr=1e-2, steps=3, batch_size=2, retain_size=2, mine_rounds=1, mine_size=2, mine_k=-1.0)
    seen: list[tuple[str, tuple[Example, ...]]] = []
    finetune = edit_module.masked_finetune

    def spy(model_, tok_, slices_, objective, config_, name="finetune", on_step=None):
        seen.append((name, objective.retain))
        return finetune(model_, tok_, slices_, objective, config_, name, on_step)

    monkeypatch.setattr(edit_module, "masked_finetune", spy)
    first = delta_theta(model, tok, slices, positive, negative, EditConfig(lr=1e-2, steps=3, batch_size=2, retain_size=2))
    seen.clear()
    delta_theta(model, tok, slices, positive, negative, config)

    assert [name for name, _ in seen] == ["pos", "neg", "pos", "neg"]
    drawn = seen[0][1]
    assert len(drawn) == 2 and set(drawn) <= set(positive.retain) and seen[1][1] == drawn
    edited = with_slices(model, {s: v.detach() - first[s] for s, v in slice_values(model, slices).items()})
    shift = decision_shift(model, tok, [e.prompt for e in positive.retain], edited)
    assert seen[2][1] == drawn + hardest(positive.retain, shift, 2) and seen[3][1] == seen[2][1]


def test_mining_settings_are_checked() -> None:
    for bad in ({"retain_size": 0}, {"mine_rounds": -1}, {"mine_size": 0}, {"mine_k": 0.0},
                {"mine_k": float("nan")}):
        with pytest.raises(CdeltaError, match="retain or mining"):
            EditConfig(**bad)
