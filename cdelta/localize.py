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
    scores_from: Circuit | None = None,
) -> Circuit:
    """Find the circuit behind `metric` (default: refusal logit difference) on clean vs corrupted prompts.

    `rule` and `size` choose the circuit: a parameter `budget` fraction, `top_edges` / `greedy`
    edge counts, or `top_nodes`; under a budget, `cost_exponent` a ranks edges by
    |score| / (source parameters)^a (0: by |score| alone). `mlp_groups` splits each MLP into that many nodes of equal
    unit blocks, so a small budget can afford parts of MLPs. With `curve_points`, the circuit's
    faithfulness and a curve over edge counts are measured on the same pairs (None skips that extra pass),
    or on `held_out` pairs when given: prompts of phrasings the attribution never saw.

    `scores_from` skips attribution and re-selects from a saved circuit's edge scores (its method,
    steps, intervention and data are recorded); `pairs` are then only measured. Attribution is the
    expensive step, so this is how budgets and cost exponents are compared on a large graph.
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

    weights = fingerprint(model, [name for name, _ in model.named_parameters()], model_name)
    if scores_from is None:
        attribution = attribute(adapter, batches, metric, method=method, steps=steps, intervention=intervention,
                                progress=progress)
        scores, steps = attribution.scores, attribution.steps
        data = DataInfo(data_fingerprint(tokens), len(tokens), sum(2 * len(t.clean) for t in tokens))
    else:
        scores = reused_scores(scores_from, weights.digest, adapter.mlp_groups, metric_name(metric))
        method, steps, intervention, data = scores_from.method, scores_from.steps, scores_from.intervention, scores_from.data
        if held_out is None and data_fingerprint(tokens) != data.fingerprint:
            held_out = pairs  # measured on pairs the scores were not attributed on: say so in the artifact
    selection = select(graph, scores, account, rule, size, cost_exponent)
    slices = account.slices(selection.nodes)
    faith = None
    if counts is not None:
        measured_on = batches
        if held_out is not None:
            held_tokens = tokenize_pairs(tokenizer, held_out, chat)
            measured_on = batch_pairs(held_tokens, batch_size, device=device)
        faith = faithfulness(adapter, measured_on, scores, selection.edges, metric,
                             counts=counts, intervention=intervention, progress=progress)
        if held_out is not None:
            faith = replace(faith, held_out=(data_fingerprint(held_tokens), len(held_tokens)))

    node_names = [n for n, keep in zip(graph.source_names(), selection.nodes.tolist()) if keep]
    return Circuit(
        model=ModelInfo(
            name=model_name, fingerprint=weights.digest, family=adapter.family, model_type=model.config.model_type,
            n_layers=adapter.n_layers, n_heads=adapter.n_heads, n_kv_heads=adapter.n_kv_heads,
            d_model=adapter.d_model, total_params=account.total, mlp_groups=adapter.mlp_groups,
        ),
        data=data,
        method=method,
        steps=steps,
        intervention=intervention,
        metric=metric_name(metric),
        edges=graph.edge_names(),
        scores=scores[real].tolist(),
        selection=SelectionInfo(selection.rule, size, graph.edge_names(selection.edges), cost_exponent),
        nodes=node_names + (["logits"] if selection.n_edges else []),
        param_slices=slices,
        param_count=account.count(slices),
        param_fraction=account.fraction(selection.nodes),
        faithfulness=faith,
    )


def reused_scores(circuit: Circuit, weights: str, mlp_groups: int, metric: str) -> torch.Tensor:
    """A saved circuit's score matrix, once it is known to belong to this model, graph and metric."""
    if circuit.model.fingerprint != weights:
        raise CdeltaError(f"the saved scores were attributed on another model ({circuit.model.name!r}, fingerprint "
                          f"{circuit.model.fingerprint[:12]}, this one {weights[:12]}): attribute again on this model")
    if circuit.model.mlp_groups != mlp_groups:
        raise CdeltaError(f"the saved scores are for {circuit.model.mlp_groups} MLP groups, not {mlp_groups}: "
                          f"pass mlp_groups={circuit.model.mlp_groups} (--mlp-groups {circuit.model.mlp_groups})")
    if circuit.metric != metric:
        raise CdeltaError(f"the saved scores were attributed on metric {circuit.metric!r}, not {metric!r}: "
                          "measure with the same metric, or attribute again")
    return circuit.score_matrix()
