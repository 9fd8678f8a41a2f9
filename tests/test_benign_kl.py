"""Benign KL on a tiny random model: zero for noop, the textbook KL for a steered backend, and the
first token it scores is the one generation emits."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import eap_tiny as tiny
from backends.hf_engine import HFEngine
from backends.steering import ActAdd
from cdelta.chat import encode_chat
from cdelta.steering import ModelRef, SteeringArtifact, adding, save_artifact
from harness.benign_kl import kl_per_prompt, mean_stat, measure_benign_kl

PROMPTS = ["w1 w2", "w3 w4 w5 w6 w7 w8", "w9", "w10 w11 w12", "Sure w13 w14 w15 w16"]
LAYER = 1


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny.checkpoint(tmp_path_factory.mktemp("tiny-llama"), n_layers=3)


def vector(width: int) -> torch.Tensor:
    return 4.0 * torch.randn(width, generator=torch.Generator().manual_seed(2))


def test_the_scored_token_is_the_one_generation_emits_in_any_batch(model_dir: Path) -> None:
    engine = HFEngine.from_path(model_dir)
    together = engine.next_token_logprobs(PROMPTS, batch_size=len(PROMPTS))
    torch.testing.assert_close(together, engine.next_token_logprobs(PROMPTS, batch_size=1), atol=1e-5, rtol=1e-5)
    enc = encode_chat(engine.tokenizer, PROMPTS)
    emitted = engine.model.generate(**enc, max_new_tokens=1, do_sample=False,
                                    pad_token_id=engine.tokenizer.pad_token_id)[:, -1]
    assert together.argmax(-1).tolist() == emitted.tolist()


def test_noop_is_zero_and_a_steered_backend_is_the_textbook_kl(model_dir: Path, tmp_path: Path) -> None:
    engine = HFEngine.from_path(model_dir)
    width = engine.model.config.hidden_size
    artifact = SteeringArtifact("actadd", ModelRef.of(engine.model, str(model_dir)), {LAYER: vector(width)}, 1.0)
    path = save_artifact(artifact, tmp_path)
    result = measure_benign_kl(model_dir, ["noop", "actadd"], {"actadd": path}, PROMPTS, "test", batch_size=2)
    assert result.prompts == len(PROMPTS) and result.backends["noop"].value == 0.0
    with torch.no_grad():
        enc = encode_chat(engine.tokenizer, PROMPTS[:1])
        base = torch.log_softmax(engine.model(**enc).logits[:, -1], -1)
        with adding(engine.model, {LAYER: vector(width)}):
            steered = torch.log_softmax(engine.model(**enc).logits[:, -1], -1)
    expected = torch.nn.functional.kl_div(steered, base, log_target=True, reduction="sum")  # KL(base ‖ steered)
    one = measure_benign_kl(model_dir, ["actadd"], {"actadd": path}, PROMPTS[:1], "test")
    assert one.backends["actadd"].value == pytest.approx(float(expected), rel=1e-4)
    assert result.backends["actadd"].value > 0 and result.backends["actadd"].ci95 is not None
    zero = HFEngine(engine.model, engine.tokenizer, ActAdd({LAYER: torch.zeros(width)}))
    assert kl_per_prompt(engine.next_token_logprobs(PROMPTS), zero.next_token_logprobs(PROMPTS)).max() == 0.0


def test_mean_stat_interval() -> None:
    stat = mean_stat(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    half = 1.959963984540054 * torch.tensor([1.0, 2.0, 3.0, 4.0]).std().item() / 2
    assert stat.value == 2.5 and stat.n == 4 and stat.ci95 == pytest.approx((2.5 - half, 2.5 + half))
    assert mean_stat(torch.tensor([0.3])).ci95 is None
