"""Circuits: selection rules, pruning, parameter budget, faithfulness, circuit.json and `cdelta localize`."""
from __future__ import annotations

import json

import pytest
import torch

import eap_tiny as tiny
from cdelta.circuit.artifact import Circuit
from cdelta.circuit.faithfulness import area, circuit_metrics, curve_counts, faithfulness
from cdelta.circuit.rules import DEFAULT_COST_EXPONENT
from cdelta.circuit.selection import greedy, prune, select, top_edges, top_nodes, within_budget
from cdelta.eap.attribute import attribute
from cdelta.eap.metrics import refusal_logit_diff
from cdelta.eap.pairs import ContrastPair, PairBatch
from cdelta.errors import CdeltaError
from cdelta.graph.adapters import adapter_for
from cdelta.graph.params import ParamAccount
from cdelta.graph.structure import Graph
from cdelta.graph.tap import Tap
from harness.cli import main

METRIC = refusal_logit_diff(tiny.REFUSAL, tiny.COMPLIANCE)
CLEAN = torch.tensor([[1, 2, 12, 10, 14, 15, 4, 3], [1, 2, 10, 13, 11, 17, 4, 3]])
CORRUPTED = torch.tensor([[1, 2, 20, 21, 22, 23, 4, 3], [1, 2, 24, 25, 26, 27, 4, 3]])
BATCHES = [PairBatch(CLEAN, CORRUPTED)]
PAIRS = [ContrastPair("w1 w2 w3", "w4 w5 w6"), ContrastPair("w7 w8", "w9 w10"), ContrastPair("w11 w2", "w3 w12")]


@pytest.fixture(scope="module")
def scored():
    adapter = adapter_for(tiny.model("qwen2").double())
    scores = attribute(adapter, BATCHES, METRIC, method="EAP-IG-inputs", steps=5, progress=False).scores
    return adapter, scores


def _connected(graph: Graph, edges: torch.Tensor, nodes: torch.Tensor) -> bool:
    owner = graph.destination_owner()
    has_in = torch.zeros_like(nodes)
    has_in[owner[edges.any(0) & (owner >= 0)]] = True
    has_in[0] = True
    return bool((nodes == (edges.any(1) & has_in)).all())


@pytest.mark.parametrize(("family", "mlp_groups"), [(f, 1) for f in tiny.FAMILIES] + [("llama", 4), ("gemma2", 3)])
def test_full_graph_is_exactly_1_and_empty_exactly_0(family: str, mlp_groups: int) -> None:
    adapter = adapter_for(tiny.model(family).double(), mlp_groups)
    graph = adapter.graph
    scores = attribute(adapter, BATCHES, METRIC, method="EAP", progress=False).scores
    n = int(graph.edge_mask().sum())
    result = faithfulness(adapter, BATCHES, scores, graph.edge_mask(), METRIC, counts=[0, 3, n], progress=False)
    assert result.circuit == 1.0
    assert result.values[0] == 0.0 and result.values[-1] == 1.0
    # ...and the full and empty runs are the clean and corrupted model, not just each other.
    with torch.no_grad():
        clean = adapter.model(input_ids=CLEAN).logits[:, -1]
        corrupted = adapter.model(input_ids=CORRUPTED).logits[:, -1]
    atol = 1e-5 if family == "gemma2" else 1e-9
    assert result.full == pytest.approx(float(METRIC(clean, clean).sum()), abs=atol)
    assert result.empty == pytest.approx(float(METRIC(corrupted, clean).sum()), abs=atol)


def test_curve_counts_and_area() -> None:
    assert curve_counts(100, points=4) == [0, 1, 10, 100]
    assert curve_counts(100, points=2) == [0, 100]  # the empty and the full graph
    assert area([0, 50, 100], [0.0, 0.5, 1.0]) == pytest.approx(0.5)
    assert area([0, 10, 100], [0.0, 1.0, 1.0]) == pytest.approx(0.95)
    with pytest.raises(CdeltaError):
        curve_counts(10, points=1)


def test_faithfulness_needs_a_metric_that_moves() -> None:
    adapter = adapter_for(tiny.model("gpt2"))
    same = [PairBatch(CLEAN, CLEAN)]
    scores = torch.zeros(adapter.graph.n_sources, adapter.graph.n_destinations)
    with pytest.raises(CdeltaError, match="faithfulness is undefined"):
        faithfulness(adapter, same, scores, adapter.graph.edge_mask(), METRIC, counts=[0], progress=False)
    with pytest.raises(CdeltaError, match="no data"):
        circuit_metrics(adapter, [], [adapter.graph.edge_mask()], METRIC, progress=False)


def test_prune_drops_dangling_nodes() -> None:
    graph = Graph(2, 2)
    edges = graph.edges_from_names([
        "input->a0.h0<q>", "a0.h0->logits",        # kept: input -> a0.h0 -> logits
        "input->a0.h1<k>", "a0.h1->a1.h0<v>",      # a1.h0 has no outgoing edge: it and its inputs go
        "a1.h1->logits",                           # a1.h1 has no incoming edge: goes
    ])
    kept, nodes = prune(graph, edges)
    assert graph.edge_names(kept) == ["input->a0.h0<q>", "a0.h0->logits"]
    assert [n for n, keep in zip(graph.source_names(), nodes.tolist()) if keep] == ["input", "a0.h0"]


def test_top_edges_nodes_and_greedy(scored) -> None:
    adapter, scores = scored
    graph = adapter.graph
    chosen = top_edges(graph, scores, 10)
    assert chosen.n_edges <= 10 and _connected(graph, chosen.edges, chosen.nodes)
    ranked = scores.abs()[graph.edge_mask()].sort(descending=True).values
    assert scores.abs()[chosen.edges].min() >= ranked[9]

    nodes = top_nodes(graph, scores, 3)
    assert int(nodes.nodes[1:].sum()) <= 3 and _connected(graph, nodes.edges, nodes.nodes)
    best = scores.sum(1)[1:].abs().argmax() + 1
    assert nodes.nodes[best]

    grown = greedy(graph, scores, n_edges=12)
    assert grown.n_edges <= 12 and _connected(graph, grown.edges, grown.nodes)
    assert grown.edges[:, -1].any()  # grown from the logits
    with pytest.raises(CdeltaError, match="cannot select"):
        top_edges(graph, scores, 10**6)
    with pytest.raises(CdeltaError, match="unknown selection rule"):
        select(graph, scores, ParamAccount(adapter), "random", 3)


def test_greedy_matches_the_plain_definition() -> None:
    """Each step takes the largest-|score| edge into the logits or into a node already taken."""
    graph = Graph(3, 2)
    torch.manual_seed(3)
    scores = torch.randn(graph.n_sources, graph.n_destinations) * graph.edge_mask()
    owner = graph.destination_owner()
    taken = torch.zeros_like(graph.edge_mask())
    nodes = torch.zeros(graph.n_sources, dtype=torch.bool)
    for _ in range(15):
        open_destinations = (owner < 0) | nodes[owner.clamp(min=0)]
        candidates = scores.abs().masked_fill(~(graph.edge_mask() & ~taken & open_destinations[None, :]), -1)
        row, col = divmod(int(candidates.argmax()), graph.n_destinations)
        taken[row, col], nodes[row] = True, True
    expected, _ = prune(graph, taken)
    assert torch.equal(greedy(graph, scores, n_edges=15).edges, expected)


@pytest.mark.parametrize("cost_exponent", [0.0, 0.5, 1.0])
def test_cost_weighted_budget_matches_the_plain_definition(cost_exponent: float) -> None:
    """Each step takes the open edge of largest |score| / cost(source)^a whose source is in the circuit or
    still fits the budget, until none is left; then the circuit is pruned."""
    adapter = adapter_for(tiny.model("llama"), 4)
    graph, account = adapter.graph, ParamAccount(adapter)
    scores = torch.randn(graph.n_sources, graph.n_destinations, generator=torch.Generator().manual_seed(1))
    budget = 0.12
    cost = torch.tensor([max(account.count(s), 1) for s in account.node_slices], dtype=torch.float64)
    key = scores.abs().double() / cost[:, None] ** cost_exponent
    owner = graph.destination_owner()
    taken = torch.zeros_like(graph.edge_mask())
    nodes = torch.zeros(graph.n_sources, dtype=torch.bool)
    while True:
        open_destinations = (owner < 0) | nodes[owner.clamp(min=0)]
        affordable = torch.tensor([bool(nodes[row]) or account.count(set(account.slices(nodes)) | account.node_slices[row])
                                   <= budget * account.total for row in range(graph.n_sources)])
        allowed = graph.edge_mask() & ~taken & open_destinations[None, :] & affordable[:, None]
        if not allowed.any():
            break
        row, col = divmod(int(key.masked_fill(~allowed, -1).argmax()), graph.n_destinations)
        taken[row, col], nodes[row] = True, True
    expected, _ = prune(graph, taken)
    chosen = within_budget(graph, scores, account, budget, cost_exponent)
    assert torch.equal(chosen.edges, expected)
    assert account.fraction(chosen.nodes) <= budget


def test_cost_weighting_spends_a_budget_on_cheap_nodes() -> None:
    """A head scoring a little above MLP units wins by |score| alone; weighted by cost, the units
    (one unit a group: a fraction of a head's parameters each) win."""
    model = tiny.model("llama")
    adapter = adapter_for(model, model.config.intermediate_size)
    graph, account = adapter.graph, ParamAccount(adapter)
    scores = torch.full((graph.n_sources, graph.n_destinations), 0.01)
    head, groups = graph.head_rows(1).start, graph.mlp_rows(1)
    scores[head], scores[groups] = 2.0, 1.5
    names = graph.source_names()
    costs = account.node_costs()
    assert costs[groups.start] < costs[head] / 2 and costs[0] == 0
    budget = float(costs[head] + costs[groups.start]) / account.total  # one head and one group, or several groups
    picks = {a: [n for n, keep in zip(names, within_budget(graph, scores, account, budget, a).nodes.tolist()) if keep]
             for a in (0.0, 1.0)}
    assert names[head] in picks[0.0] and names[head] not in picks[1.0]
    assert sum(n.startswith("m1.g") for n in picks[1.0]) > sum(n.startswith("m1.g") for n in picks[0.0])


def test_a_cost_exponent_must_be_finite_non_negative_and_for_the_budget_rule(scored) -> None:
    adapter, scores = scored
    graph, account = adapter.graph, ParamAccount(adapter)
    for bad in (-0.5, float("nan"), float("inf")):
        with pytest.raises(CdeltaError, match="cost exponent must be a finite number >= 0"):
            within_budget(graph, scores, account, 0.3, bad)
    with pytest.raises(CdeltaError, match="applies to the budget rule only"):
        select(graph, scores, account, "top_edges", 5, 0.5)
    with pytest.raises(CdeltaError, match="parameter account"):
        greedy(graph, scores, n_edges=5, cost_exponent=0.5)


def test_budget_bounds_the_parameter_fraction(scored) -> None:
    adapter, scores = scored
    graph, account = adapter.graph, ParamAccount(adapter)
    small, large = within_budget(graph, scores, account, 0.08), within_budget(graph, scores, account, 0.5)
    for chosen, budget in ((small, 0.08), (large, 0.5)):
        assert 0 < account.fraction(chosen.nodes) <= budget
        assert _connected(graph, chosen.edges, chosen.nodes)
    assert int(large.nodes.sum()) > int(small.nodes.sum())
    with pytest.raises(CdeltaError, match="no circuit fits a parameter budget"):
        within_budget(graph, scores, account, 1e-6)
    for impossible in (0.0, 1.5):
        with pytest.raises(CdeltaError, match=r"fraction in \(0, 1\]"):
            within_budget(graph, scores, account, impossible)


def test_a_budget_too_small_for_a_whole_mlp_can_buy_mlp_groups() -> None:
    """Scores that favour MLP 0: unsplit, the budget affords heads only; split, it takes MLP groups."""
    chosen = {}
    for mlp_groups in (1, 4):
        adapter = adapter_for(tiny.model("llama"), mlp_groups)
        graph, account = adapter.graph, ParamAccount(adapter)
        scores = torch.rand(graph.n_sources, graph.n_destinations, generator=torch.Generator().manual_seed(0))
        rows, names = graph.mlp_rows(0), graph.source_names()
        owner = graph.destination_owner()
        scores[rows] += 10.0  # every edge out of MLP 0 (or its groups) ...
        scores[0, (owner >= rows.start) & (owner < rows.stop)] += 10.0  # ... and every edge into it
        whole_mlp = 3 * adapter.d_model * adapter.intermediate / account.total
        selection = within_budget(graph, scores, account, 0.9 * whole_mlp)
        assert account.fraction(selection.nodes) <= 0.9 * whole_mlp
        chosen[mlp_groups] = [n for n, keep in zip(names, selection.nodes.tolist()) if keep and n.startswith("m")]
    assert chosen[1] == []
    assert len(chosen[4]) == 3 and all(n.startswith("m0.g") for n in chosen[4])  # 3 of 4 groups fit 90% of an MLP


def test_localize_with_mlp_groups_records_them_and_rebuilds_its_graph(tmp_path) -> None:
    from cdelta.circuit.plots import node_score_grid, plot_heatmap
    from cdelta.localize import localize

    model, tok = tiny.model("llama"), tiny.tokenizer()
    circuit = localize(model, tok, PAIRS, refusal_ids=tiny.REFUSAL, compliance_ids=tiny.COMPLIANCE,
                       rule="budget", size=0.3, mlp_groups=4, curve_points=4, progress=False)
    graph = adapter_for(model, 4).graph
    assert circuit.model.mlp_groups == 4 and circuit.graph == graph and circuit.edges == graph.edge_names()
    assert circuit.faithfulness is not None and circuit.faithfulness.values[-1] == 1.0
    path = tmp_path / "circuit.json"
    circuit.save(path)
    loaded = Circuit.load(path)
    assert loaded == circuit and json.loads(path.read_text())["schema_version"] == 3
    assert loaded.selection.cost_exponent == DEFAULT_COST_EXPONENT
    assert graph.edge_names(graph.edges_from_names(loaded.selection.edges)) == loaded.selection.edges
    grid, members = node_score_grid(loaded)
    assert grid.shape == members.shape == (2, 4 + 4)
    assert members.sum() == len(loaded.nodes) - 2  # every node but the input and the logits
    plot_heatmap(loaded, tmp_path / "heatmap.png")

    # A schema-1 file (before MLP groups) reads as one group per MLP.
    unsplit = localize(model, tok, PAIRS, refusal_ids=tiny.REFUSAL, compliance_ids=tiny.COMPLIANCE, method="EAP",
                       rule="budget", size=0.3, curve_points=None, progress=False).to_dict()
    unsplit["schema_version"] = 1
    del unsplit["model"]["mlp_groups"]
    del unsplit["selection"]["cost_exponent"]
    path.write_text(json.dumps(unsplit))
    assert Circuit.load(path).graph == adapter_for(model).graph
    assert Circuit.load(path).selection.cost_exponent == 0.0  # chosen by |score| alone before schema 3


def test_localize_writes_a_circuit_that_round_trips(tmp_path) -> None:
    from cdelta.localize import localize

    model, tok = tiny.model("llama"), tiny.tokenizer()
    circuit = localize(model, tok, PAIRS, refusal_ids=tiny.REFUSAL, compliance_ids=tiny.COMPLIANCE,
                       rule="budget", size=0.3, curve_points=5, progress=False)
    graph = adapter_for(model).graph
    assert circuit.edges == graph.edge_names() and len(circuit.scores) == len(circuit.edges)
    assert circuit.param_fraction <= 0.3 and circuit.param_count > 0
    assert set(circuit.selection.edges) <= set(circuit.edges)
    assert "logits" in circuit.nodes and circuit.faithfulness is not None
    assert circuit.faithfulness.values[0] == 0.0 and circuit.faithfulness.values[-1] == 1.0
    assert circuit.data.n_pairs == 3 and circuit.model.fingerprint and circuit.data.fingerprint.startswith("sha256:")

    path = tmp_path / "circuit.json"
    circuit.save(path)
    assert Circuit.load(path) == circuit
    assert [p.name for p in tmp_path.iterdir()] == ["circuit.json"]  # no temporary left behind
    raw = json.loads(path.read_text())
    raw["schema_version"] = 99
    path.write_text(json.dumps(raw))
    with pytest.raises(CdeltaError, match="schema version 99"):
        Circuit.load(path)


def test_faithfulness_on_held_out_pairs_is_measured_there_and_recorded(tmp_path) -> None:
    """The circuit comes from the attribution pairs; its faithfulness from the held-out ones, and says so."""
    from cdelta.eap.pairs import batch_pairs, data_fingerprint, tokenize_pairs
    from cdelta.localize import localize

    held_out = [ContrastPair("w5 w9 w1", "w2 w8 w4"), ContrastPair("w6 w3", "w12 w7")]
    model, tok = tiny.model("llama"), tiny.tokenizer()
    kwargs = dict(refusal_ids=tiny.REFUSAL, compliance_ids=tiny.COMPLIANCE, rule="budget", size=0.3, curve_points=5,
                  progress=False)
    on_own = localize(model, tok, PAIRS, **kwargs)
    on_new = localize(model, tok, PAIRS, held_out=held_out, **kwargs)
    assert on_new.selection == on_own.selection and on_new.scores == on_own.scores  # same circuit
    assert on_own.faithfulness.held_out is None
    tokens = tokenize_pairs(tok, held_out, True)
    assert on_new.faithfulness.held_out == (data_fingerprint(tokens), 2)
    adapter = adapter_for(model)
    graph = adapter.graph
    edges = graph.edges_from_names(on_new.selection.edges)
    scores = torch.zeros(edges.shape)
    scores[graph.edge_mask()] = torch.tensor(on_new.scores)
    direct = faithfulness(adapter, batch_pairs(tokens, 8, device=torch.device("cpu")), scores, edges, METRIC,
                          counts=on_new.faithfulness.counts, progress=False)
    assert (on_new.faithfulness.circuit, on_new.faithfulness.full) == pytest.approx((direct.circuit, direct.full), abs=1e-9)
    assert on_new.faithfulness.full != pytest.approx(on_own.faithfulness.full, abs=1e-6)  # other prompts
    path = tmp_path / "circuit.json"
    on_new.save(path)
    assert Circuit.load(path) == on_new


def test_localize_from_saved_scores_reselects_without_attribution(tmp_path, monkeypatch) -> None:
    import cdelta.localize as localize_module
    from cdelta.localize import localize

    model, tok = tiny.model("llama"), tiny.tokenizer()
    kwargs = dict(refusal_ids=tiny.REFUSAL, compliance_ids=tiny.COMPLIANCE, mlp_groups=4, curve_points=3, progress=False)
    saved = localize(model, tok, PAIRS, steps=3, rule="budget", size=0.3, cost_exponent=0.0, **kwargs)
    fresh = localize(model, tok, PAIRS, steps=3, rule="budget", size=0.2, cost_exponent=1.0, **kwargs)

    def no_attribution(*args, **kw):
        raise AssertionError("attribution ran although scores were given")

    monkeypatch.setattr(localize_module, "attribute", no_attribution)
    reused = localize(model, tok, PAIRS, rule="budget", size=0.2, cost_exponent=1.0, scores_from=saved, **kwargs)
    assert reused.scores == saved.scores and reused.steps == 3 and reused.data == saved.data
    assert reused.selection == fresh.selection and reused.param_slices == fresh.param_slices
    assert reused.faithfulness == fresh.faithfulness and reused.faithfulness.held_out is None

    others = [ContrastPair("w5 w6 w7", "w8 w9 w10")]
    measured_elsewhere = localize(model, tok, others, rule="budget", size=0.2, scores_from=saved, **kwargs)
    assert measured_elsewhere.data == saved.data and measured_elsewhere.faithfulness.held_out[1] == 1

    with pytest.raises(CdeltaError, match="attributed on another model"):
        localize(tiny.model("llama", seed=1), tok, PAIRS, scores_from=saved, **kwargs)
    with pytest.raises(CdeltaError, match="for 4 MLP groups, not 1"):
        localize(model, tok, PAIRS, scores_from=saved, **{**kwargs, "mlp_groups": 1})


def test_localize_fingerprint_tracks_the_weights() -> None:
    from cdelta.localize import localize

    kwargs = dict(refusal_ids=tiny.REFUSAL, compliance_ids=tiny.COMPLIANCE, method="EAP", curve_points=None, progress=False)
    first = localize(tiny.model("gpt2", seed=0), tiny.tokenizer(), PAIRS, **kwargs)
    second = localize(tiny.model("gpt2", seed=1), tiny.tokenizer(), PAIRS, **kwargs)
    assert first.model.fingerprint != second.model.fingerprint
    assert first.data.fingerprint == second.data.fingerprint


def _model_dir(tmp_path):
    folder = tiny.checkpoint(tmp_path / "model", "mistral")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"clean": p.clean, "corrupted": p.corrupted}) + "\n" for p in PAIRS))
    return folder, pairs


def test_cli_writes_circuit_and_plots(tmp_path, capsys) -> None:
    folder, pairs = _model_dir(tmp_path)
    out = tmp_path / "out"
    code = main(["localize", "--model", str(folder), "--pairs", str(pairs), "--budget", "0.3", "--steps", "3",
                 "--refusal", "I", "--refusal", "Sorry", "--compliance", "Sure", "--compliance", "Here",
                 "--curve-points", "4", "--quiet", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["circuit.json", "faithfulness.png", "heatmap.png"]
    circuit = Circuit.load(out / "circuit.json")
    assert circuit.method == "EAP-IG-inputs" and circuit.steps == 3 and circuit.param_fraction <= 0.3
    assert "parameter fraction" in capsys.readouterr().out

    code = main(["localize", "--model", str(folder), "--pairs", str(pairs), "--budget", "0.3", "--method", "EAP",
                 "--refusal", "Sorry", "--compliance", "Sure", "--mlp-groups", "4", "--no-faithfulness", "--quiet",
                 "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    assert Circuit.load(out / "circuit.json").model.mlp_groups == 4
    code = main(["localize", "--model", str(folder), "--pairs", str(pairs), "--method", "EAP", "--refusal", "Sorry",
                 "--compliance", "Sure", "--mlp-groups", "5", "--quiet", "-o", str(tmp_path / "other")])
    assert code == 1 and "equal groups" in capsys.readouterr().err
    code = main(["localize", "--model", str(folder), "--pairs", str(pairs), "--held-out-pairs", str(pairs),
                 "--budget", "0.3", "--method", "EAP", "--refusal", "Sorry", "--compliance", "Sure", "--curve-points", "3",
                 "-o", str(tmp_path / "held")])
    assert code == 0 and "3 held-out pairs" in capsys.readouterr().out
    assert Circuit.load(tmp_path / "held" / "circuit.json").faithfulness.held_out[1] == 3
    code = main(["localize", "--model", str(folder), "--pairs", str(pairs), "--held-out-pairs", str(pairs),
                 "--no-faithfulness", "--quiet", "-o", str(tmp_path / "none")])
    assert code == 1 and "only read to measure faithfulness" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
    code = main(["localize", "--model", str(folder), "--pairs", str(pairs), "--method", "EAP", "--refusal", "Sorry",
                 "--compliance", "Sure", "--budget", "0.3", "--cost-exponent", "0", "--no-faithfulness", "--quiet",
                 "-o", str(tmp_path / "plain")])
    assert code == 0 and Circuit.load(tmp_path / "plain" / "circuit.json").selection.cost_exponent == 0.0
    for bad, message in ((["--edges", "5", "--cost-exponent", "0.5"], "weighs the budget rule only"),
                         (["--cost-exponent", "-1"], "finite number >= 0")):
        code = main(["localize", "--model", str(folder), "--pairs", str(pairs), *bad, "--quiet", "-o", str(tmp_path / "bad")])
        assert code == 1 and message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()

    # re-selection from saved scores: the file's steps and MLP groups, no attribution settings alongside
    code = main(["localize", "--model", str(folder), "--pairs", str(pairs), "--scores-from", str(out / "circuit.json"),
                 "--budget", "0.2", "--cost-exponent", "1", "--refusal", "Sorry", "--compliance", "Sure",
                 "--curve-points", "3", "--quiet", "-o", str(tmp_path / "again")])
    assert code == 0, capsys.readouterr().err
    again, before = Circuit.load(tmp_path / "again" / "circuit.json"), Circuit.load(out / "circuit.json")
    assert before.method == "EAP" and before.model.mlp_groups == 4  # the run above
    assert (again.scores, again.method, again.steps, again.model.mlp_groups, again.selection.setting) == (
        before.scores, "EAP", before.steps, 4, 0.2)
    code = main(["localize", "--model", str(folder), "--pairs", str(pairs), "--scores-from", str(out / "circuit.json"),
                 "--steps", "3", "--quiet", "-o", str(tmp_path / "both")])
    assert code == 1 and "--steps set how scores are attributed" in capsys.readouterr().err
    assert not (tmp_path / "both").exists()


def test_cli_impossible_budget_leaves_no_circuit(tmp_path, capsys) -> None:
    folder, pairs = _model_dir(tmp_path)
    out = tmp_path / "out"
    code = main(["localize", "--model", str(folder), "--pairs", str(pairs), "--budget", "1e-6", "--method", "EAP",
                 "--refusal-ids", ",".join(map(str, tiny.REFUSAL)), "--compliance-ids", ",".join(map(str, tiny.COMPLIANCE)),
                 "--quiet", "-o", str(out)])
    assert code == 1
    assert "no circuit fits a parameter budget" in capsys.readouterr().err
    assert not (out / "circuit.json").exists()
    assert not out.exists() or not any(out.iterdir())


def test_cli_unequal_pairs_and_empty_file(tmp_path, capsys) -> None:
    folder, pairs = _model_dir(tmp_path)
    pairs.write_text(json.dumps({"clean": "w1 w2 w3", "corrupted": "w4"}) + "\n")
    args = ["localize", "--model", str(folder), "--pairs", str(pairs), "--refusal", "Sorry", "--compliance", "Sure",
            "--quiet", "-o", str(tmp_path / "out")]
    assert main(args) == 1
    assert "equal token length" in capsys.readouterr().err
    pairs.write_text("")
    assert main(args) == 1
    assert "no contrast pairs" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    pairs.write_text(json.dumps({"clean": "w1", "corrupted": "w2"}) + "\n")
    assert main([*args[:5], "--refusal", "nonsense", "--compliance", "Sure", "--quiet", "-o", str(tmp_path / "out")]) == 1
    assert "none of the openings" in capsys.readouterr().err


def test_tap_leaves_no_hooks_behind() -> None:
    adapter = adapter_for(tiny.model("gemma2"))

    def count() -> int:
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in adapter.model.modules())

    before = count()
    with torch.no_grad():
        Tap(adapter, keep=slice(0, 3)).run(CLEAN)
    with pytest.raises(IndexError):
        Tap(adapter, keep=slice(0, 3)).run(torch.full((1, 4), 10**6))  # out-of-vocabulary id fails inside
    assert count() == before
    assert all(a.num_key_value_groups == 2 for a in (adapter.attention(i) for i in range(adapter.n_layers)))
