"""Training losses for a graph weather model, combinable as a sum.

Tensors are float32 in normalised units: a deterministic prediction is [B, T, V, G] (batch,
rollout step, variable, grid node), an ensemble prediction [B, M, T, V, G] (M members), the
target always [B, T, V, G]. Every loss reduces a point-wise error e[b, t, v, g] to a scalar:

    mean over b, t, v of  w_v * sum_g(a_g * e) / sum_g(a_g)

with node weights ``a`` (grid-cell areas, or uniform) and variable weights ``w`` normalised to
mean 1. Given a ``mask`` [B, T, V, G] (True where the target is valid: a NaN in the source,
land for sea-surface temperature, outside radar range), only valid points count:

    sum over valid b, t, v, g of w_v a_g e  /  sum over valid b, t, v, g of w_v a_g

the weights renormalised over the valid points (with every point valid, the same number as
above); invalid targets may hold anything, NaN included. No valid point: 0. ``compute_loss`` sums the losses named in a ``LossConfig`` and returns each term too.
The per-domain loss scaler (``DomainConfig.loss_weight``) is applied by the caller, which
multiplies the total returned here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated

import torch
from pydantic import Field

from .config import Flag, parse, typed
from .errors import WorkbenchError

LEVEL_WEIGHTINGS = ("none", "linear", "relu")
_LEVEL = re.compile(r"_(\d+)$")
_STD_EPS = 1e-12  # floor on the ensemble variance in the stats loss' Gaussian (0/0 guard)


# --------------------------------------------------------------------------- config


NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


@typed
@dataclass(frozen=True)
class LossConfig:
    """Which losses to sum and how to weight nodes, variables and pressure levels."""

    losses: tuple[str, ...] = ("mse",)
    latitude_weighting: Flag = True  # node area weights in every loss (area_mse always)
    variable_weights: Mapping[str, NonNegativeFloat] = field(default_factory=dict)  # name -> w
    level_weighting: str = "none"  # "none" | "linear" (level/1000) | "relu"
    level_min: NonNegativeFloat = 0.2  # relu: max(level_min, level_slope * level)
    level_slope: NonNegativeFloat = 0.001
    # 1: fair CRPS; below 1: almost-fair CRPS (Lang et al. 2024)
    crps_alpha: Annotated[float, Field(gt=0, le=1)] = 1.0
    loss_weights: Mapping[str, NonNegativeFloat] = field(default_factory=dict)  # loss -> w (1)

    def __post_init__(self) -> None:
        _validate(self)


def _validate(cfg: LossConfig) -> None:
    """What the types cannot say: known losses, each once, a known level weighting."""
    where = "loss config"
    if not cfg.losses:
        raise WorkbenchError(f"{where}: `losses` is empty (name at least one of: {_names()})")
    for name in cfg.losses:
        if name not in LOSSES:
            raise WorkbenchError(f"{where}: unknown loss {name!r} in `losses` "
                                 f"(choose from: {_names()})")
    if len(set(cfg.losses)) != len(cfg.losses):
        raise WorkbenchError(f"{where}: `losses` names a loss twice "
                             f"({', '.join(cfg.losses)}); list each once")
    unused = [name for name in cfg.loss_weights if name not in cfg.losses]
    if unused:
        raise WorkbenchError(f"{where}: loss_weights names {', '.join(map(repr, unused))}, not "
                             f"in `losses` ({', '.join(cfg.losses)}); weight only losses summed")
    if cfg.level_weighting not in LEVEL_WEIGHTINGS:
        raise WorkbenchError(f"{where}: unknown level_weighting {cfg.level_weighting!r} "
                             f"(choose from: {', '.join(LEVEL_WEIGHTINGS)})")


def _names() -> str:
    return ", ".join(LOSSES)


def loss_config_from_dict(raw: Mapping | None, where: str = "loss config") -> LossConfig:
    """A ``LossConfig`` from a YAML mapping (None: the defaults); bad input is a WorkbenchError.
    ``losses`` may name one loss as a plain string."""
    if raw is None:
        return LossConfig()
    if isinstance(raw, Mapping) and isinstance(raw.get("losses"), str):
        raw = {**raw, "losses": [raw["losses"]]}
    return parse(LossConfig, raw, where)


# --------------------------------------------------------------------------- weights


def pressure_level(name: str) -> int | None:
    """The pressure level of ``z_500``-style names (integer after the last underscore) or None."""
    match = _LEVEL.search(name)
    return int(match.group(1)) if match else None


def level_weight(name: str, config: LossConfig) -> float:
    """GraphCast's level/1000 ("linear"), anemoi's ReLU max(min, slope*level) ("relu"), or 1."""
    level = pressure_level(name)
    if level is None or config.level_weighting == "none":
        return 1.0
    if config.level_weighting == "linear":
        return level / 1000.0
    return max(config.level_min, config.level_slope * level)


def variable_weight_vector(names: Sequence[str], config: LossConfig) -> torch.Tensor:
    """[V] variable weight times level weight per variable, normalised to mean 1."""
    names = list(names)
    unknown = sorted(set(config.variable_weights) - set(names))
    if unknown:
        raise WorkbenchError(f"loss config: variable_weights names unknown variable(s) "
                             f"{', '.join(unknown)} (variables: {', '.join(names)})")
    raw = [config.variable_weights.get(n, 1.0) * level_weight(n, config) for n in names]
    weights = torch.tensor(raw, dtype=torch.float32)
    return _mean_one(weights, "variable weights")


def node_weight_vector(area_weight: torch.Tensor | None, config: LossConfig,
                       force: bool = False) -> torch.Tensor | None:
    """[G] area weights normalised to mean 1; None when latitude weighting is off (unless force)."""
    if area_weight is None or not (config.latitude_weighting or force):
        return None
    weights = torch.as_tensor(area_weight, dtype=torch.float32).reshape(-1)
    if (weights < 0).any() or not torch.isfinite(weights).all():
        raise WorkbenchError("node weights: area weights must be finite and >= 0")
    return _mean_one(weights, "node weights")


def _mean_one(weights: torch.Tensor, what: str) -> torch.Tensor:
    mean = weights.mean()
    if not mean > 0:
        raise WorkbenchError(f"{what}: all weights are zero; give at least one a positive weight")
    return weights / mean


# --------------------------------------------------------------------------- reduction


def _is_ensemble(pred: torch.Tensor, target: torch.Tensor) -> bool:
    if pred.shape == target.shape:
        return False
    if pred.dim() == target.dim() + 1 and pred.shape[:1] + pred.shape[2:] == target.shape:
        return True
    raise WorkbenchError(f"loss: prediction shape {tuple(pred.shape)} does not match target "
                         f"{tuple(target.shape)} (expected [B, T, V, G] or [B, M, T, V, G])")


def _members(pred: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """The ensemble [B, M, T, V, G], checked to hold at least two members."""
    if not _is_ensemble(pred, target) or pred.shape[1] < 2:
        raise WorkbenchError(f"loss {loss!r} needs an ensemble prediction [B, M, T, V, G] with "
                             "members M >= 2; use mse/mae for a deterministic model")
    return pred


def _ensemble_mean(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return pred.mean(dim=1) if _is_ensemble(pred, target) else pred


def weighted_mean(error: torch.Tensor, node_weights: torch.Tensor | None = None,
                  variable_weights: torch.Tensor | None = None,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scalar: node-weighted mean over G, times mean-1 variable weights, mean over B, T, V;
    with ``mask`` (bool, error's shape) the weighted mean over the valid points only."""
    if mask is not None:
        return _masked_mean(error, node_weights, variable_weights, mask)
    if node_weights is None:
        per_var = error.mean(dim=-1)
    else:
        w = node_weights.to(error)
        if w.shape != error.shape[-1:]:
            raise WorkbenchError(f"loss: {w.numel()} node weights for {error.shape[-1]} grid nodes")
        per_var = (error * w).sum(dim=-1) / w.sum()
    if variable_weights is not None:
        w = variable_weights.to(error)
        if w.shape != per_var.shape[-1:]:
            raise WorkbenchError(f"loss: {w.numel()} variable weights for "
                                 f"{per_var.shape[-1]} variables")
        per_var = per_var * (w / w.mean())
    return per_var.mean()


def _masked_mean(error: torch.Tensor, node_weights: torch.Tensor | None,
                 variable_weights: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    """sum(w_v a_g e) / sum(w_v a_g) over the points where ``mask`` is True (0 if none)."""
    if mask.shape != error.shape:
        raise WorkbenchError(f"loss: mask shape {tuple(mask.shape)} does not match the "
                             f"errors' {tuple(error.shape)} ([B, T, V, G])")
    weight = torch.ones(error.shape[-2:], dtype=error.dtype, device=error.device)
    if node_weights is not None:
        w = node_weights.to(error)
        if w.shape != error.shape[-1:]:
            raise WorkbenchError(f"loss: {w.numel()} node weights for {error.shape[-1]} grid nodes")
        weight = weight * w
    if variable_weights is not None:
        w = variable_weights.to(error)
        if w.shape != error.shape[-2:-1]:
            raise WorkbenchError(f"loss: {w.numel()} variable weights for "
                                 f"{error.shape[-2]} variables")
        weight = weight * w.unsqueeze(-1)
    weight = torch.where(mask, weight, 0.0)
    total = (torch.where(mask, error, 0.0) * weight).sum()
    return total / weight.sum().clamp_min(torch.finfo(error.dtype).tiny)


def _valid(target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The target with its invalid points set to 0, so no NaN reaches an error or a gradient."""
    if mask is None:
        return target
    if mask.shape != target.shape:
        raise WorkbenchError(f"loss: mask shape {tuple(mask.shape)} does not match the "
                             f"target's {tuple(target.shape)} ([B, T, V, G])")
    return torch.where(mask, target, 0.0)


# --------------------------------------------------------------------------- losses


def mse(pred: torch.Tensor, target: torch.Tensor, node_weights: torch.Tensor | None = None,
        variable_weights: torch.Tensor | None = None,
        mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error (of the ensemble mean, given an ensemble)."""
    target = _valid(target, mask)
    err = (_ensemble_mean(pred, target) - target) ** 2
    return weighted_mean(err, node_weights, variable_weights, mask)


def mae(pred: torch.Tensor, target: torch.Tensor, node_weights: torch.Tensor | None = None,
        variable_weights: torch.Tensor | None = None,
        mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error (of the ensemble mean, given an ensemble)."""
    target = _valid(target, mask)
    err = (_ensemble_mean(pred, target) - target).abs()
    return weighted_mean(err, node_weights, variable_weights, mask)


def area_mse(pred: torch.Tensor, target: torch.Tensor, node_weights: torch.Tensor | None = None,
             variable_weights: torch.Tensor | None = None,
             mask: torch.Tensor | None = None) -> torch.Tensor:
    """MSE that always weights nodes by area, whatever ``latitude_weighting`` says."""
    if node_weights is None:
        raise WorkbenchError("loss 'area_mse' needs node area weights; "
                             "pass the graph's area_weight")
    return mse(pred, target, node_weights, variable_weights, mask)


def mse_ensemble(pred: torch.Tensor, target: torch.Tensor,
                 node_weights: torch.Tensor | None = None,
                 variable_weights: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """AtmoRep's ``mse_ensemble``: each member's MSE, averaged over members (= mse if M absent)."""
    if not _is_ensemble(pred, target):
        return mse(pred, target, node_weights, variable_weights, mask)
    target = _valid(target, mask)
    err = ((pred - target.unsqueeze(1)) ** 2).mean(dim=1)
    return weighted_mean(err, node_weights, variable_weights, mask)


def crps_pointwise(members: torch.Tensor, target: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """[B, T, V, G] almost-fair kernel CRPS of members [B, M, T, V, G] as anemoi defines it.

    afCRPS_a = mean_i |x_i - y| - (a / (M (M-1)) + (1-a) / M^2) * sum_{i<j} |x_i - x_j|
             = a * fairCRPS + (1 - a) * CRPS_ensemble,
    equivalently (Lang et al. 2024, AIFS-CRPS) 1/(2M(M-1)) sum_{i!=j} (|x_i-y| + |x_j-y|
    - (1-eps)|x_i-x_j|) with eps = (1-a)/M. The spread sum uses sorted members,
    sum_{i<j} |x_i - x_j| = sum_k (2k - M + 1) x_(k), so memory stays O(M) per point.
    Source: ecmwf/anemoi-core, ``AlmostFairKernelCRPS._kernel_crps`` (later ``CRPS``) in
    training/src/anemoi/training/losses/kcrps.py; Lang et al. 2024, arXiv:2412.15832.
    """
    m = members.shape[1]
    skill = (members - target.unsqueeze(1)).abs().mean(dim=1)
    ranked, _ = torch.sort(members, dim=1)
    coef = torch.arange(m, dtype=members.dtype, device=members.device) * 2.0 - (m - 1)
    spread = (ranked * coef.view(1, m, *([1] * (members.dim() - 2)))).sum(dim=1)
    return skill - (alpha / (m * (m - 1)) + (1.0 - alpha) / m**2) * spread


def crps(pred: torch.Tensor, target: torch.Tensor, node_weights: torch.Tensor | None = None,
         variable_weights: torch.Tensor | None = None, alpha: float = 1.0,
         mask: torch.Tensor | None = None) -> torch.Tensor:
    """Ensemble CRPS: fair for alpha=1, almost-fair (AIFS-CRPS) below; needs M >= 2."""
    if not 0.0 < alpha <= 1.0:
        raise WorkbenchError(f"loss 'crps': alpha={alpha!r} is outside (0, 1] (1 = fair CRPS)")
    members = _members(pred, target, "crps")
    return weighted_mean(crps_pointwise(members, _valid(target, mask), alpha), node_weights,
                         variable_weights, mask)


def stats(pred: torch.Tensor, target: torch.Tensor, node_weights: torch.Tensor | None = None,
          variable_weights: torch.Tensor | None = None,
          mask: torch.Tensor | None = None) -> torch.Tensor:
    """AtmoRep's statistical loss on the ensemble mean mu and standard deviation sigma.

    loss = mean((exp(-(y - mu)^2 / (2 sigma^2)) - 1)^2) + mean(sqrt(|sigma|)), sigma with
    Bessel's correction (torch.std). Source: clessig/atmorep, ``Trainer_Base.loss`` in
    atmorep/core/trainer.py ('stats'), the unnormalised ``Gaussian`` in atmorep/utils/utils.py
    and mean/std of the members in atmorep/transformer/tail_ensemble.py. Here sigma^2 is
    floored at 1e-12 inside the Gaussian, so identical members give a finite value.
    """
    members = _members(pred, target, "stats")
    target = _valid(target, mask)
    mu = members.mean(dim=1)
    sigma = members.std(dim=1)
    var = (sigma * sigma).clamp_min(_STD_EPS)
    gauss = torch.exp(-0.5 * (target - mu) ** 2 / var)
    err = (gauss - 1.0) ** 2 + sigma.abs().sqrt()
    return weighted_mean(err, node_weights, variable_weights, mask)


LossFn = Callable[..., torch.Tensor]
LOSSES: dict[str, LossFn] = {
    "mse": mse,
    "mae": mae,
    "area_mse": area_mse,
    "mse_ensemble": mse_ensemble,
    "crps": crps,
    "stats": stats,
}


# --------------------------------------------------------------------------- combined


def compute_loss(pred: torch.Tensor, target: torch.Tensor, config: LossConfig,
                 area_weight: torch.Tensor | None = None,
                 variable_names: Sequence[str] | None = None,
                 mask: torch.Tensor | None = None,
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The sum of the configured losses, each times its ``loss_weights`` entry (default 1;
    keeps the graph), and each term unweighted, detached, by name; ``mask`` (bool
    [B, T, V, G], True where the target is valid) keeps only valid points."""
    node_w = node_weight_vector(area_weight, config)
    var_w = _variable_weights(variable_names, config, target.shape[-2])
    total = None
    terms: dict[str, torch.Tensor] = {}
    for name in config.losses:
        forced = name == "area_mse"
        nodes = node_weight_vector(area_weight, config, force=True) if forced else node_w
        extra = {"alpha": config.crps_alpha} if name == "crps" else {}
        value = LOSSES[name](pred, target, nodes, var_w, mask=mask, **extra)
        terms[name] = value.detach().clone()
        value = value * config.loss_weights.get(name, 1.0)
        total = value if total is None else total + value
    return total, terms


def _variable_weights(names: Sequence[str] | None, config: LossConfig,
                      num_vars: int) -> torch.Tensor | None:
    if names is None:
        if config.variable_weights or config.level_weighting != "none":
            raise WorkbenchError("loss: variable_weights/level_weighting need variable_names; "
                                 "pass the dataset's variable names to compute_loss")
        return None
    if len(names) != num_vars:
        raise WorkbenchError(f"loss: {len(names)} variable names for {num_vars} variables "
                             "in the target")
    return variable_weight_vector(names, config)
