"""Steering inside vLLM's worker process: forward pre-hooks on the decoder layers, per request.

vLLM mixes this class into its worker (`worker_extension_cls`); the engine calls its methods with
`llm.collective_rpc`. vLLM runs a step as one flattened batch of tokens from many requests (prefills
and decodes together), so a pre-hook on the whole model first maps each token to its request (the
runner's request order and `query_start_loc`); the layer hooks then act per token:

- add: the residual stream entering decoder layer l gets vectors[l], for every request or only for
  the requests whose prompt is marked to be steered (CAST), at every position or (prompt_only) at
  positions before the request's prompt length;
- read: each request's residual stream entering one layer, summed over the condition's read positions
  (the user's text, or the template's tokens after it: the same positions as on the transformers
  engine), for the CAST condition.

vLLM's Llama-family decoder layers are called as layer(positions, hidden, residual) and the residual
stream is hidden + residual (residual is None before layer 0). An add hands the layer the steered
stream as hidden and a zero residual, so the stream is exactly stream + vector, as on the transformers
engine. Every hook counts its calls, so the engine can refuse a run in which one never fired.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from cdelta.steering.hooks import added
from cdelta.steering.residual import Read, check_read, read_positions

STEP_HOOK = "request map"


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a vLLM causal LM (`model.layers` in every Llama-family architecture)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise RuntimeError(f"cdelta steering: {type(model).__name__} has no decoder layers at model.layers")
    return layers


def layer_stream(args: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(positions, hidden, residual) from a decoder layer's positional arguments."""
    if len(args) < 3 or not isinstance(args[1], torch.Tensor):
        raise RuntimeError("cdelta steering: a decoder layer was not called as layer(positions, hidden_states, "
                           "residual); this architecture's vLLM implementation is not supported")
    return args[0], args[1], args[2]


@dataclass
class Step:
    """The running forward pass: each token's request (-1 for padding) and that request's prompt length."""

    request_ids: list[str]
    token_request: torch.Tensor  # [tokens] long
    token_prompt_length: torch.Tensor  # [tokens] long

    def padded(self, tokens: int) -> "Step":
        """The same map over `tokens` tokens (vLLM may pad a batch beyond its scheduled tokens)."""
        extra = tokens - self.token_request.shape[0]
        if extra <= 0:
            return self
        fill = torch.full((extra,), -1, dtype=torch.long)
        return Step(self.request_ids, torch.cat([self.token_request, fill]),
                    torch.cat([self.token_prompt_length, fill]))


@dataclass
class Plan:
    """What the hooks do until removed; see the module docstring."""

    additions: dict[int, torch.Tensor] = field(default_factory=dict)
    steered_prompts: set[tuple[int, ...]] | None = None  # None: steer every request
    read: tuple[int, int, int, Read] | None = None  # (layer, template tokens before, after the user's text, read)
    prompt_only: bool = False  # add at the prompt's positions only


class SteeringWorker:
    """Methods vLLM adds to its worker; `self.model_runner` is vLLM's (V1) model runner."""

    model_runner: Any

    def steering_install(self, additions: list[tuple[int, list[float]]] | None = None,
                         steered_prompts: list[list[int]] | None = None,
                         read: tuple[int, int, int, str] | None = None, prompt_only: bool = False) -> None:
        """Register the hooks of one plan; any earlier plan's hooks are removed first. Plain lists travel
        through vLLM's RPC unchanged (fp32 values survive the round trip through Python floats)."""
        self.steering_remove()
        runner = self.model_runner
        if not hasattr(runner, "input_batch") or not hasattr(runner, "query_start_loc"):
            raise RuntimeError("cdelta steering needs vLLM's V1 model runner (VLLM_USE_V2_MODEL_RUNNER=0)")
        plan = Plan({int(layer): torch.tensor(v, dtype=torch.float32) for layer, v in additions or []},
                    None if steered_prompts is None else {tuple(p) for p in steered_prompts},
                    None if read is None else (int(read[0]), int(read[1]), int(read[2]), check_read(read[3])),
                    bool(prompt_only))
        self._steering_plan = plan
        self._steering_reads: dict[str, list[Any]] = {}  # request -> [prompt ids, sum, count]
        self._steering_rows: dict[str, bool] = {}
        self._steering_step: Step | None = None
        model = runner.model
        layers = decoder_layers(model)
        hooks: list[tuple[nn.Module, str, Callable[[nn.Module, tuple], Any]]] = [
            (model, STEP_HOOK, self._steering_map_step)]
        for layer, vector in sorted(plan.additions.items()):
            hooks.append((layers[layer], f"add@layer{layer}", self._steering_adder(f"add@layer{layer}", vector)))
        if plan.read is not None:
            name = f"read@layer{plan.read[0]}"
            hooks.append((layers[plan.read[0]], name, self._steering_reader(name, *plan.read[1:])))
        self._steering_calls = {name: 0 for _, name, _ in hooks}
        self._steering_handles: list[RemovableHandle] = [module.register_forward_pre_hook(hook)
                                                         for module, _, hook in hooks]

    def steering_remove(self) -> dict[str, Any]:
        """Remove the hooks; report their call counts and each read prompt's mean (prompt ids, d floats)."""
        for handle in getattr(self, "_steering_handles", []):
            handle.remove()
        self._steering_handles = []
        reads = [(ids, (total / max(count, 1)).tolist())
                 for ids, total, count in getattr(self, "_steering_reads", {}).values()]
        report = {"calls": dict(getattr(self, "_steering_calls", {})), "reads": reads}
        self._steering_reads, self._steering_calls = {}, {}
        return report

    def _steering_count(self, name: str) -> None:
        self._steering_calls[name] += 1

    def _steering_map_step(self, module: nn.Module, args: tuple) -> None:
        runner = self.model_runner
        n = runner.input_batch.num_reqs
        ids = list(runner.input_batch.req_ids[:n])
        starts = runner.query_start_loc.cpu[:n + 1].long()
        lengths = torch.tensor([len(runner.requests[r].prompt_token_ids) for r in ids], dtype=torch.long)
        token_request = torch.repeat_interleave(torch.arange(n), starts.diff())
        self._steering_step = Step(ids, token_request, lengths[token_request])
        self._steering_count(STEP_HOOK)

    def _steering_steers(self, request_id: str) -> bool:
        """Whether a request is steered: decided once from its prompt, remembered across its decode steps."""
        if request_id not in self._steering_rows:
            wanted = self._steering_plan.steered_prompts
            ids = tuple(self.model_runner.requests[request_id].prompt_token_ids)
            self._steering_rows[request_id] = wanted is None or ids in wanted
        return self._steering_rows[request_id]

    def _steering_token_rows(self, step: Step) -> torch.Tensor | None:
        """Per token: is its request steered? None when every request is."""
        if self._steering_plan.steered_prompts is None:
            return None
        by_request = torch.tensor([self._steering_steers(r) for r in step.request_ids] + [False], dtype=torch.bool)
        return by_request[step.token_request]  # padding (-1) picks the trailing False

    def _steering_adder(self, name: str, vector: torch.Tensor) -> Callable[[nn.Module, tuple], tuple]:
        def hook(module: nn.Module, args: tuple) -> tuple:
            positions, hidden, residual = layer_stream(args)
            assert self._steering_step is not None
            step = self._steering_step.padded(hidden.shape[0])
            rows = self._steering_token_rows(step)
            if self._steering_plan.prompt_only:
                in_prompt = positions.long().cpu() < step.token_prompt_length  # padding's length is -1
                rows = in_prompt if rows is None else rows & in_prompt
            self._steering_count(name)
            if residual is None:
                return (positions, added(hidden, vector, rows), None, *args[3:])
            return (positions, added(hidden + residual, vector, rows), torch.zeros_like(residual), *args[3:])

        return hook

    def _steering_reader(self, name: str, before: int, after: int, read: Read) -> Callable[[nn.Module, tuple], None]:
        def hook(module: nn.Module, args: tuple) -> None:
            positions, hidden, residual = layer_stream(args)
            assert self._steering_step is not None
            step = self._steering_step.padded(hidden.shape[0])
            stream = (hidden if residual is None else hidden + residual).float()
            keep = (step.token_request >= 0) & read_positions(read, positions.long().cpu(), step.token_prompt_length,
                                                              before, after)
            n = len(step.request_ids)
            owners = step.token_request[keep]
            sums = torch.zeros(n, stream.shape[-1]).index_add_(0, owners, stream[keep.to(stream.device)].cpu())
            counts = torch.bincount(owners, minlength=n)
            for index, request_id in enumerate(step.request_ids):  # a mean of no tokens is zero, as on hf
                prompt = list(self.model_runner.requests[request_id].prompt_token_ids)
                entry = self._steering_reads.setdefault(request_id, [prompt, torch.zeros_like(sums[index]), 0])
                entry[1], entry[2] = entry[1] + sums[index], entry[2] + int(counts[index])
            self._steering_count(name)

        return hook
