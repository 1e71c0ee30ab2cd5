"""A grid-agnostic encoder-processor-decoder that takes its graph at forward time.

Nothing in the model's parameters depends on a grid or a graph (seed 000): node inputs are
per-node channels (states, forcings, statics, position on the sphere) and edge inputs are
physical geometry (length in km, direction east/north), so one set of weights serves a 2.5
degree global grid and a 45 km LAM alike. The graph (anemoi's HeteroData layout) is passed
to :meth:`EncProcDec.forward` with every batch.

- Encoder: data -> hidden message passing, messages averaged at each hidden node (the number
  of data nodes per hidden node changes with resolution; a mean does not), or (``mapper:
  transformer``) one graph-transformer block, as anemoi's mappers: softmax attention over
  each node's incoming edges, which is a weighted mean too.
- Processor on the hidden mesh: a GraphCast-style interaction network (summed messages) or
  a graph transformer (multi-head attention over each node's incoming edges, as anemoi's).
- Decoder: hidden -> data, the same kind of mapper, then a zero-initialised linear output layer:
  the prediction is the input state plus that output, so the untrained model is persistence
  (Aurora, seed 003, answer 11).
- Ensembles: ``noise_channels`` > 0 concatenates fresh N(0, 1) channels to every hidden node
  before the processor, so repeated forward passes of one sample give different members.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, NamedTuple

import torch
from pydantic import Field
from torch import nn
from torch.utils.checkpoint import checkpoint
from torch_geometric.utils import scatter, softmax

from .config import Flag, NonNegative, Positive, parse, typed
from .errors import WorkbenchError

PROCESSORS = ("interaction", "transformer")
MAPPERS = ("mlp", "transformer")
ATTENTION_EDGES = ("embedded", "features")
EDGE_FEATURES = 5  # length / 1000 km, east, north, east * length, north * length
POSITION_FEATURES = 3  # unit vector on the sphere


@typed
@dataclass(frozen=True)
class ModelConfig:
    n_variables: Positive  # prognostic variables (in and out)
    n_forcings: NonNegative = 0
    n_statics: NonNegative = 0
    n_missing: NonNegative = 0  # prognostic variables with a was-missing channel per input step
    input_steps: Positive = 1  # state time steps in
    output_steps: Positive = 1  # 1: the next step (forecast); = input_steps: every step (bert)
    processor: str = "interaction"  # interaction | transformer
    # encoder and decoder: per-edge MLPs with mean messages (mlp), or one graph-transformer
    # block each (transformer: attention over each node's incoming edges, MLP per node, as
    # anemoi's mappers; the edge features enter keys and values through one linear layer)
    mapper: str = "mlp"
    hidden_dim: Positive = 64
    processor_layers: Positive = 4
    heads: Positive = 4  # transformer only
    # transformer only: what each layer's attention adds to keys and values per edge, a
    # linear map of the processor's edge embedding (embedded, D wide) or of the raw edge
    # features (features, 5 wide: anemoi's lin_edge; at 512 channels half the processor's work)
    attention_edges: str = "embedded"
    mlp_ratio: Annotated[float, Field(gt=0)] = 2.0  # MLP width / hidden_dim
    noise_channels: NonNegative = 0  # > 0: ensemble members by noise injection
    length_scale_km: Annotated[float, Field(gt=0)] = 1000.0  # edge lengths in this unit
    checkpointing: Flag = False  # recompute mapper and layer activations in backward (memory)

    @property
    def forcing_steps(self) -> int:
        """Forcing steps per forward: the input times plus the target time (forecast)."""
        return self.input_steps + (1 if self.output_steps == 1 else 0)

    @property
    def node_inputs(self) -> int:
        return (self.input_steps * (self.n_variables + self.n_missing)
                + self.forcing_steps * self.n_forcings + self.n_statics + POSITION_FEATURES)


def model_config_from_dict(raw: Mapping, where: str = "model") -> ModelConfig:
    """A ModelConfig from plain values; an unknown key or processor is a one-line error."""
    config = parse(ModelConfig, raw, where)
    if config.processor not in PROCESSORS:
        raise WorkbenchError(f"{where}: processor {config.processor!r}; use one of {PROCESSORS}")
    if config.output_steps not in (1, config.input_steps):
        raise WorkbenchError(f"{where}: output_steps must be 1 (forecast) or input_steps (bert, "
                             f"interpolation), got {config.output_steps}")
    if config.attention_edges not in ATTENTION_EDGES:
        raise WorkbenchError(f"{where}: attention_edges {config.attention_edges!r}; use one of "
                             f"{ATTENTION_EDGES}")
    if config.attention_edges == "features" and config.processor != "transformer":
        raise WorkbenchError(f"{where}: attention_edges: features needs processor: transformer "
                             "(interaction layers update an edge embedding)")
    if config.mapper not in MAPPERS:
        raise WorkbenchError(f"{where}: mapper {config.mapper!r}; use one of {MAPPERS}")
    attention = config.processor == "transformer" or config.mapper == "transformer"
    if attention and config.hidden_dim % config.heads:
        raise WorkbenchError(f"{where}: hidden_dim {config.hidden_dim} must be divisible by "
                             f"heads {config.heads}")
    return config


# --------------------------------------------------------------------------- graph tensors


class GraphTensors(NamedTuple):
    """What the model reads from a graph, as tensors on one device."""

    data_pos: torch.Tensor  # [N_data, 3]
    hidden_pos: torch.Tensor  # [N_hidden, 3]
    encoder: tuple[torch.Tensor, torch.Tensor]  # edge_index [2, E], features [E, 5]
    processor: tuple[torch.Tensor, torch.Tensor]
    decoder: tuple[torch.Tensor, torch.Tensor]

    @property
    def n_data(self) -> int:
        return int(self.data_pos.shape[0])


def _position(x: torch.Tensor) -> torch.Tensor:
    lat, lon = x[:, 0].double(), x[:, 1].double()
    return torch.stack([lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()], 1).float()


def _edge_features(store, length_scale_km: float) -> torch.Tensor:
    if "edge_length_km" in store and "edge_dirs" in store:
        length, dirs = store.edge_length_km.float(), store.edge_dirs.float()
    else:
        raise WorkbenchError("graph edges lack edge_length_km/edge_dirs: rebuild the graph with "
                             "`workbench graph build` (physical edge geometry is needed)")
    length = (length / length_scale_km).view(-1, 1)
    return torch.cat([length, dirs, dirs * length], dim=1)


def graph_tensors(graph, length_scale_km: float = 1000.0,
                  device: torch.device | str = "cpu") -> GraphTensors:
    """The model inputs of a HeteroData graph (node positions, edge indices and features)."""
    from .graphs import EDGE_SETS

    parts = []
    for name in ("encoder", "processor", "decoder"):
        key = EDGE_SETS[name]
        if key not in graph.edge_types:
            raise WorkbenchError(f"graph {getattr(graph, 'name', '')!r} has no {name} edges {key}")
        store = graph[key]
        parts.append((store.edge_index.long().to(device),
                      _edge_features(store, length_scale_km).to(device)))
    return GraphTensors(_position(graph["data"].x).to(device),
                        _position(graph["hidden"].x).to(device), *parts)


# --------------------------------------------------------------------------- layers


def mlp(n_in: int, n_out: int, hidden: int, norm: bool = True) -> nn.Sequential:
    """Linear-SiLU-Linear, with a LayerNorm on the output (GraphCast's MLP blocks)."""
    layers = [nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, n_out)]
    if norm:
        layers.append(nn.LayerNorm(n_out))
    return nn.Sequential(*layers)


def _gather(h: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return h.index_select(1, index)  # [B, N, D] -> [B, E, D]


class EdgeMLP(nn.Module):
    """mlp(cat([edge, source, target])) with the first layer applied per node, then gathered.

    The same function as concatenating first, but the wide first layer runs once per node
    instead of once per edge (GraphCast's trick; edges outnumber nodes several times)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.edge_in = nn.Linear(dim, hidden)
        self.src_in = nn.Linear(dim, hidden, bias=False)
        self.dst_in = nn.Linear(dim, hidden, bias=False)
        self.rest = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim), nn.LayerNorm(dim))

    def forward(self, e: torch.Tensor, src: torch.Tensor, dst: torch.Tensor,
                index: torch.Tensor) -> torch.Tensor:
        first = (self.edge_in(e) + _gather(self.src_in(src), index[0])
                 + _gather(self.dst_in(dst), index[1]))
        return self.rest(first)


class Mapper(nn.Module):
    """Bipartite message passing (encoder or decoder): mean of edge messages, residual update."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.edge_embed = mlp(EDGE_FEATURES, dim, hidden)
        self.message = EdgeMLP(dim, hidden)
        self.update = mlp(2 * dim, dim, hidden)

    def forward(self, src: torch.Tensor, dst: torch.Tensor,
                edges: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        index, features = edges
        m = self.message(self.edge_embed(features), src, dst, index)
        agg = scatter(m, index[1], dim=1, dim_size=dst.shape[1], reduce="mean")
        return dst + self.update(torch.cat([dst, agg], -1))


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: torch.Tensor,
               n_dst: int, heads: int) -> torch.Tensor:
    """Multi-head attention of each destination node over its incoming edges: q [B, N_dst,
    D] per node, k and v [B, E, D] per edge (source values, edge terms added) -> [B, N_dst, D]."""
    b, _, d = q.shape
    shape = (b, -1, heads, d // heads)
    q = _gather(q, index[1]).view(shape)
    k, v = k.view(shape), v.view(shape)
    score = (q * k).sum(-1) / math.sqrt(d // heads)  # [B, E, H]
    alpha = softmax(score.transpose(0, 1), index[1], num_nodes=n_dst, dim=0).transpose(0, 1)
    return scatter((alpha.unsqueeze(-1) * v).reshape(b, -1, d), index[1], dim=1,
                   dim_size=n_dst, reduce="sum")


class AttentionMapper(nn.Module):
    """Bipartite graph-transformer block (encoder or decoder, as anemoi's mappers): each
    destination node attends over its incoming edges, keys and values from the source nodes
    plus a linear map of the raw edge features; residual update, then an MLP per node."""

    def __init__(self, dim: int, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm_src, self.norm_dst, self.norm_mlp = (nn.LayerNorm(dim) for _ in range(3))
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.edge_kv = nn.Linear(EDGE_FEATURES, 2 * dim)
        self.project = nn.Linear(dim, dim)
        self.mlp = mlp(dim, dim, hidden, norm=False)

    def forward(self, src: torch.Tensor, dst: torch.Tensor,
                edges: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        index, features = edges
        k, v = self.kv(self.norm_src(src)).chunk(2, dim=-1)
        ek, ev = self.edge_kv(features).chunk(2, dim=-1)
        out = _attention(self.q(self.norm_dst(dst)), _gather(k, index[0]) + ek,
                         _gather(v, index[0]) + ev, index, dst.shape[1], self.heads)
        h = dst + self.project(out)
        return h + self.mlp(self.norm_mlp(h))


class InteractionLayer(nn.Module):
    """GraphCast's interaction network layer: edge update, summed messages, node update."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.edge = EdgeMLP(dim, hidden)
        self.node = mlp(2 * dim, dim, hidden)

    def forward(self, h: torch.Tensor, e: torch.Tensor, index: torch.Tensor):
        e = e + self.edge(e, h, h, index)
        agg = scatter(e, index[1], dim=1, dim_size=h.shape[1], reduce="sum")
        return h + self.node(torch.cat([h, agg], -1)), e


class TransformerLayer(nn.Module):
    """anemoi-style graph transformer layer: attention over incoming edges, then an MLP.
    ``edge_dim``: the width of the edge values it adds to keys and values (``dim``: an edge
    embedding; :data:`EDGE_FEATURES`: the raw features, as anemoi's lin_edge)."""

    def __init__(self, dim: int, hidden: int, heads: int, edge_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.norm_nodes, self.norm_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.edge_kv = nn.Linear(edge_dim or dim, 2 * dim)
        self.project = nn.Linear(dim, dim)
        self.mlp = mlp(dim, dim, hidden, norm=False)

    def forward(self, h: torch.Tensor, e: torch.Tensor, index: torch.Tensor):
        q, k, v = self.qkv(self.norm_nodes(h)).chunk(3, dim=-1)
        ek, ev = self.edge_kv(e).chunk(2, dim=-1)
        out = _attention(q, _gather(k, index[0]) + ek, _gather(v, index[0]) + ev, index,
                         h.shape[1], self.heads)
        h = h + self.project(out)
        return h + self.mlp(self.norm_mlp(h)), e


class Processor(nn.Module):
    """A stack of interaction or transformer layers on the hidden mesh."""

    def __init__(self, config: ModelConfig, hidden: int):
        super().__init__()
        dim = config.hidden_dim
        raw = config.attention_edges == "features"  # the layers read the edge features
        self.edge_embed = None if raw else mlp(EDGE_FEATURES, dim, hidden)
        if config.processor == "interaction":
            self.layers = nn.ModuleList(InteractionLayer(dim, hidden)
                                        for _ in range(config.processor_layers))
        else:
            edge_dim = EDGE_FEATURES if raw else dim
            self.layers = nn.ModuleList(TransformerLayer(dim, hidden, config.heads, edge_dim)
                                        for _ in range(config.processor_layers))

    def forward(self, h: torch.Tensor, edges: tuple[torch.Tensor, torch.Tensor],
                checkpointing: Flag = False) -> torch.Tensor:
        index, features = edges
        # [E, D] ([B, E, D] after an interaction layer), or the raw [E, 5] features
        e = features if self.edge_embed is None else self.edge_embed(features)
        for layer in self.layers:
            h, e = _call(layer, checkpointing, h, e, index)
        return h


def _call(module: nn.Module, checkpointing: bool, *args):
    """module(*args), its activations recomputed in backward when checkpointing (training)."""
    if checkpointing and torch.is_grad_enabled():
        return checkpoint(module, *args, use_reentrant=False)
    return module(*args)


# --------------------------------------------------------------------------- the model


class EncProcDec(nn.Module):
    """Encoder-processor-decoder over any graph; see the module docstring."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        dim = config.hidden_dim
        hidden = max(1, int(round(config.mlp_ratio * dim)))
        self.data_embed = mlp(config.node_inputs, dim, hidden)
        self.hidden_embed = mlp(POSITION_FEATURES, dim, hidden)
        self.encoder = self._mapper(config, hidden)
        self.noise_mix = (nn.Linear(dim + config.noise_channels, dim)
                          if config.noise_channels else None)
        self.processor = Processor(config, hidden)
        self.decoder = self._mapper(config, hidden)
        self.output = nn.Linear(dim, config.output_steps * config.n_variables)
        nn.init.zeros_(self.output.weight)  # the untrained model is persistence
        nn.init.zeros_(self.output.bias)

    @staticmethod
    def _mapper(config: ModelConfig, hidden: int) -> nn.Module:
        if config.mapper == "transformer":  # MLPs per node: mlp_ratio x channels wide
            return AttentionMapper(config.hidden_dim, hidden, config.heads)
        # MLPs on every data-hidden edge: width dim, not mlp_ratio * dim (wider per-edge MLPs
        # cost 2.6-5x a step at 512 channels)
        return Mapper(config.hidden_dim, config.hidden_dim)

    def node_inputs(self, state: torch.Tensor, forcings: torch.Tensor, statics: torch.Tensor,
                    pos: torch.Tensor, missing: torch.Tensor | None = None) -> torch.Tensor:
        """[B, G, channels]: states (and their was-missing channels), forcings, statics and
        position of every data node."""
        b, _, _, g = state.shape
        if self.config.n_missing and (missing is None or missing.shape[:3] != (
                b, state.shape[1], self.config.n_missing)):
            raise WorkbenchError(
                f"model expects {self.config.n_missing} was-missing channels per input step "
                f"[B, T_in, {self.config.n_missing}, G], got "
                f"{None if missing is None else tuple(missing.shape)}: pass the batch's x_mask")
        extra = [missing.reshape(b, -1, g)] if self.config.n_missing else []
        parts = [state.reshape(b, -1, g), *extra, forcings.reshape(b, -1, g),
                 statics.expand(b, -1, -1), pos.T.expand(b, -1, -1)]
        x = torch.cat(parts, dim=1).transpose(1, 2)
        if x.shape[-1] != self.config.node_inputs:
            raise WorkbenchError(
                f"model expects {self.config.node_inputs} input channels per node, got "
                f"{x.shape[-1]}: state {tuple(state.shape)}, forcings {tuple(forcings.shape)}, "
                f"statics {tuple(statics.shape)}; match the model config to the data")
        return x

    def forward(self, state: torch.Tensor, forcings: torch.Tensor, statics: torch.Tensor,
                graph: GraphTensors, generator: torch.Generator | None = None,
                missing: torch.Tensor | None = None) -> torch.Tensor:
        """state [B, T_in, V, G], forcings [B, T_f, F, G], statics [S, G] -> [B, T_out, V, G]:
        the last input state (every input step when the output is the whole window) plus
        :meth:`change`; ``missing`` [B, T_in, n_missing, G]: the was-missing channels (1
        where imputed)."""
        base = state[:, -1:] if self.config.output_steps == 1 else state
        return base + self.change(state, forcings, statics, graph, generator, missing)

    def change(self, state: torch.Tensor, forcings: torch.Tensor, statics: torch.Tensor,
               graph: GraphTensors, generator: torch.Generator | None = None,
               missing: torch.Tensor | None = None) -> torch.Tensor:
        """The output layer's values [B, T_out, V, G] (zero untrained): what :meth:`forward`
        adds to the state, or a normalised tendency (``normalisation.output: tendency``)."""
        cfg = self.config
        if state.shape[-1] != graph.n_data:
            raise WorkbenchError(f"state has {state.shape[-1]} grid points but the graph "
                                 f"{graph.n_data} data nodes: pass the graph of this domain")
        b = state.shape[0]
        data = self.data_embed(self.node_inputs(state, forcings, statics, graph.data_pos,
                                                missing))
        hidden = self.hidden_embed(graph.hidden_pos).expand(b, -1, -1)
        ckpt = cfg.checkpointing
        hidden = _call(self.encoder, ckpt, data, hidden, graph.encoder)
        if self.noise_mix is not None:
            noise = torch.randn(b, hidden.shape[1], cfg.noise_channels, generator=generator,
                                device=hidden.device, dtype=hidden.dtype)
            hidden = hidden + self.noise_mix(torch.cat([hidden, noise], -1))
        hidden = self.processor(hidden, graph.processor, ckpt)
        data = _call(self.decoder, ckpt, hidden, data, graph.decoder)
        return self.output(data).transpose(1, 2).reshape(b, cfg.output_steps, cfg.n_variables, -1)


def parameter_count(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
