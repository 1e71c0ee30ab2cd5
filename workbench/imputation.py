"""Missing values at the torch boundary: a mask, an imputed value and a was-missing channel.

A NaN in a source (sea-surface temperature over land, radar outside its range) becomes a
mask (True where the value is valid) plus an imputed value, so nothing downstream sees a NaN.
Per variable, as the sampling config's ``imputer`` says (anemoi's InputImputer and
ConstantImputer shape: a ``default`` and per-variable choices):

- ``mean``: the variable's training mean, i.e. 0 after normalisation (for a variable with a
  ``fixed_scaling``, its offset); the default;
- ``constant``: a value in physical units (``{kind: constant, value: 271.35}``);
- ``nearest_time``: the nearest valid value in time within the sample window (ties: the
  earlier one), else the mean. Inputs look only at the input steps, so nothing of the
  targets' times reaches a forecast's inputs; targets and forcings at the whole window.
  A static has no time: its ``nearest_time`` is the mean.

Variables named in the imputer's ``missing_channel`` also give the model a 0/1 channel that
is 1 where the value was missing (:meth:`GroupImputer.channels`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import xarray as xr

from .errors import WorkbenchError
from .sampling_config import ImputerConfig
from .statistics import Normaliser


class GroupImputer:
    """Fills the NaNs of one group of a domain's fields (its variables, forcings or statics),
    tensors [time, field, grid] in normalised units."""

    def __init__(self, names: Sequence[str], config: ImputerConfig, normaliser: Normaliser):
        self.names = list(names)
        rules = [config.imputation(n) for n in self.names]
        constant = torch.tensor([r.kind == "constant" for r in rules], dtype=torch.bool)
        physical = torch.tensor([[r.value if r.value is not None else 0.0] for r in rules],
                                dtype=torch.float64).reshape(len(rules), 1)
        normalised = normaliser.normalise(physical)[:, 0] if rules else physical[:, 0]
        self.fill = torch.where(constant, normalised, 0.0).float()  # [field]
        self.nearest = torch.tensor([r.kind == "nearest_time" for r in rules], dtype=torch.bool)
        listed = set(config.missing_channel)
        self.channel_index = [i for i, n in enumerate(self.names) if n in listed]

    def __call__(self, values: torch.Tensor, inputs: int | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(imputed values, valid mask) of ``values`` [time, field, grid]. ``inputs``: the
        first ``inputs`` steps are a forecast's inputs and impute from themselves only."""
        valid = torch.isfinite(values)
        if bool(valid.all()):
            return values, valid
        out = values
        if bool(self.nearest.any()):
            if inputs is None:
                out = nearest_in_time(values, valid, self.nearest)
            else:
                out = torch.cat([nearest_in_time(values[:inputs], valid[:inputs], self.nearest),
                                 nearest_in_time(values, valid, self.nearest)[inputs:]])
        out = torch.where(torch.isfinite(out), out, self.fill.to(out.dtype).view(-1, 1))
        return out, valid

    def channels(self, valid: torch.Tensor) -> torch.Tensor:
        """The was-missing channels [..., listed field, grid]: 1.0 where not valid."""
        return (~valid[..., self.channel_index, :]).to(torch.float32)

    def with_channels(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` [time, field, grid] imputed, its was-missing channels appended."""
        filled, valid = self(values)
        if not self.channel_index:
            return filled
        return torch.cat([filled, self.channels(valid)], dim=-2)


def nearest_in_time(values: torch.Tensor, valid: torch.Tensor, which: torch.Tensor
                    ) -> torch.Tensor:
    """``values`` [time, field, grid] with each invalid value of the fields ``which`` (bool
    [field]) replaced by the nearest valid value of the same field and point in time (the
    earlier one of two as near); left NaN where the point has no valid time."""
    out = values.clone()
    todo = ~valid & which.view(1, -1, 1)
    steps = values.shape[0]
    for distance in range(1, steps):
        if not bool(todo.any()):
            break
        for shift in (-distance, distance):  # earlier first
            source = torch.full_like(values, float("nan"))
            has = torch.zeros_like(valid)
            if shift < 0:
                source[distance:], has[distance:] = values[:-distance], valid[:-distance]
            else:
                source[:-distance], has[:-distance] = values[distance:], valid[distance:]
            take = todo & has
            out = torch.where(take, source, out)
            todo = todo & ~take
    return out


def check_valid(ds: xr.Dataset, names: Sequence[str], where: str, train: slice,
                period: str) -> None:
    """A one-line error for the first of ``names`` with no valid value: none in the train
    split (the time steps ``train``, dates ``period``), or none at all (a mask that leaves
    nothing); ``where`` names the domain and dataset."""
    for name in names:
        var = ds[name]
        if not bool(var.notnull().any()):
            raise WorkbenchError(
                f"{where}: {name} has no valid point (NaN everywhere: its missing-value mask "
                f"leaves nothing to train on or score); drop {name} from the sampling config "
                "or use a domain where it has data")
        if "time" in var.dims and not bool(var.isel(time=train).notnull().any()):
            raise WorkbenchError(
                f"{where}: {name} is NaN at every point of the train split ({period}); move "
                f"the split to where {name} has data or drop it from the sampling config")
