"""Steering math, hooks, artifacts and backends on tiny random models: exact, per sequence, loud on misuse."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import eap_tiny as tiny
from backends.generation import GenerationParams
from backends.hf_engine import HFEngine
from backends.registry import make_backend
from backends.steering import ActAdd, Cast
from cdelta.chat import template_span
from cdelta.errors import CdeltaError
from cdelta.steering import (Condition, ModelRef, SteeringArtifact, ablating, adding, condition_vectors,
                             fit_refusal_direction, load_artifact, read_mean, read_prompts, refusal_score, save_artifact,
                             similarity)
from cdelta.steering.condition import best_threshold, condition_scores, fit_condition
from cdelta.steering.residual import read_positions

PROMPTS = ["w1 w2", "w3 w4 w5 w6 w7 w8", "w9", "w10 w11 w12", "Sure w13 w14 w15 w16", "I w17", "w18 w19 w20 w21",
           "Here w22"]
PARAMS = GenerationParams(max_new_tokens=6, batch_size=len(PROMPTS))
LAYER = 1
SPAN = (2, 2)  # "<s> <|user|>" before the user's text, " <|end|> <|assistant|>" after


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama (GQA, 3 layers, width 32) saved as a checkpoint folder, as backends load models."""
    return tiny.checkpoint(tmp_path_factory.mktemp("tiny-llama"), n_layers=3)


@pytest.fixture(scope="module")
def engine(model_dir: Path) -> HFEngine:
    torch.set_num_threads(1)
    return HFEngine.from_path(model_dir)


@pytest.fixture(scope="module")
def model(engine: HFEngine) -> nn.Module:
    return engine.model


@pytest.fixture(scope="module")
def tok(engine: HFEngine):
    return engine.tokenizer


def texts(engine: HFEngine, prompts: list[str], batch_size: int | None = None) -> list[str]:
    params = GenerationParams(max_new_tokens=PARAMS.max_new_tokens, batch_size=batch_size or len(prompts))
    return [g.text for g in engine.generate(prompts, params)]


def no_hooks_left(model: nn.Module) -> bool:
    return all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())


def split_condition(model: nn.Module, tok, method: str = "pca", read: str = "instruction") -> Condition:
    """A condition that holds for about half of PROMPTS: threshold between the two middle scores."""
    vector = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    means = read_prompts(model, tok, PROMPTS, [LAYER], read_mean(read, *SPAN))[0]  # type: ignore[arg-type]
    scores = condition_scores(means, vector, method).sort().values  # type: ignore[arg-type]
    middle = len(PROMPTS) // 2
    return Condition(LAYER, vector, float(scores[middle - 1] + scores[middle]) / 2, "above", SPAN, method,  # type: ignore[arg-type]
                     read)  # type: ignore[arg-type]


def behaviour(model: nn.Module, scale: float = 8.0) -> dict[int, torch.Tensor]:
    return {LAYER: scale * torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(2))}


# -- reading the residual stream -----------------------------------------------------------------
def test_template_span_counts_the_tokens_around_the_users_text(tok):
    assert template_span(tok) == SPAN


def test_reads_average_exactly_their_tokens_of_a_padded_row():
    hidden = torch.arange(8, dtype=torch.float32).view(1, 8, 1).repeat(3, 1, 1)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0]])
    # row 0: real tokens at 2..7, user's text at 4..5; row 1: user's text at 2..5; row 2 (right-padded): 2..3
    torch.testing.assert_close(read_mean("instruction", *SPAN)(hidden, mask), torch.tensor([[4.5], [3.5], [2.5]]))
    torch.testing.assert_close(read_mean("post_instruction", *SPAN)(hidden, mask), torch.tensor([[6.5], [6.5], [4.5]]))


def test_read_positions_of_a_flattened_batch_leave_out_generated_tokens():
    index, length = torch.tensor([0, 1, 2, 3, 4, 5, 6]), torch.tensor(6)  # six prompt tokens, then a generated one
    assert read_positions("instruction", index, length, *SPAN).tolist() == [False, False, True, True, False, False,
                                                                            False]
    assert read_positions("post_instruction", index, length, *SPAN).tolist() == [False] * 4 + [True, True, False]
    with pytest.raises(CdeltaError, match="unknown read 'middle'"):
        read_mean("middle", *SPAN)  # type: ignore[arg-type]


@pytest.mark.parametrize("reduce", [read_mean("instruction", *SPAN), read_mean("post_instruction", *SPAN)],
                         ids=["instruction", "post_instruction"])
def test_reads_in_a_padded_batch_equal_reads_alone(model, tok, reduce):
    batch = read_prompts(model, tok, PROMPTS, [0, 1, 2], reduce, batch_size=len(PROMPTS))
    alone = torch.cat([read_prompts(model, tok, [p], [0, 1, 2], reduce) for p in PROMPTS], dim=1)
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5)
    assert no_hooks_left(model)


# -- backends ------------------------------------------------------------------------------------
def test_noop_backend_equals_the_plain_engine_and_zero_actadd_equals_noop(model, tok, model_dir):
    plain = texts(HFEngine(model, tok), PROMPTS)
    assert texts(make_backend("noop", model_dir), PROMPTS) == plain  # type: ignore[arg-type]
    zero = {LAYER: torch.zeros(model.config.hidden_size)}
    assert texts(HFEngine(model, tok, ActAdd(zero)), PROMPTS) == plain


def test_actadd_steers_every_sequence_and_removes_its_hooks(model, tok):
    plain = texts(HFEngine(model, tok), PROMPTS)
    steered = texts(HFEngine(model, tok, ActAdd(behaviour(model))), PROMPTS)
    assert sum(a != b for a, b in zip(plain, steered)) >= len(PROMPTS) // 2
    assert no_hooks_left(model)


def test_cast_in_a_mixed_batch_gives_each_prompt_what_it_gets_alone(model, tok):
    cast = Cast(split_condition(model, tok), behaviour(model))
    engine = HFEngine(model, tok, cast)
    together = texts(engine, PROMPTS)
    rows = cast.last_rows
    assert rows is not None and 0 < int(rows.sum()) < len(PROMPTS), "the batch must mix steered and unsteered prompts"
    alone = [texts(engine, [p])[0] for p in PROMPTS]
    assert together == alone
    plain = texts(HFEngine(model, tok), PROMPTS)
    for met, got, base in zip(rows.tolist(), together, plain):
        if not met:
            assert got == base  # unsteered prompts are exactly noop's
    assert any(got != base for met, got, base in zip(rows.tolist(), together, plain) if met)
    assert no_hooks_left(model)


def greedy_with_prompt_steered(model: nn.Module, tok, prompt: str, vector: torch.Tensor, steps: int) -> list[int]:
    """Reference for prompt-only steering without a cache: every step reruns the whole sequence, adding
    `vector` at the prompt's positions only, and appends the argmax."""
    ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]
    n_prompt, out = ids.shape[1], []
    layer = model.model.layers[LAYER]

    def add(module: nn.Module, args: tuple, kwargs: dict) -> tuple:
        hidden = (args[0] if args else kwargs["hidden_states"]).clone()
        hidden[:, :n_prompt] += vector
        return ((hidden, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": hidden})

    handle = layer.register_forward_pre_hook(add, with_kwargs=True)
    try:
        for _ in range(steps):
            with torch.no_grad():
                nxt = int(model(ids).logits[0, -1].argmax())
            out.append(nxt)
            if nxt == tok.eos_token_id:
                break
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    finally:
        handle.remove()
    return out


def test_prompt_only_steering_equals_a_cacheless_reference_and_differs_from_every_position(model, tok):
    vector = behaviour(model)[LAYER]
    prompt_only = HFEngine(model, tok, ActAdd({LAYER: vector}, "prompt"))
    everywhere = texts(HFEngine(model, tok, ActAdd({LAYER: vector})), PROMPTS)
    got = texts(prompt_only, PROMPTS)
    for prompt, text in zip(PROMPTS, got):
        reference = greedy_with_prompt_steered(model, tok, prompt, vector, PARAMS.max_new_tokens)
        assert text == tok.decode(reference, skip_special_tokens=True).strip()
    assert got != everywhere and got != texts(HFEngine(model, tok), PROMPTS)
    assert no_hooks_left(model)


def test_prompt_only_cast_in_a_mixed_batch_gives_each_prompt_what_it_gets_alone(model, tok):
    engine = HFEngine(model, tok, Cast(split_condition(model, tok), behaviour(model), "prompt"))
    assert texts(engine, PROMPTS) == [texts(engine, [p])[0] for p in PROMPTS]


def test_cast_decides_per_sequence_in_batches_of_any_size(model, tok):
    engine = HFEngine(model, tok, Cast(split_condition(model, tok), behaviour(model)))
    assert texts(engine, PROMPTS, batch_size=3) == texts(engine, PROMPTS)


def test_a_discriminant_condition_read_after_the_instruction_decides_per_sequence(model, tok):
    cast = Cast(split_condition(model, tok, "lda", "post_instruction"), behaviour(model))
    engine = HFEngine(model, tok, cast)
    together = texts(engine, PROMPTS)
    rows = cast.last_rows
    assert rows is not None and 0 < int(rows.sum()) < len(PROMPTS)
    assert together == [texts(engine, [p])[0] for p in PROMPTS]


# -- hooks ---------------------------------------------------------------------------------------
def test_a_hook_that_never_fires_is_an_error(model):
    with pytest.raises(CdeltaError, match="never fired"):
        with adding(model, behaviour(model)):
            pass  # the model was never run
    assert no_hooks_left(model)


def test_an_error_inside_the_block_propagates_and_hooks_are_removed(model, tok):
    with pytest.raises(RuntimeError, match="boom"):
        with adding(model, behaviour(model)):
            raise RuntimeError("boom")
    assert no_hooks_left(model)


def test_steering_vectors_of_the_wrong_shape_or_layer_are_refused(model):
    with pytest.raises(CdeltaError, match="width 32"):
        adding(model, {0: torch.zeros(31)})
    with pytest.raises(CdeltaError, match="layer 3 is out of range"):
        adding(model, {3: torch.zeros(32)})


def test_ablation_makes_the_model_blind_to_the_direction(model, tok):
    u = torch.randn(32, generator=torch.Generator().manual_seed(3))
    ids = tok(["<s> <|user|> w1 w2 w3 <|end|> <|assistant|>"], return_tensors="pt")["input_ids"]
    with torch.no_grad(), ablating(model, u):
        blind = model(ids).logits
    with torch.no_grad(), ablating(model, u), adding(model, {0: 5 * u, 2: -3 * u}):
        pushed = model(ids).logits
    with torch.no_grad():
        plain = model(ids).logits
    torch.testing.assert_close(blind, pushed, atol=1e-4, rtol=1e-4)  # |5u| ≫ |h|: fp32 cancellation
    assert not torch.allclose(blind, plain, atol=1e-2)


# -- the math ------------------------------------------------------------------------------------
def test_refusal_score_is_the_log_odds_of_a_refusal_opening():
    probs = torch.tensor([[0.6, 0.1, 0.3], [0.05, 0.05, 0.9]])
    score = refusal_score(probs.log(), [0, 1])
    torch.testing.assert_close(score, torch.tensor([0.7 / 0.3, 0.1 / 0.9]).log())


@pytest.mark.parametrize("method", ["pca", "mean"])
def test_condition_vector_points_from_other_to_target(method):
    g = torch.Generator().manual_seed(0)
    other = torch.randn(2, 40, 16, generator=g)
    target = torch.randn(2, 40, 16, generator=g) * 0.1 + other
    target[:, :, 3] += 2.0
    c = condition_vectors(target, other, method)
    assert c.shape == (2, 16)
    assert torch.all(c[:, 3] > 0.95)


def test_similarity_is_cosine_of_h_and_tanh_of_its_projection():
    h, c = torch.tensor([[1.0, 2.0, -1.0]]), torch.tensor([0.0, 2.0, 0.0])
    projected = torch.tanh(torch.tensor([0.0, 2.0, 0.0]))  # P h = (c·h / c·c) c = (4/4)·c
    expected = torch.nn.functional.cosine_similarity(h, projected[None], dim=-1)
    torch.testing.assert_close(similarity(h, c), expected)


def test_the_discriminant_discounts_a_direction_that_varies_within_classes():
    # the classes differ by 1 along dims 0 and 1, but dim 1 also varies ±3 within each class: Fisher's direction
    # leans on dim 0, the plain difference of means weighs both alike
    g = torch.Generator().manual_seed(4)
    noise = torch.randn(1, 200, 4, generator=g) * torch.tensor([0.1, 3.0, 0.1, 0.1])
    other = noise[:, :100]
    target = noise[:, 100:] + torch.tensor([1.0, 1.0, 0.0, 0.0])
    lda, mean = condition_vectors(target, other, "lda")[0], condition_vectors(target, other, "mean")[0]
    assert lda[0] > 0.9 and abs(float(lda[1])) < 0.2
    assert abs(float(mean[0]) - float(mean[1])) < 0.6


def test_a_discriminant_condition_is_scored_by_projection_and_fitted_per_layer():
    h, c = torch.tensor([[1.0, 2.0, -1.0], [0.0, -1.0, 3.0]]), torch.tensor([0.0, 1.0, 0.0])
    torch.testing.assert_close(condition_scores(h, c, "lda"), torch.tensor([2.0, -1.0]))
    torch.testing.assert_close(condition_scores(h, c, "pca"), similarity(h, c))
    states = torch.stack([torch.zeros(4, 3), h.repeat(2, 1)])  # layer 0 tells nothing apart, layer 1 does
    fit = fit_condition(torch.stack([c, c]), states, torch.tensor([True, False, True, False]), SPAN, "lda",
                        "post_instruction")
    condition = fit.condition
    assert (condition.layer, condition.method, condition.read, fit.f1_dev) == (1, "lda", "post_instruction", 1.0)
    assert fit.summary()["read"] == "post_instruction" and (condition.comparator, condition.threshold) == ("above", 0.5)


def test_threshold_grid_search_finds_the_separating_cut_and_its_direction():
    sims = torch.tensor([0.1, 0.2, 0.25, 0.6, 0.7, 0.9])
    labels = torch.tensor([True, True, True, False, False, False])
    best = best_threshold(sims, labels)
    assert best.comparator == "below" and best.f1 == 1.0 and 0.25 < best.threshold < 0.6


def test_refusal_direction_candidates_and_filters(model, tok):
    fit = fit_refusal_direction(model, tok, ["w1 w2 w3", "w4 w5"], ["w9 w10", "w11 w12 w13"], ["w14 w15", "w16"],
                                tiny.REFUSAL, max_layer_fraction=0.7)
    assert fit.directions.shape == (3, 32) and len(fit.candidates) == 3
    assert fit.candidates[0].reason == "zero direction"  # post-instruction tokens embed alike
    assert fit.candidates[2].steering_score is None and not fit.candidates[2].kept  # in the last layers
    assert fit.layer == 1
    assert no_hooks_left(model)


# -- artifacts -----------------------------------------------------------------------------------
def cast_artifact(model: nn.Module, tok, **changes) -> SteeringArtifact:
    fields = dict(method="cast", model=ModelRef.of(model, "tiny"), behaviour={LAYER: behaviour(model)[LAYER]},
                  coefficient=1.5, condition=split_condition(model, tok), f1_dev=0.75, fit={"note": "test"})
    return SteeringArtifact(**{**fields, **changes})


def test_a_discriminant_conditions_method_and_read_survive_the_round_trip(model, tok, tmp_path):
    condition = split_condition(model, tok, "lda", "post_instruction")
    save_artifact(cast_artifact(model, tok, condition=condition), tmp_path)
    loaded = load_artifact(tmp_path, "cast").condition
    assert loaded is not None and (loaded.method, loaded.read) == ("lda", "post_instruction")
    prompts_met = condition.holds_for_prompts(model, tok, PROMPTS)
    assert loaded.holds_for_prompts(model, tok, PROMPTS).tolist() == prompts_met.tolist()


def test_artifact_round_trip_and_backend(model, tok, model_dir, tmp_path):
    artifact = cast_artifact(model, tok)
    path = save_artifact(artifact, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"cast.json", "cast.safetensors"}
    loaded = load_artifact(tmp_path, "cast")
    loaded.check_fits(model, tok, "tiny")
    assert loaded.coefficient == 1.5 and loaded.f1_dev == 0.75 and loaded.fit == {"note": "test"}
    assert loaded.positions == "all"
    save_artifact(cast_artifact(model, tok, positions="prompt"), tmp_path / "p")
    assert load_artifact(tmp_path / "p", "cast").positions == "prompt"
    assert loaded.condition is not None and loaded.condition.threshold == artifact.condition.threshold
    torch.testing.assert_close(loaded.behaviour[LAYER], artifact.behaviour[LAYER])
    direct = texts(HFEngine(model, tok, Cast(artifact.condition, artifact.additions())), PROMPTS)
    assert texts(make_backend("cast", model_dir, path), PROMPTS) == direct  # type: ignore[arg-type]
    with pytest.raises(CdeltaError, match="is a cast artifact, not actadd"):
        load_artifact(path, "actadd")


def test_artifact_from_another_model_is_refused(model, tok, tmp_path):
    other = tiny.model("llama", seed=1, n_layers=3)
    path = save_artifact(cast_artifact(other, tok), tmp_path)
    with pytest.raises(CdeltaError, match="fitted on model 'tiny'.*its weights differ"):
        load_artifact(path).check_fits(model, tok, "the tiny model")


def test_artifact_vectors_of_the_wrong_width_or_layer_are_refused(model, tok):
    with pytest.raises(CdeltaError, match="residual stream has width 32"):
        cast_artifact(model, tok, behaviour={LAYER: torch.ones(31)}).check_fits(model, tok, "tiny")
    with pytest.raises(CdeltaError, match="layer 7 is out of range"):
        cast_artifact(model, tok, behaviour={7: torch.ones(32)}).check_fits(model, tok, "tiny")


def test_a_condition_read_over_another_chat_template_is_refused(model, tok):
    artifact = cast_artifact(model, tok)
    shifted = cast_artifact(model, tok, condition=Condition(LAYER, artifact.condition.vector, 0.0, "above", (1, 2)))
    with pytest.raises(CdeltaError, match="writes 1 tokens before and 2 after .* writes 2 before and 2 after"):
        shifted.check_fits(model, tok, "tiny")


def test_a_tampered_vectors_file_is_refused(model, tok, tmp_path):
    save_artifact(cast_artifact(model, tok), tmp_path)
    (tmp_path / "cast.safetensors").write_bytes(b"not tensors")
    with pytest.raises(CdeltaError, match="is missing or is not the vectors file"):
        load_artifact(tmp_path / "cast.json")


def test_backend_names_and_artifacts_are_checked(model_dir):
    with pytest.raises(CdeltaError, match="unknown backend 'steer'"):
        make_backend("steer", model_dir)
    with pytest.raises(CdeltaError, match="needs a steering artifact"):
        make_backend("actadd", model_dir)
    with pytest.raises(CdeltaError, match="does not exist"):
        make_backend("cast", model_dir, model_dir / "cast.json")


def test_artifact_positions_and_old_schema_are_checked(model, tok, tmp_path):
    with pytest.raises(CdeltaError, match="behaviour positions 'decode' is not one of all, prompt"):
        cast_artifact(model, tok, positions="decode").check_fits(model, tok, "tiny")
    path = save_artifact(cast_artifact(model, tok), tmp_path)
    header = json.loads(path.read_text())
    path.write_text(json.dumps({**header, "schema_version": 1}))
    with pytest.raises(CdeltaError, match="schema version 1; this cdelta reads 2, 3: fit it again"):
        load_artifact(path)
    # a version-2 artifact (no condition method or read) is CAST's: similarity over the user's text
    old = {k: v for k, v in header["condition"].items() if k not in ("method", "read")}
    path.write_text(json.dumps({**header, "schema_version": 2, "condition": old}))
    condition = load_artifact(path).condition
    assert condition is not None and (condition.method, condition.read) == ("pca", "instruction")
    path.write_text(json.dumps({**header, "condition": {**header["condition"], "read": "middle"}}))
    with pytest.raises(CdeltaError, match="condition read 'middle' is not one of"):
        load_artifact(path)
