"""The model graph: names and indices as in the EAP-IG reference, the graph is the model, slices belong to heads."""
from __future__ import annotations

import gc
import weakref

import pytest
import torch
from transformers import AutoModelForCausalLM, GPTNeoXConfig, LlamaConfig, LlamaModel

import eap_tiny as tiny
from cdelta.errors import CdeltaError
from cdelta.graph.adapters import adapter_for
from cdelta.graph.params import ParamAccount
from cdelta.graph.structure import Graph
from cdelta.graph.tap import Patch, Tap, weighted_sum

PROMPTS = torch.tensor([[1, 2, 12, 10, 14, 15, 4, 3], [1, 2, 10, 13, 11, 17, 4, 3]])


def test_names_and_edges_follow_the_reference_convention() -> None:
    graph = Graph(n_layers=2, n_heads=3)
    assert graph.source_names() == ["input", "a0.h0", "a0.h1", "a0.h2", "m0", "a1.h0", "a1.h1", "a1.h2", "m1"]
    assert graph.destination_names()[:4] == ["a0.h0<q>", "a0.h1<q>", "a0.h2<q>", "a0.h0<k>"]
    assert graph.destination_names()[9:11] == ["m0", "a1.h0<q>"]
    assert graph.destination_names()[-1] == "logits"
    names = set(graph.edge_names())
    assert {"a0.h1->a1.h2<k>", "m0->logits", "input->a1.h0<q>", "a0.h0->m0", "input->logits"} <= names
    assert "a0.h0->a0.h1<q>" not in names  # heads of one layer read the same residual stream
    assert "m0->a0.h0<v>" not in names
    # reference counts: per layer, heads read everything before the layer; the MLP also reads its heads
    expected = sum(3 * 3 * (1 + layer * 4) + (1 + layer * 4 + 3) for layer in range(2)) + graph.n_sources
    assert len(names) == expected == int(graph.edge_mask().sum())
    edges = graph.edges_from_names(["a0.h1->a1.h2<k>", "m1->logits"])
    assert graph.edge_names(edges) == ["a0.h1->a1.h2<k>", "m1->logits"]
    with pytest.raises(CdeltaError, match="backwards"):
        graph.edges_from_names(["a1.h0->a0.h1<q>"])
    with pytest.raises(CdeltaError, match="does not exist"):
        graph.edges_from_names(["a7.h0->logits"])


def test_mlp_groups_are_nodes_in_the_mlps_place() -> None:
    graph = Graph(n_layers=2, n_heads=3, mlp_groups=2)
    assert graph.source_names()[:7] == ["input", "a0.h0", "a0.h1", "a0.h2", "m0.g0", "m0.g1", "a1.h0"]
    assert graph.destination_names()[9:12] == ["m0.g0", "m0.g1", "a1.h0<q>"]
    names = set(graph.edge_names())
    assert {"a0.h2->m0.g1", "m0.g1->a1.h0<q>", "m1.g0->logits", "input->m1.g1"} <= names
    assert "m0.g0->m0.g1" not in names  # the groups of one MLP read the same residual stream
    # per layer: heads read everything before the layer; each group reads that and the layer's heads
    expected = sum(3 * 3 * (1 + layer * 5) + 2 * (1 + layer * 5 + 3) for layer in range(2)) + graph.n_sources
    assert len(names) == expected == int(graph.edge_mask().sum())
    assert graph.destination_owner()[10] == graph.mlp_rows(0).start + 1
    assert graph.source_groups()[2] == graph.mlp_rows(0) == slice(4, 6)
    with pytest.raises(CdeltaError, match="does not exist"):
        graph.edges_from_names(["m0->logits"])  # a split MLP has no whole-MLP node


GRAPH_CASES = [(family, 1) for family in tiny.FAMILIES] + [(f, 4) for f in tiny.FAMILIES if f != "gpt2"]


@pytest.mark.parametrize(("family", "mlp_groups"), GRAPH_CASES)
def test_the_graph_is_the_model(family: str, mlp_groups: int) -> None:
    """Every destination reads exactly the sum of its upstream sources (plus out-projection biases)."""
    model = tiny.model(family).double()
    adapter = adapter_for(model, mlp_groups)
    graph = adapter.graph
    reads: dict[str, torch.Tensor] = {}

    def reader(name: str):
        return lambda module, args: reads.__setitem__(name, args[0].detach())

    handles = [adapter.final_norm().register_forward_pre_hook(reader("logits"))]
    for layer in range(adapter.n_layers):
        handles.append(adapter.attn_norm(layer).register_forward_pre_hook(reader(f"a{layer}")))
        handles.append(adapter.mlp_norm(layer).register_forward_pre_hook(reader(f"m{layer}")))
    tap = Tap(adapter, keep=slice(0, graph.n_sources))
    with torch.no_grad():
        logits = tap.run(PROMPTS)
        plain = model(input_ids=PROMPTS).logits[:, -1]
    for handle in handles:
        handle.remove()
    values = tap.values
    assert values is not None and values.shape == (graph.n_sources, 2, 8, adapter.d_model)
    atol = 1e-6 if family == "gemma2" else 1e-10  # Gemma2's norms compute in float32 even in a float64 model

    def bias_before(layer: int) -> torch.Tensor:
        biases = [adapter.attention_bias(i) for i in range(layer)]
        return sum((b.detach() for b in biases if b is not None), torch.zeros(adapter.d_model, dtype=torch.float64))

    for group in graph.destination_groups():
        if group.kind in ("k", "v"):
            continue
        name = {"q": f"a{group.layer}", "mlp": f"m{group.layer}", "logits": "logits"}[group.kind]
        layers_done = group.layer + (group.kind == "mlp")
        rebuilt = values[: group.upstream].sum(0) + bias_before(min(layers_done, adapter.n_layers))
        torch.testing.assert_close(rebuilt, reads[name], rtol=0, atol=atol)
    torch.testing.assert_close(logits, plain, rtol=0, atol=atol)

    # Per-head q/k/v inputs with nothing patched reproduce the model too.
    nothing = Patch(slice(0, graph.n_sources), torch.zeros(graph.n_sources, graph.n_destinations, dtype=torch.float64), values)
    with torch.no_grad():
        torch.testing.assert_close(Tap(adapter, patch=nothing).run(PROMPTS), plain, rtol=0, atol=atol)


def test_unsupported_architecture_names_the_supported_families() -> None:
    config = GPTNeoXConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    with pytest.raises(CdeltaError) as error:
        adapter_for(AutoModelForCausalLM.from_config(config))
    for family in ("Llama", "Qwen2", "Mistral", "Gemma2", "GPT-2", "gpt_neox"):
        assert family in str(error.value)
    headless = LlamaModel(LlamaConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32))
    with pytest.raises(CdeltaError, match="language-model head"):
        adapter_for(headless)


def _zero(model: torch.nn.Module, slices) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for s in slices:
            params[s.tensor].narrow(s.dim, s.start, s.stop - s.start).zero_()


def _head_outputs(model: torch.nn.Module) -> torch.Tensor:
    """Layer 1's head outputs as unit vectors (Gemma2's post-norm rescales every head by one shared factor)."""
    adapter = adapter_for(model)
    tap = Tap(adapter, keep=adapter.graph.head_rows(1))
    with torch.no_grad():
        tap.run(PROMPTS)
    assert tap.values is not None
    return torch.nn.functional.normalize(tap.values, dim=-1)


@pytest.mark.parametrize("family", tiny.FAMILIES)
def test_head_slices_are_the_heads_parameters(family: str) -> None:
    """Zeroing head 0's q rows and out columns changes head 0 only; its k/v rows change the heads sharing them."""
    base = _head_outputs(tiny.model(family))
    adapter = adapter_for(tiny.model(family))
    own = [s for s in adapter.head_slices(1, 0) if "k_proj" not in s.tensor and "v_proj" not in s.tensor
           and not (s.tensor.endswith("c_attn.weight") and s.start >= adapter.d_model)
           and not (s.tensor.endswith("c_attn.bias") and s.start >= adapter.d_model)]
    edited = tiny.model(family)
    _zero(edited, own)
    after = _head_outputs(edited)
    changed = [not torch.allclose(after[h], base[h]) for h in range(adapter.n_heads)]
    assert changed == [True, False, False, False]

    shared = [s for s in adapter.head_slices(1, 0) if s not in own]
    edited = tiny.model(family)
    _zero(edited, shared)
    after = _head_outputs(edited)
    changed = [not torch.allclose(after[h], base[h]) for h in range(adapter.n_heads)]
    group = adapter.n_heads // adapter.n_kv_heads
    assert changed == [h < group for h in range(adapter.n_heads)]


@pytest.mark.parametrize("family", tiny.FAMILIES)
def test_all_head_slices_cover_the_attention_weights_once(family: str) -> None:
    """KV slices shared by query heads count once; all heads together own exactly the q/k/v/o weights."""
    adapter = adapter_for(tiny.model(family))
    account = ParamAccount(adapter)
    graph = adapter.graph
    heads = torch.zeros(graph.n_sources, dtype=torch.bool)
    for layer in range(graph.n_layers):
        heads[graph.head_rows(layer)] = True
    owned = {s.tensor for s in account.slices(heads)}
    expected = sum(dict(adapter.model.named_parameters())[name].numel() for name in owned)
    assert not any(name.endswith(("o_proj.bias", "c_proj.bias")) for name in owned)  # added outside any head
    assert account.count(account.slices(heads)) == expected

    pair = torch.zeros(graph.n_sources, dtype=torch.bool)
    pair[graph.head_rows(0).start : graph.head_rows(0).start + 2] = True
    one = account.count(account.node_slices[graph.head_rows(0).start])
    shares_kv = adapter.n_kv_heads < adapter.n_heads
    assert (account.count(account.slices(pair)) < 2 * one) == shares_kv
    assert 0 < account.fraction(pair) < 1


def _mlp_group_outputs(model: torch.nn.Module, mlp_groups: int) -> torch.Tensor:
    """Layer 1's MLP group outputs as unit vectors (Gemma2's post-norm rescales every group by one shared factor)."""
    adapter = adapter_for(model, mlp_groups)
    tap = Tap(adapter, keep=adapter.graph.mlp_rows(1))
    with torch.no_grad():
        tap.run(PROMPTS)
    assert tap.values is not None
    return torch.nn.functional.normalize(tap.values, dim=-1)


@pytest.mark.parametrize("family", ["llama", "gemma2"])
def test_mlp_group_slices_are_the_groups_parameters(family: str) -> None:
    """A group owns 3 x d_model x its units; zeroing them silences that group only; all groups own the MLP."""
    adapter = adapter_for(tiny.model(family), mlp_groups=4)
    account, graph = ParamAccount(adapter), adapter.graph
    size = adapter.intermediate // 4
    for row in range(graph.mlp_rows(1).start, graph.mlp_rows(1).stop):
        assert account.count(account.node_slices[row]) == 3 * adapter.d_model * size
    groups = torch.zeros(graph.n_sources, dtype=torch.bool)
    groups[graph.mlp_rows(1)] = True
    unsplit = adapter_for(tiny.model(family))
    whole = ParamAccount(unsplit)
    assert account.count(account.slices(groups)) == whole.count(whole.node_slices[unsplit.graph.mlp_rows(1).start])

    base = _mlp_group_outputs(tiny.model(family), 4)
    edited = tiny.model(family)
    _zero(edited, adapter.mlp_group_slices(1, 2))
    after = _mlp_group_outputs(edited, 4)
    assert [bool(after[g].abs().max() > 0) for g in range(4)] == [True, True, False, True]
    torch.testing.assert_close(after[[0, 1, 3]], base[[0, 1, 3]])


def test_mlp_groups_that_cannot_be_built_are_clear_errors() -> None:
    with pytest.raises(CdeltaError, match=r"equal groups; choose one of \[1, 2, 3, 4, 6, 8, 12, 16, 24, 48\]"):
        adapter_for(tiny.model("llama"), mlp_groups=5)  # 48 units
    with pytest.raises(CdeltaError, match="GPT-2: MLP unit groups are not supported"):
        adapter_for(tiny.model("gpt2"), mlp_groups=2)
    with pytest.raises(CdeltaError, match="positive number"):
        adapter_for(tiny.model("llama"), mlp_groups=0)
    biased = LlamaConfig(**{**tiny.config("llama").to_dict(), "mlp_bias": True})
    with pytest.raises(CdeltaError, match="output bias"):
        adapter_for(AutoModelForCausalLM.from_config(biased), mlp_groups=2)


@pytest.mark.parametrize("kind", ["circuit", "sparse", "weighted", "nothing", "everything"])
def test_patch_sum_over_fewest_rows_equals_the_full_product(kind: str) -> None:
    generator = torch.Generator().manual_seed(3)
    rows, cols = 40, 30
    if kind == "circuit":  # nearly every edge patched: the spared rows are few
        mask = (torch.rand(rows, cols, generator=generator) > 0.02).double()
    elif kind == "sparse":
        mask = (torch.rand(rows, cols, generator=generator) > 0.98).double()
    elif kind == "weighted":  # interpolation weights, neither 0 nor 1
        mask = torch.rand(rows, cols, generator=generator, dtype=torch.float64)
    else:
        mask = torch.full((rows, cols), 0.0 if kind == "nothing" else 1.0, dtype=torch.float64)
    difference = torch.randn(rows, 50, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(weighted_sum(mask, difference).expand(cols, -1), mask.T @ difference, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("family", "mlp_groups"), GRAPH_CASES)
def test_split_gradients_equal_the_per_head_copies(family: str, mlp_groups: int) -> None:
    """A gradient run without a patch splits one shared read's gradient per destination; a run whose patch
    changes nothing keeps a copy of the residual stream per destination. Both give every destination the
    same gradient, and an input-only patch gives what running on the patched input gives."""
    model = tiny.model(family).double()
    adapter = adapter_for(model, mlp_groups)
    graph = adapter.graph

    def gradients(patch: Patch | None, input_ids: torch.Tensor = PROMPTS) -> torch.Tensor:
        grads = torch.zeros(graph.n_destinations, *input_ids.shape, adapter.d_model, dtype=torch.float64)

        def on_grad(group, grad: torch.Tensor) -> None:
            grads[group.cols] += grad

        model.requires_grad_(False)
        with torch.enable_grad():
            Tap(adapter, patch=patch, on_grad=on_grad).run(input_ids)[:, tiny.REFUSAL].sum().backward()
        return grads

    with torch.no_grad():
        inputs = {}
        for name, ids in (("clean", PROMPTS), ("corrupted", PROMPTS.flip(1))):
            tap = Tap(adapter, keep=slice(0, 1))
            tap.run(ids)
            inputs[name] = tap.values
    nothing = Patch(slice(0, 1), torch.zeros(1, graph.n_destinations, dtype=torch.float64), inputs["clean"])
    split = gradients(None)
    assert split.abs().amax() > 1e-2
    # The families' norms compute in float32 even in a float64 model, and the two paths round in different
    # places: agreement to float32 precision (an error in the split, a head or unit out of place, is O(1)).
    close = dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(split, gradients(nothing), **close)
    # Every destination fed the corrupted input: the gradients of the run on the corrupted prompts.
    everywhere = Patch(slice(0, 1), torch.ones(1, graph.n_destinations, dtype=torch.float64), inputs["corrupted"])
    torch.testing.assert_close(gradients(everywhere), gradients(None, PROMPTS.flip(1)), **close)


def test_gradient_runs_free_their_graph() -> None:
    """Nothing a gradient run leaves behind keeps its autograd graph (and so its activations) alive."""
    model = tiny.model("llama")
    model.requires_grad_(False)
    adapter = adapter_for(model, mlp_groups=4)
    inputs: list[weakref.ref] = []  # the norms save their inputs for the backward pass
    handles = [norm.register_forward_pre_hook(lambda module, args: inputs.append(weakref.ref(args[0])))
               for norm in (adapter.attn_norm(0), adapter.mlp_norm(0))]
    with torch.enable_grad():
        Tap(adapter, on_grad=lambda group, grad: None).run(PROMPTS).sum().backward()
    for handle in handles:
        handle.remove()
    gc.collect()
    assert len(inputs) == 2 and all(ref() is None for ref in inputs)
