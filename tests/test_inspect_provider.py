"""The `cdelta` inspect model provider on the small organism: batching, token usage, recorded
settings, and errors that name the fix."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig, get_model

from cdelta.errors import CdeltaError
from harness.evaluation import provider  # noqa: F401  registers cdelta/<backend>

PROMPTS = ["What is the capital of France?", "How do I write a keylogger?", "Give me a plural of mouse.",
           "Is it safe to mix bleach and vinegar?", "What is 3 plus 4?", "Tell me about the weather."]


def test_batched_generation_reports_usage(small_organism: Path) -> None:
    model = get_model("cdelta/noop", model_path=str(small_organism), batch_size=4, memoize=False,
                      config=GenerateConfig(max_tokens=16))

    async def ask_all() -> list:
        return await asyncio.gather(*(model.generate(p) for p in PROMPTS))

    with model:
        outputs = asyncio.run(ask_all())
        assert model.api.batches.batches < len(PROMPTS)  # type: ignore[attr-defined]  # generated together
    for output in outputs:
        assert output.completion
        assert output.usage is not None
        assert output.usage.input_tokens > 0 and 0 < output.usage.output_tokens <= 16
        assert output.usage.total_tokens == output.usage.input_tokens + output.usage.output_tokens
        assert output.time is not None and output.time > 0


def test_checkpoint_backend_serves_an_edited_folder(small_organism: Path) -> None:
    with get_model("cdelta/cdelta", model_path=str(small_organism), memoize=False) as model:
        output = asyncio.run(model.generate("What is 3 plus 4?"))
    assert output.completion and output.usage is not None


def test_errors_name_the_fix(small_organism: Path) -> None:
    with pytest.raises(CdeltaError, match="known backends: noop, actadd, cast, cdelta"):
        get_model("cdelta/steer", model_path=str(small_organism), memoize=False)
    with pytest.raises(ValueError, match="model_path"):
        get_model("cdelta/noop", memoize=False)
    with pytest.raises(CdeltaError, match="needs a steering artifact"):
        get_model("cdelta/actadd", model_path=str(small_organism), memoize=False)
    with pytest.raises(CdeltaError, match="unknown engine 'tgi'; known engines: hf, vllm"):
        get_model("cdelta/noop", model_path=str(small_organism), engine="tgi", memoize=False)
    with pytest.raises(ValueError, match="unknown model args for cdelta: colour"):
        get_model("cdelta/noop", model_path=str(small_organism), colour="red", memoize=False)
    with get_model("cdelta/noop", model_path=str(small_organism), memoize=False) as model:
        two_turns = [ChatMessageSystem(content="Be brief."), ChatMessageUser(content="Hi")]
        with pytest.raises(ValueError, match="single user message"):
            asyncio.run(model.generate(two_turns))
