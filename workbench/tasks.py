"""Training strategies of AtmoRep (BERT, forecast, temporal interpolation) on graph nodes.

Follows ``atmorep/training/bert.py`` (clessig/atmorep), with tokens on a graph: a token is a
(time step, patch) pair of one variable, where ``patch_id`` [G] assigns every grid node to a
spatial patch (e.g. its nearest hidden node) or, when None, every node is its own patch.

What we keep from AtmoRep's ``prepare_batch_BERT_field``:

* the masking rate is drawn per batch entry, ``rate = U(0, 1) * total_rate``
  (``randomise_total``, on by default), and exactly ``ceil(n_tokens * rate)`` tokens are
  selected by a random permutation; the loss is computed on every selected token;
* selected tokens are masked with the mean of the normalised data, i.e. 0;
* with ``synced_fields`` every variable gets the same selection and treatments (AtmoRep seeds
  every field's generator identically for ``BERT_fields_synced``);
* multi-resolution distortion uses one reduction factor per call (AtmoRep: per batch).

Where we differ (documented choices):

* AtmoRep draws masking, noising and multi-res independently for each selected token, so one
  token can get several treatments and the rates hold only on average; we draw one treatment
  per token: masking, noising, multi-res or unchanged with the configured probabilities;
* noised tokens are replaced by Gaussian noise of ``noise_std`` (AtmoRep blends the token with
  the mean and adds 0.1 * std noise);
* multi-res on a graph: the reduction factor ``r`` is drawn uniformly from 2..mr_max and the
  token's nodes (in node index order within the patch) are split into consecutive chunks of
  ``r * r`` nodes, each node replaced by its chunk mean; a patch of at most ``r * r`` nodes
  becomes its patch mean. Only the token's own nodes are used, so no values of other (possibly
  masked) tokens leak in. A one-node token (``patch_id`` None) is left unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field

from .config import Flag, Rate, parse, typed
from .errors import WorkbenchError

STRATEGIES = ("forecast", "bert", "interpolation")

UNCHANGED, MASKED, NOISED, MULTIRES = 0, 1, 2, 3


@typed
@dataclass(frozen=True)
class MaskingConfig:
    """BERT masking parameters (AtmoRep: per-field [total, masking, noising, multi-res])."""

    total_rate: Rate = 0.5
    rate_masking: Rate = 0.9
    rate_noising: Rate = 0.05
    rate_multires: Rate = 0.05
    synced_fields: Flag = False
    mr_max: Annotated[int, Field(ge=2)] = 2  # multi-res reduction factor
    noise_std: Annotated[float, Field(gt=0)] = 1.0
    randomise_total: Flag = True  # AtmoRep: rate = U(0, 1) * total_rate per batch entry

    def __post_init__(self):
        for name in ("total_rate", "rate_masking", "rate_noising", "rate_multires"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise WorkbenchError(f"masking {name} = {value}: use a rate in [0, 1]")
        split = self.rate_masking + self.rate_noising + self.rate_multires
        if split > 1.0 + 1e-9:
            raise WorkbenchError(f"masking: rate_masking + rate_noising + rate_multires = "
                                 f"{split:g} > 1: lower them so they sum to at most 1")
        if self.mr_max < 2:
            raise WorkbenchError(f"masking mr_max = {self.mr_max}: use a reduction factor >= 2")
        if not self.noise_std > 0:
            raise WorkbenchError(f"masking noise_std = {self.noise_std}: use a value > 0")


def masking_config_from_dict(raw: Mapping, where: str = "masking config") -> MaskingConfig:
    """A MaskingConfig from a YAML mapping (unknown keys and wrong types are errors)."""
    return parse(MaskingConfig, raw, where)


# --------------------------------------------------------------------------- tokens


def _patches(patch_id: torch.Tensor | None, n_nodes: int, device) -> torch.Tensor:
    """Contiguous patch ids 0..P-1 per node (each node its own patch when None)."""
    if patch_id is None:
        return torch.arange(n_nodes, device=device)
    if patch_id.shape != (n_nodes,) or patch_id.dtype.is_floating_point:
        raise WorkbenchError(f"patch_id must be an integer tensor [{n_nodes}] (one id per grid "
                             f"node), got {patch_id.dtype} {tuple(patch_id.shape)}")
    return torch.unique(patch_id.to(device), return_inverse=True)[1]


def _rand(shape: Sequence[int], generator: torch.Generator | None, device) -> torch.Tensor:
    """Uniform draws on the generator's device, moved to ``device``."""
    where = generator.device if generator is not None else "cpu"
    return torch.rand(tuple(shape), generator=generator, device=where).to(device)


def _select(n_batch: int, n_fields: int, n_tokens: int, config: MaskingConfig,
            generator: torch.Generator | None, device) -> torch.Tensor:
    """Selected tokens [B, F, N]: ceil(N * rate) of them per (batch entry, field)."""
    rate = torch.full((n_batch, n_fields, 1), config.total_rate, dtype=torch.float64,
                      device=device)
    if config.randomise_total:  # AtmoRep: one draw per batch entry and field
        rate = rate * _rand((n_batch, n_fields, 1), generator, device).double()
    count = torch.ceil(n_tokens * rate - 1e-9).long()  # 1e-9: 10 * 0.3 is 3.0000000000000004
    order = _rand((n_batch, n_fields, n_tokens), generator, device).argsort(-1).argsort(-1)
    return order < count


def _treatments(selected: torch.Tensor, config: MaskingConfig,
                generator: torch.Generator | None) -> torch.Tensor:
    """One treatment per token (UNCHANGED, MASKED, NOISED, MULTIRES); unselected: UNCHANGED."""
    u = _rand(selected.shape, generator, selected.device).double()
    edges = torch.tensor([config.rate_masking, config.rate_noising, config.rate_multires],
                         dtype=torch.float64, device=selected.device).cumsum(0)
    kind = torch.bucketize(u, edges, right=True) + 1  # 1..3, 4 = beyond the three rates
    kind = torch.where(kind > MULTIRES, UNCHANGED, kind)
    return torch.where(selected, kind, UNCHANGED)


def _chunks(patches: torch.Tensor, r: int) -> torch.Tensor:
    """Chunk id per node: consecutive runs of r*r nodes (node index order) within a patch."""
    order = torch.argsort(patches, stable=True)
    counts = torch.bincount(patches)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(patches)
    rank[order] = torch.arange(len(patches), device=patches.device) - starts[patches[order]]
    key = patches * (int(counts.max()) + 1) + rank // (r * r)
    return torch.unique(key, return_inverse=True)[1]


def coarsen(x: torch.Tensor, patches: torch.Tensor, r: int) -> torch.Tensor:
    """x [..., G] with every node replaced by the mean of its r*r-node chunk in its patch."""
    chunk = _chunks(patches, r)
    n_chunks = int(chunk.max()) + 1
    sums = torch.zeros((*x.shape[:-1], n_chunks), dtype=x.dtype, device=x.device)
    sums = sums.index_add(-1, chunk, x)
    means = sums / torch.bincount(chunk, minlength=n_chunks).to(x.dtype)
    return means[..., chunk]


def _to_nodes(tokens: torch.Tensor, n_time: int, n_vars: int,
              patches: torch.Tensor) -> torch.Tensor:
    """Per-token values [B, F, T*P] (F = 1 or V fields) as per-node values [B, T, V, G]."""
    n_batch, n_fields = tokens.shape[:2]
    tokens = tokens.view(n_batch, n_fields, n_time, -1).transpose(1, 2)
    return tokens.expand(n_batch, n_time, n_vars, tokens.shape[-1])[..., patches]


def bert_mask(x: torch.Tensor, config: MaskingConfig, generator: torch.Generator | None = None,
              patch_id: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_in, mask): BERT-corrupted copy of x [B, T, V, G] and the bool mask of the selected
    tokens (the loss tokens, including those a leftover rate leaves unchanged)."""
    if x.dim() != 4:
        raise WorkbenchError(f"bert_mask expects x [batch, time, variable, grid], got "
                             f"{tuple(x.shape)}: add the missing dimensions")
    n_batch, n_time, n_vars, n_nodes = x.shape
    patches = _patches(patch_id, n_nodes, x.device)
    n_tokens = n_time * (int(patches.max()) + 1)
    n_fields = 1 if config.synced_fields else n_vars
    selected = _select(n_batch, n_fields, n_tokens, config, generator, x.device)
    kind = _to_nodes(_treatments(selected, config, generator), n_time, n_vars, patches)
    x_in = torch.where(kind == MASKED, torch.zeros_like(x), x)
    if config.rate_noising > 0:  # decided by the config, so the random stream stays stable
        noise = torch.randn(x.shape, generator=generator,
                            device=generator.device if generator is not None else "cpu")
        x_in = torch.where(kind == NOISED, config.noise_std * noise.to(x.device, x.dtype), x_in)
    r = 2 + int(_rand((1,), generator, "cpu").item() * (config.mr_max - 1))
    if (kind == MULTIRES).any():
        x_in = torch.where(kind == MULTIRES, coarsen(x, patches, r), x_in)
    return x_in, _to_nodes(selected, n_time, n_vars, patches)


# --------------------------------------------------------------------------- fixed masks


def _check_shape(x_shape: Sequence[int]) -> tuple[int, int, int, int]:
    if len(x_shape) != 4:
        raise WorkbenchError(f"mask shape must be [batch, time, variable, grid], got "
                             f"{tuple(x_shape)}")
    return tuple(int(s) for s in x_shape)


def forecast_mask(x_shape: Sequence[int], n_forecast: int) -> torch.Tensor:
    """Bool mask [B, T, V, G] with the last n_forecast time steps fully masked (AtmoRep)."""
    shape = _check_shape(x_shape)
    if not 1 <= n_forecast < shape[1]:
        raise WorkbenchError(f"forecast: n_forecast = {n_forecast} with {shape[1]} time steps: "
                             f"use 1 <= n_forecast < {shape[1]} (keep one step of context)")
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[:, shape[1] - n_forecast:] = True
    return mask


def interpolation_mask(x_shape: Sequence[int], n_middle: int = 1) -> torch.Tensor:
    """Bool mask [B, T, V, G] of n_middle steps centred on floor(T/2) (AtmoRep masks T // 2)."""
    shape = _check_shape(x_shape)
    start = shape[1] // 2 - n_middle // 2
    if n_middle < 1 or start < 1 or start + n_middle > shape[1] - 1:
        raise WorkbenchError(f"interpolation: {n_middle} middle step(s) of {shape[1]} leave no "
                             f"step on both sides: use more time steps or fewer middle steps")
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[:, start:start + n_middle] = True
    return mask


def apply_mask(x: torch.Tensor, mask: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    """A copy of x with the masked entries set to ``value`` (0 = the normalised mean)."""
    return x.masked_fill(mask.to(x.device), value)


def overwrite_boundary(pred: torch.Tensor, truth: torch.Tensor,
                       boundary_mask: torch.Tensor) -> torch.Tensor:
    """pred [B, V, G] with boundary nodes (bool [G]) taken from truth; gradients reach only
    the interior of pred. Returns a new tensor."""
    if pred.shape != truth.shape or boundary_mask.shape != pred.shape[-1:]:
        raise WorkbenchError(f"overwrite_boundary: pred {tuple(pred.shape)}, truth "
                             f"{tuple(truth.shape)} and boundary_mask "
                             f"{tuple(boundary_mask.shape)} must agree on [..., grid]")
    return torch.where(boundary_mask.to(pred.device, torch.bool), truth.to(pred.dtype), pred)
