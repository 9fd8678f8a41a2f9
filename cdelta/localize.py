"""`localize`: contrast pairs in, circuit out — attribution, selection, faithfulness, provenance."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from cdelta.circuit.artifact import Circuit, DataInfo, ModelInfo, SelectionInfo
from cdelta.circuit.faithfulness import curve_counts, faithfulness
from cdelta.circuit.rules import DEFAULT_COST_EXPONENT, RULES, check_cost_exponent
from cdelta.circuit.selection import select
from cdelta.eap.attribute import attribute
from cdelta.eap.methods import METHODS
from cdelta.eap.metrics import Metric, metric_name, refusal_logit_diff
from cdelta.eap.pairs import ContrastPair, batch_pairs, data_fingerprint, tokenize_pairs
from cdelta.eap.targets import check_intervention
from cdelta.errors import CdeltaError
from cdelta.fingerprint import fingerprint
from cdelta.graph.adapters import adapter_for
from cdelta.graph.params import ParamAccount


def localize(
    model: torch.nn.Module,
    tokenizer: Any,
    pairs: Sequence[ContrastPair],
    *,
    refusal_ids: Sequence[int] = (),
    compliance_ids: Sequence[int] = (),
    metric: Metric | None = None,
    method: str = "EAP-IG-inputs",
    steps: int = 5,
    intervention: str = "patching",
    rule: str = "budget",
    size: float = 0.05,
    cost_exponent: float = DEFAULT_COST_EXPONENT,
    mlp_groups: int = 1,
    batch_size: int = 8,
    chat: bool = True,
    curve_points: int | None = 12,
    model_name: str = "",
    progress: bool = True,
    held_out: Sequence[ContrastPair] | None = None,
) -> Circuit:
    """Find the circuit behind `metric` (default: refusal logit difference) on clean vs corrupted prompts.

    `rule` and `size` choose the circuit: a parameter `budget` fraction, `top_edges` / `greedy`
    edge counts, or `top_nodes`; under a budget, `cost_exponent` a ranks edges by
    |score| / (source parameters)^a (0: by |score| alone). `mlp_groups` splits each MLP into that many nodes of equal
    unit blocks, so a small budget can afford parts of MLPs. With `curve_points`, the circuit's
    faithfulness and a curve over edge counts are measured on the same pairs (None skips that extra pass),
    or on `held_out` pairs when given: prompts of phrasings the attribution never saw.
    """
    if method not in METHODS:
        raise CdeltaError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}")
    if rule not in RULES:
        raise CdeltaError(f"unknown selection rule {rule!r}; choose one of {', '.join(RULES)}")
    if rule == "budget" and not 0 < size <= 1:
        raise CdeltaError(f"a parameter budget is a fraction in (0, 1] of all parameters, got {size}")
    check_cost_exponent(cost_exponent)
    cost_exponent = cost_exponent if rule == "budget" else 0.0
    check_intervention(intervention)
    metric = metric or refusal_logit_diff(refusal_ids, compliance_ids)
    adapter = adapter_for(model, mlp_groups)
    model.eval()
    device = model.get_input_embeddings().weight.device
    tokens = tokenize_pairs(tokenizer, pairs, chat)
    batches = batch_pairs(tokens, batch_size, device=device)
    graph, account = adapter.graph, ParamAccount(adapter)
    real = graph.edge_mask()
    counts = None if curve_points is None else curve_counts(int(real.sum()), curve_points)

    attribution = attribute(adapter, batches, metric, method=method, steps=steps, intervention=intervention, progress=progress)
    selection = select(graph, attribution.scores, account, rule, size, cost_exponent)
    slices = account.slices(selection.nodes)
    faith = None
    if counts is not None:
        measured_on = batches
        if held_out is not None:
            held_tokens = tokenize_pairs(tokenizer, held_out, chat)
            measured_on = batch_pairs(held_tokens, batch_size, device=device)
        faith = faithfulness(adapter, measured_on, attribution.scores, selection.edges, metric,
                             counts=counts, intervention=intervention, progress=progress)
        if held_out is not None:
            faith = replace(faith, held_out=(data_fingerprint(held_tokens), len(held_tokens)))

    node_names = [n for n, keep in zip(graph.source_names(), selection.nodes.tolist()) if keep]
    weights = fingerprint(model, [name for name, _ in model.named_parameters()], model_name)
    return Circuit(
        model=ModelInfo(
            name=model_name, fingerprint=weights.digest, family=adapter.family, model_type=model.config.model_type,
            n_layers=adapter.n_layers, n_heads=adapter.n_heads, n_kv_heads=adapter.n_kv_heads,
            d_model=adapter.d_model, total_params=account.total, mlp_groups=adapter.mlp_groups,
        ),
        data=DataInfo(data_fingerprint(tokens), len(tokens), sum(2 * len(t.clean) for t in tokens)),
        method=method,
        steps=attribution.steps,
        intervention=intervention,
        metric=metric_name(metric),
        edges=graph.edge_names(),
        scores=attribution.scores[real].tolist(),
        selection=SelectionInfo(selection.rule, size, graph.edge_names(selection.edges), cost_exponent),
        nodes=node_names + (["logits"] if selection.n_edges else []),
        param_slices=slices,
        param_count=account.count(slices),
        param_fraction=account.fraction(selection.nodes),
        faithfulness=faith,
    )
