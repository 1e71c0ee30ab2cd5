"""The grid-agnostic encoder-processor-decoder on the demo's two graphs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from workbench.errors import WorkbenchError
from workbench.graphs import build_graph
from workbench.model import (
    AttentionMapper,
    EdgeMLP,
    EncProcDec,
    GraphTensors,
    TransformerLayer,
    graph_tensors,
    model_config_from_dict,
    parameter_count,
)
from workbench.training import load_training_config, model_config, sampling_config


@pytest.fixture(scope="module")
def graphs() -> dict[str, GraphTensors]:
    return {name: graph_tensors(build_graph(name)) for name in ("demo-global", "demo-conus")}


def small(processor: str = "transformer", **extra) -> EncProcDec:
    torch.manual_seed(0)
    return EncProcDec(model_config_from_dict(dict(
        n_variables=3, n_forcings=1, n_statics=2, processor=processor, hidden_dim=16,
        processor_layers=2, heads=4, mlp_ratio=1.0, **extra)))


def inputs(n_grid: int, batch: int = 2, steps: int = 1, forcing_steps: int = 2):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(batch, steps, 3, n_grid, generator=g),
            torch.randn(batch, forcing_steps, 1, n_grid, generator=g),
            torch.randn(2, n_grid, generator=g))


@pytest.mark.parametrize("processor, extra", [
    ("interaction", {}), ("transformer", {}),
    ("transformer", {"attention_edges": "features"}),
    ("transformer", {"attention_edges": "features", "mapper": "transformer"})])
def test_untrained_model_is_persistence(graphs, processor, extra):
    model = small(processor, **extra)
    for graph in graphs.values():
        state, forcings, statics = inputs(graph.n_data)
        out = model(state, forcings, statics, graph)
        assert out.shape == (2, 1, 3, graph.n_data)
        assert torch.equal(out, state[:, -1:])


def test_untrained_window_model_returns_its_input():
    model = EncProcDec(model_config_from_dict(dict(n_variables=3, input_steps=3, output_steps=3,
                                                   hidden_dim=8, processor_layers=1)))
    graph = graph_tensors(build_graph("demo-conus"))
    state = torch.randn(1, 3, 3, graph.n_data)
    forcings = torch.zeros(1, 3, 0, graph.n_data)
    assert torch.equal(model(state, forcings, torch.zeros(0, graph.n_data), graph), state)


def test_one_set_of_weights_serves_two_graphs_of_different_sizes(graphs):
    model = small()
    sizes = {g.n_data for g in graphs.values()} | {g.hidden_pos.shape[0] for g in graphs.values()}
    assert len(sizes) == 4  # 10,512 / 8,330 data and 2,562 / 897 hidden nodes
    for name, tensor in model.state_dict().items():
        assert not set(tensor.shape) & sizes, f"{name} depends on a grid size"
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    global_, conus = graphs["demo-global"], graphs["demo-conus"]
    conus_in = inputs(conus.n_data)
    before = model(*conus_in, conus).detach()
    state, forcings, statics = inputs(global_.n_data)
    loss = (model(state, forcings, statics, global_) - 0.5 * state[:, -1:]).pow(2).mean()
    loss.backward()
    optimizer.step()
    after = model(*conus_in, conus)  # trained on global, applied on conus
    assert after.shape == before.shape and not torch.allclose(after, before)
    assert torch.isfinite(after).all()


def test_state_of_another_grid_is_refused(graphs):
    state, forcings, statics = inputs(graphs["demo-conus"].n_data)
    with pytest.raises(WorkbenchError, match="graph .* data nodes"):
        small()(state, forcings, statics, graphs["demo-global"])


def test_ensemble_members_differ_by_injected_noise(graphs):
    graph = graphs["demo-conus"]
    model = small(noise_channels=4)
    nn.init.normal_(model.output.weight, std=0.1)  # as after training
    state, forcings, statics = inputs(graph.n_data, batch=1)
    a = model(state, forcings, statics, graph, torch.Generator().manual_seed(1))
    b = model(state, forcings, statics, graph, torch.Generator().manual_seed(2))
    c = model(state, forcings, statics, graph, torch.Generator().manual_seed(1))
    assert not torch.allclose(a, b) and torch.equal(a, c)


def test_edge_mlp_equals_the_mlp_of_concatenated_inputs():
    torch.manual_seed(3)
    dim, hidden, n_src, n_dst, n_edges = 6, 10, 7, 5, 20
    edge_mlp = EdgeMLP(dim, hidden)
    index = torch.stack([torch.randint(0, n_src, (n_edges,)), torch.randint(0, n_dst, (n_edges,))])
    e, src, dst = torch.randn(n_edges, dim), torch.randn(2, n_src, dim), torch.randn(2, n_dst, dim)
    first = nn.Linear(3 * dim, hidden)
    with torch.no_grad():
        first.weight.copy_(torch.cat([edge_mlp.edge_in.weight, edge_mlp.src_in.weight,
                                      edge_mlp.dst_in.weight], dim=1))
        first.bias.copy_(edge_mlp.edge_in.bias)
    concat = torch.cat([e.expand(2, -1, -1), src[:, index[0]], dst[:, index[1]]], -1)
    expected = edge_mlp.rest(first(concat))
    assert torch.allclose(edge_mlp(e, src, dst, index), expected, atol=1e-6)


@pytest.mark.parametrize("edge_dim", [None, 5])  # an edge embedding, or raw features
def test_transformer_layer_against_a_dense_per_node_attention(edge_dim):
    torch.manual_seed(4)
    dim, heads, n = 8, 2, 5
    layer = TransformerLayer(dim, 12, heads, edge_dim)
    src = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3])
    dst = torch.tensor([1, 1, 1, 2, 2, 3, 4, 4, 0])
    h, e = torch.randn(1, n, dim), torch.randn(len(src), edge_dim or dim)
    out, _ = layer(h, e, torch.stack([src, dst]))
    hd = dim // heads
    q, k, v = layer.qkv(layer.norm_nodes(h[0])).chunk(3, -1)
    ek, ev = layer.edge_kv(e).chunk(2, -1)
    expected = h[0].clone()
    for node in range(n):
        edges = (dst == node).nonzero().flatten()
        heads_out = []
        for head in range(heads):
            sl = slice(head * hd, (head + 1) * hd)
            keys = k[src[edges], sl] + ek[edges, sl]
            weights = torch.softmax(keys @ q[node, sl] / math.sqrt(hd), 0)
            heads_out.append(weights @ (v[src[edges], sl] + ev[edges, sl]))
        expected[node] = expected[node] + layer.project(torch.cat(heads_out))
    expected = expected + layer.mlp(layer.norm_mlp(expected))
    assert torch.allclose(out[0], expected, atol=1e-5)


def test_attention_mapper_against_a_dense_per_node_attention():
    """mapper: transformer, on a bipartite graph (7 sources, 4 destinations, one with no
    incoming edge: it keeps its value and gets only the MLP), against a loop over nodes."""
    torch.manual_seed(6)
    dim, heads, n_src, n_dst = 8, 2, 7, 4
    mapper = AttentionMapper(dim, 12, heads)
    src = torch.tensor([0, 1, 2, 3, 4, 5, 6, 0])
    dst = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2])  # destination 3: no edge
    x_src, x_dst, e = torch.randn(1, n_src, dim), torch.randn(1, n_dst, dim), torch.randn(8, 5)
    out = mapper(x_src, x_dst, (torch.stack([src, dst]), e))
    hd = dim // heads
    q = mapper.q(mapper.norm_dst(x_dst[0]))
    k, v = mapper.kv(mapper.norm_src(x_src[0])).chunk(2, -1)
    ek, ev = mapper.edge_kv(e).chunk(2, -1)
    expected = x_dst[0].clone()
    for node in range(n_dst):
        edges = (dst == node).nonzero().flatten()
        if len(edges) == 0:
            continue
        heads_out = []
        for head in range(heads):
            sl = slice(head * hd, (head + 1) * hd)
            weights = torch.softmax((k[src[edges], sl] + ek[edges, sl]) @ q[node, sl]
                                    / math.sqrt(hd), 0)
            heads_out.append(weights @ (v[src[edges], sl] + ev[edges, sl]))
        expected[node] = expected[node] + mapper.project(torch.cat(heads_out))
    expected[3] = x_dst[0, 3] + mapper.project.bias
    expected = expected + mapper.mlp(mapper.norm_mlp(expected))
    assert torch.allclose(out[0], expected, atol=1e-5)


def test_transformer_mappers_train_on_two_graphs_with_one_set_of_weights(graphs):
    """mapper: transformer: attention blocks for encoder and decoder, MLPs mlp_ratio wide
    on nodes only, no weight tied to a graph size; gradients reach both mappers."""
    model = small("transformer", attention_edges="features", mapper="transformer")
    assert isinstance(model.encoder, AttentionMapper) and isinstance(model.decoder, AttentionMapper)
    assert model.encoder.mlp[0].out_features == 16  # mlp_ratio 1 x 16 channels
    nn.init.normal_(model.output.weight, std=0.1)
    for graph in graphs.values():
        model.zero_grad()
        state, forcings, statics = inputs(graph.n_data)
        model(state, forcings, statics, graph).square().mean().backward()
        for mapper in (model.encoder, model.decoder):
            assert mapper.edge_kv.weight.grad.abs().sum() > 0
            assert mapper.q.weight.grad.abs().sum() > 0


def test_feature_attention_edges_project_the_raw_features_in_every_layer(graphs):
    """attention_edges: features (anemoi's lin_edge): no processor edge embedding, each
    layer's edge keys and values a linear map of the 5 edge features, and the model trains
    (gradients reach every layer's edge projection)."""
    model = small("transformer", attention_edges="features")
    embedded = small("transformer")
    assert model.processor.edge_embed is None
    assert all(layer.edge_kv.in_features == 5 for layer in model.processor.layers)
    fewer = parameter_count(embedded) - parameter_count(model)
    assert fewer == parameter_count(embedded.processor.edge_embed) + 2 * (16 - 5) * 32
    nn.init.normal_(model.output.weight)  # past persistence, so gradients flow back
    state, forcings, statics = inputs(graphs["demo-conus"].n_data)
    model(state, forcings, statics, graphs["demo-conus"]).square().mean().backward()
    assert all(layer.edge_kv.weight.grad.abs().sum() > 0 for layer in model.processor.layers)


def test_full_preset_is_seed_004_size_without_any_graph():
    config = load_training_config("full")
    model = EncProcDec(model_config(config, sampling_config(config)))
    # seed 004: 71.5 M (mmgt) and 73.5 M (nbd) with its ~90 variables and trainable node and
    # edge tensors; anemoi-models at this preset's sizes on the demo's 8 variables: 61.5 M
    assert 55e6 < parameter_count(model) < 80e6


@pytest.mark.parametrize("raw, message", [
    ({"n_variables": 3, "hidden": 8}, "unknown key"),
    ({"n_variables": 3, "processor": "gru"}, "processor"),
    ({"n_variables": 3, "processor": "transformer", "hidden_dim": 10, "heads": 4}, "divisible"),
    ({"n_variables": 3, "mapper": "transformer", "hidden_dim": 10, "heads": 4}, "divisible"),
    ({"n_variables": 3, "mapper": "gnn"}, "mapper"),
    ({"n_variables": 3, "input_steps": 2, "output_steps": 3}, "output_steps"),
    ({"n_variables": 3, "processor": "transformer", "attention_edges": "raw"}, "attention_edges"),
    ({"n_variables": 3, "processor": "interaction", "attention_edges": "features"},
     "needs processor: transformer"),
])
def test_bad_model_config_is_one_line_error(raw, message):
    with pytest.raises(WorkbenchError, match=message) as err:
        model_config_from_dict(raw)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("mapper", ["mlp", "transformer"])
def test_activation_checkpointing_gives_the_same_gradients(graphs, mapper):
    graph = graphs["demo-conus"]
    grads = []
    for checkpointing in (False, True):
        # seeded: the same weights both times
        model = small(checkpointing=checkpointing, mapper=mapper)
        torch.manual_seed(5)
        nn.init.normal_(model.output.weight, std=0.1)
        state, forcings, statics = inputs(graph.n_data)
        model(state, forcings, statics, graph).pow(2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
