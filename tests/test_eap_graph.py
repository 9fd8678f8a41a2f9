"""The model graph: names and indices as in the EAP-IG reference, the graph is the model, slices belong to heads."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, GPTNeoXConfig, LlamaConfig, LlamaModel

import eap_tiny as tiny
from cdelta.errors import CdeltaError
from cdelta.graph.adapters import adapter_for
from cdelta.graph.params import ParamAccount
from cdelta.graph.structure import Graph
from cdelta.graph.tap import Patch, Tap

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


@pytest.mark.parametrize("family", tiny.FAMILIES)
def test_the_graph_is_the_model(family: str) -> None:
    """Every destination reads exactly the sum of its upstream sources (plus out-projection biases)."""
    model = tiny.model(family).double()
    adapter = adapter_for(model)
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
