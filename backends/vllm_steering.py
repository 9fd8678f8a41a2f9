"""ActAdd and CAST on the vLLM engine: which hooks the worker runs for a batch, and the check that they ran.

The interventions are the transformers engine's own (`backends.steering`): the same vectors, the same
condition. ActAdd adds its vectors to every request. CAST works in two passes, as it does on the
transformers engine: a read of the prompts (prefill and one token, hooks that only read) gives each
prompt's mean residual stream over the condition's read positions at the condition layer, `Condition.holds_for_means`
decides per prompt, and the generation then adds the behaviour vectors to exactly the requests whose
prompt met the condition, matched by prompt token ids inside vLLM's mixed batches. Either adds at every
position or at the prompt's only, as the intervention says.

A hook that never ran means vLLM ran the model some other way (a compiled graph): the intervention
did nothing, and that is an error, never a silent unsteered answer.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

import torch

from backends.steering import ActAdd, Cast
from cdelta.errors import CdeltaError

if TYPE_CHECKING:
    from vllm import LLM


def require_fired(calls: Sequence[dict[str, int]]) -> None:
    """Every hook of every worker must have run at least once."""
    silent = sorted({name for worker in calls for name, n in worker.items() if n == 0})
    if silent:
        raise CdeltaError(f"vLLM never ran the steering hooks {', '.join(silent)}: it ran the model without its "
                          "PyTorch modules (a compiled graph?), so the intervention did nothing; start vLLM with "
                          "enforce_eager=True")


@contextmanager
def worker_hooks(llm: "LLM", **plan: Any) -> Iterator[dict[str, Any]]:
    """The worker's hooks for one plan (see `SteeringWorker.steering_install`) around the block; on a normal
    exit the first worker's report (`reads`) is filled in, after checking every hook fired."""
    llm.collective_rpc("steering_install", kwargs=plan)
    report: dict[str, Any] = {}
    try:
        yield report
    except BaseException:
        with suppress(Exception):  # the engine may be dead; the original error is the one to see
            llm.collective_rpc("steering_remove")
        raise
    results = llm.collective_rpc("steering_remove")
    require_fired([r["calls"] for r in results])
    report.update(results[0])


def cast_rows(llm: "LLM", cast: Cast, prompts: Sequence[list[int]]) -> torch.Tensor:
    """Per prompt (token ids): does it meet the condition? [n] bool, also kept as `cast.last_rows`."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    condition = cast.condition
    with worker_hooks(llm, read=(condition.layer, *condition.span, condition.read)) as report:
        llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts],
                     SamplingParams(max_tokens=1, temperature=0.0, detokenize=False), use_tqdm=False)
    means = {tuple(ids): mean for ids, mean in report["reads"]}
    missing = [i for i, p in enumerate(prompts) if tuple(p) not in means]
    if missing:
        raise CdeltaError(f"vLLM's worker read no residual stream for prompts {missing} of the batch")
    rows = condition.holds_for_means(torch.tensor([means[tuple(p)] for p in prompts], dtype=torch.float32))
    cast.last_rows = rows.cpu()
    return rows


@contextmanager
def steering(llm: "LLM", intervention: ActAdd | Cast, prompts: Sequence[list[int]]) -> Iterator[None]:
    """The intervention acting on these prompts' generation in the block."""
    if isinstance(intervention, Cast):
        rows = cast_rows(llm, intervention, prompts).tolist()
        steered: list[list[int]] | None = [list(p) for p, met in zip(prompts, rows) if met]
    else:
        steered = None
    additions = [(layer, vector.float().cpu().tolist()) for layer, vector in sorted(intervention.additions.items())]
    with worker_hooks(llm, additions=additions, steered_prompts=steered, prompt_only=intervention.positions == "prompt"):
        yield
