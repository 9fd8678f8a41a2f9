"""The inspect model provider `cdelta`: `--model cdelta/<backend> -M model_path=DIR [-M artifact=PATH]
[-M engine=hf|vllm] [-M batch_size=N]` serves any backend of `backends.registry` through inspect.

It always reports token usage from the engine's counts (without it inspect counts tokens with a
tiktoken vocabulary it would download), and records the generation settings of every call.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from inspect_ai.model import (
    ChatMessage,
    GenerateConfig,
    ModelAPI,
    ModelCall,
    ModelOutput,
    ModelUsage,
    modelapi,
)
from inspect_ai.tool import ToolChoice, ToolInfo

from backends.generation import Generation, GenerationParams
from backends.registry import check_engine, make_backend
from harness.evaluation.batching import BatchQueue

DEFAULTS = GenerationParams()


def user_prompt(messages: list[ChatMessage]) -> str:
    """The one user turn a backend takes (engines apply the model's own chat template)."""
    if len(messages) != 1 or messages[0].role != "user":
        roles = ", ".join(m.role for m in messages)
        raise ValueError(f"cdelta backends take a single user message, got [{roles}]")
    return messages[0].text


def generation_params(config: GenerateConfig, batch_size: int) -> GenerationParams:
    """inspect's settings in the engine's terms; greedy unless a temperature is given."""
    return GenerationParams(
        max_new_tokens=config.max_tokens or DEFAULTS.max_new_tokens,
        temperature=config.temperature or 0.0,
        batch_size=batch_size,
    )


def model_output(model: str, generation: Generation, params: GenerationParams) -> ModelOutput:
    hit_limit = generation.output_tokens >= params.max_new_tokens
    output = ModelOutput.from_content(model, generation.text, stop_reason="max_tokens" if hit_limit else "stop")
    output.usage = ModelUsage(
        input_tokens=generation.prompt_tokens,
        output_tokens=generation.output_tokens,
        total_tokens=generation.prompt_tokens + generation.output_tokens,
    )
    output.time = generation.seconds
    return output


@modelapi(name="cdelta")
class CdeltaModelAPI(ModelAPI):
    """One backend instance (one engine) per provider instance; requests are batched."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),
        model_path: str | None = None,
        artifact: str | None = None,
        engine: str = "hf",
        device: str = "cpu",
        batch_size: int | str = DEFAULTS.batch_size,
        **unknown: Any,
    ) -> None:
        super().__init__(model_name=model_name, base_url=base_url, api_key=api_key, config=config)
        if unknown:
            raise ValueError(f"unknown model args for cdelta: {', '.join(unknown)}; "
                             "known: model_path, artifact, engine, device, batch_size")
        if model_path is None:
            raise ValueError("cdelta models need -M model_path=<Hugging Face model folder>")
        check_engine(engine)
        self.batch_size = int(batch_size)
        self.settings = {"backend": model_name, "model_path": model_path, "artifact": artifact, "engine": engine,
                         "device": device}
        self.batches = BatchQueue(make_backend(model_name, Path(model_path), Path(artifact) if artifact else None,
                                               device=device, engine=engine))

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> tuple[ModelOutput, ModelCall]:
        if tools:
            raise ValueError("cdelta backends do not call tools")
        prompt = user_prompt(input)
        params = generation_params(config, self.batch_size)
        generation = await self.batches.generate(prompt, params)
        output = model_output(self.model_name, generation, params)
        request = {**self.settings, **params.__dict__}
        response = {"text": generation.text, "prompt_tokens": generation.prompt_tokens,
                    "output_tokens": generation.output_tokens, "batch_seconds": generation.seconds}
        return output, ModelCall.create(request, response, time=generation.seconds)

    def max_tokens(self) -> int | None:
        return DEFAULTS.max_new_tokens

    def max_connections(self) -> int:
        """Two batches in flight: one generating while the next one gathers."""
        return 2 * self.batch_size

    def collapse_user_messages(self) -> bool:
        return True

    def close(self) -> None:
        """Serve what is queued, then stop the engine's own processes if it has any (vLLM)."""
        self.batches.close()
        stop = getattr(self.batches.generator, "close", None)
        if stop is not None:
            stop()
