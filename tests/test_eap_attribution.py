"""EAP and EAP-IG scores against exact patching and completeness, on tiny random models of every family."""
from __future__ import annotations

import pytest
import torch
from scipy.stats import spearmanr

import eap_tiny as tiny
from cdelta.circuit.faithfulness import circuit_metrics
from cdelta.eap.attribute import attribute
from cdelta.eap.metrics import kl_to_clean, refusal_logit_diff
from cdelta.eap.pairs import ContrastPair, PairBatch, batch_pairs, load_pairs, pair_by_length, tokenize_pairs
from cdelta.errors import CdeltaError
from cdelta.graph.adapters import adapter_for

METRIC = refusal_logit_diff(tiny.REFUSAL, tiny.COMPLIANCE)
CLEAN = torch.tensor([[1, 2, 12, 10, 14, 15, 4, 3], [1, 2, 10, 13, 11, 17, 4, 3]])
CORRUPTED = torch.tensor([[1, 2, 20, 21, 22, 23, 4, 3], [1, 2, 24, 25, 26, 27, 4, 3]])
BATCHES = [PairBatch(CLEAN, CORRUPTED)]


SPLIT = [("llama", 4), ("gemma2", 3)]
"""Families and MLP group counts that the tests of split MLPs run on, besides every family unsplit."""


def _model(family: str, mlp_groups: int = 1):
    return adapter_for(tiny.model(family).double(), mlp_groups)


def _full_and_patched(adapter, batches, patched_rows: list[slice], intervention: str = "patching") -> tuple[float, list[float]]:
    """Metric of the clean run, and of runs with all outgoing edges of each row group patched."""
    real = adapter.graph.edge_mask()
    circuits = [real]
    for rows in patched_rows:
        circuit = real.clone()
        circuit[rows] = False
        circuits.append(circuit)
    full, *patched = circuit_metrics(adapter, batches, circuits, METRIC, intervention=intervention, progress=False)
    return full, patched


@pytest.mark.parametrize(("family", "mlp_groups"), [(f, 1) for f in tiny.FAMILIES] + SPLIT)
def test_eap_ranks_edges_like_exact_patching(family: str, mlp_groups: int) -> None:
    """With a small corruption (a token whose embedding is a near copy), EAP is the linearisation of patching."""
    adapter = _model(family, mlp_groups)
    embeddings = adapter.model.get_input_embeddings().weight
    torch.manual_seed(1)
    with torch.no_grad():
        embeddings[20] = embeddings[10] + 1e-3 * embeddings[10].norm() * torch.randn(embeddings.shape[1], dtype=embeddings.dtype)
    corrupted = torch.where(CLEAN == 10, 20, CLEAN)
    batches = [PairBatch(CLEAN, corrupted)]
    scores = attribute(adapter, batches, METRIC, method="EAP", progress=False).scores

    real = adapter.graph.edge_mask()
    edges = torch.nonzero(real).tolist()
    circuits = [real]
    for row, col in edges:
        circuit = real.clone()
        circuit[row, col] = False
        circuits.append(circuit)
    full, *patched = circuit_metrics(adapter, batches, circuits, METRIC, progress=False)
    exact = torch.tensor(patched, dtype=torch.float64) - full
    rho = spearmanr(scores[real].double(), exact).statistic
    assert rho >= 0.9, f"{family}: Spearman {rho:.3f}"
    assert exact.abs().max() > 1e-6  # the corruption does move the metric


@pytest.mark.parametrize(("family", "mlp_groups"), [(f, 1) for f in tiny.FAMILIES] + SPLIT)
def test_ig_inputs_completeness(family: str, mlp_groups: int) -> None:
    """The input node's outgoing edges add up to metric(corrupted) - metric(clean)."""
    adapter = _model(family, mlp_groups)
    scores = attribute(adapter, BATCHES, METRIC, method="EAP-IG-inputs", steps=50, progress=False).scores
    full, (empty,) = _full_and_patched(adapter, BATCHES, [slice(0, adapter.graph.n_sources)])
    total = float(scores[0].sum())
    assert abs(empty - full) > 0.05
    assert total == pytest.approx(empty - full, rel=0.02)


@pytest.mark.parametrize(("family", "mlp_groups"), [(f, 1) for f in tiny.FAMILIES] + SPLIT)
def test_ig_activations_completeness_per_layer_output(family: str, mlp_groups: int) -> None:
    """Each layer output's outgoing edges add up to the effect of patching that output everywhere."""
    adapter = _model(family, mlp_groups)
    groups = adapter.graph.source_groups()
    scores = attribute(adapter, BATCHES, METRIC, method="EAP-IG-activations", steps=30, progress=False).scores
    full, patched = _full_and_patched(adapter, BATCHES, groups)
    for rows, value in zip(groups, patched):
        assert float(scores[rows].sum()) == pytest.approx(value - full, rel=0.02, abs=2e-3), rows


@pytest.mark.parametrize("intervention", ["zero", "mean"])
def test_ablation_interventions_agree_with_ablated_runs(intervention: str) -> None:
    """Zero and mean ablation: attribution and faithfulness runs patch in the same activations."""
    adapter = _model("llama")
    groups = adapter.graph.source_groups()[1:3]
    scores = attribute(adapter, BATCHES, METRIC, method="EAP-IG-activations", steps=20,
                       intervention=intervention, progress=False).scores
    full, patched = _full_and_patched(adapter, BATCHES, groups, intervention)
    for rows, value in zip(groups, patched):
        assert float(scores[rows].sum()) == pytest.approx(value - full, rel=0.02, abs=2e-3)


def test_kl_metric_is_flat_at_clean_and_complete_along_the_path() -> None:
    adapter = _model("qwen2")
    eap = attribute(adapter, BATCHES, kl_to_clean, method="EAP", progress=False).scores
    assert eap.abs().max() < 1e-10  # KL has zero gradient at the clean run
    ig = attribute(adapter, BATCHES, kl_to_clean, method="EAP-IG-inputs", steps=50, progress=False).scores
    real = adapter.graph.edge_mask()
    _, kl = circuit_metrics(adapter, BATCHES, [real, torch.zeros_like(real)], kl_to_clean, progress=False)
    assert kl > 0.01
    assert float(ig[0].sum()) == pytest.approx(kl, rel=0.02)


def test_scores_sum_over_examples_across_batches() -> None:
    adapter = _model("mistral")
    together = attribute(adapter, BATCHES, METRIC, method="EAP", progress=False)
    apart = attribute(adapter, [PairBatch(CLEAN[:1], CORRUPTED[:1]), PairBatch(CLEAN[1:], CORRUPTED[1:])],
                      METRIC, method="EAP", progress=False)
    assert together.n_examples == apart.n_examples == 2
    torch.testing.assert_close(together.scores, apart.scores, rtol=1e-5, atol=1e-7)
    assert (together.scores[~adapter.graph.edge_mask()] == 0).all()


def test_gqa_heads_sharing_kv_get_their_own_k_and_v_scores() -> None:
    adapter = _model("llama")
    scores = attribute(adapter, BATCHES, METRIC, method="EAP", progress=False).scores
    k_cols = adapter.graph.destination_groups()[5].cols  # layer 1, k
    assert adapter.n_kv_heads < adapter.n_heads
    assert not torch.allclose(scores[:, k_cols.start], scores[:, k_cols.start + 1])


def test_nan_scores_are_an_error() -> None:
    adapter = _model("gpt2")

    def broken(logits: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        return logits[:, 0] * float("nan")

    with pytest.raises(CdeltaError, match="NaN"):
        attribute(adapter, BATCHES, broken, method="EAP", progress=False)


def test_bad_arguments_are_clear_errors() -> None:
    adapter = _model("gpt2")
    with pytest.raises(CdeltaError, match="no data"):
        attribute(adapter, [], METRIC, progress=False)
    with pytest.raises(CdeltaError, match="unknown attribution method"):
        attribute(adapter, BATCHES, METRIC, method="IG", progress=False)
    with pytest.raises(CdeltaError, match="unknown intervention"):
        attribute(adapter, BATCHES, METRIC, intervention="resample", progress=False)
    with pytest.raises(CdeltaError, match="needs intervention 'patching'"):
        attribute(adapter, BATCHES, METRIC, method="EAP-IG-inputs", intervention="zero", progress=False)
    with pytest.raises(CdeltaError, match="both refusal and compliance"):
        refusal_logit_diff([5, 6], [6, 7])


def test_pairs_of_unequal_length_are_refused_or_matched() -> None:
    tok = tiny.tokenizer()
    with pytest.raises(CdeltaError, match="no contrast pairs"):
        tokenize_pairs(tok, [])
    with pytest.raises(CdeltaError, match=r"pair 1: clean prompt has 7 tokens, corrupted has 6"):
        tokenize_pairs(tok, [ContrastPair("w1 w2", "w3 w4"), ContrastPair("w1 w2 w3", "w4 w5")])
    pairs, unmatched = pair_by_length(tok, ["w1 w2", "w1 w2 w3", "w9"], ["w4 w5 w6", "w7 w8", "w10 w11 w12 w13"])
    assert pairs == [ContrastPair("w1 w2", "w7 w8"), ContrastPair("w1 w2 w3", "w4 w5 w6")]
    assert unmatched == ["w9"]
    tokens = tokenize_pairs(tok, pairs + [ContrastPair("w11 w12", "w13 w14")])
    batches = batch_pairs(tokens, batch_size=1)
    assert [b.clean.shape for b in batches] == [torch.Size([1, 6]), torch.Size([1, 6]), torch.Size([1, 7])]
    assert tokens[0].clean[-1] == tok.convert_tokens_to_ids("<|assistant|>")  # generation prompt appended


def test_pairs_file_errors_name_the_line(tmp_path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"clean": "w1", "corrupted": "w2"}\n{"clean": "w1"}\n')
    with pytest.raises(CdeltaError, match="pairs.jsonl:2"):
        load_pairs(path)
    path.write_text("\n")
    with pytest.raises(CdeltaError, match="no contrast pairs"):
        load_pairs(path)
