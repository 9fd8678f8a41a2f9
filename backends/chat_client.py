"""A Generator over an OpenAI-compatible server: one chat completion per prompt, a batch sent at once.

The server applies the model's chat template; each batch's requests go out together so the server can
batch them, and `seconds` is the batch's wall time, as on the in-process engines. Token counts come
from the server's usage report.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from backends.generation import Generation, GenerationParams, generate_in_batches
from cdelta.errors import CdeltaError


class ChatClient:
    """Chat completions from `base_url` (e.g. a `VLLMServer`) for the served `model`."""

    def __init__(self, base_url: str, model: str, timeout_s: float = 600.0) -> None:
        self.base_url, self.model, self.timeout_s = base_url.rstrip("/"), model, timeout_s

    def request(self, prompt: str, params: GenerationParams) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": prompt}],
                                "max_tokens": params.max_new_tokens, "temperature": params.temperature}
        if params.min_new_tokens:
            body["min_tokens"] = params.min_new_tokens  # a vLLM extension of the OpenAI API
        return body

    def _complete(self, client: httpx.Client, prompt: str, params: GenerationParams) -> tuple[str, int, int]:
        try:
            response = client.post(f"{self.base_url}/v1/chat/completions", json=self.request(prompt, params))
        except httpx.HTTPError as exc:
            raise CdeltaError(f"the server at {self.base_url} did not answer: {exc}") from None
        if response.status_code != 200:
            raise CdeltaError(f"the server at {self.base_url} answered {response.status_code}: {response.text[:500]}")
        data = response.json()
        usage = data["usage"]
        return (data["choices"][0]["message"]["content"] or "").strip(), usage["prompt_tokens"], \
            usage["completion_tokens"]

    def generate(self, prompts: Sequence[str], params: GenerationParams,
                 on_batch: Callable[[int], None] | None = None) -> list[Generation]:
        with httpx.Client(timeout=self.timeout_s) as client, ThreadPoolExecutor(params.batch_size) as pool:
            return generate_in_batches(
                prompts, params.batch_size,
                lambda chunk: list(pool.map(lambda p: self._complete(client, p, params), chunk)), on_batch)
