"""Missing values, as anemoi handles them (issue 12, part 3): a NaN in a source becomes a mask
plus an imputed value at the torch boundary; every loss and metric is a masked mean over the
valid points; maps show masked points as missing.

Data: an SST-like field that is NaN over land (a static mask) and a radar-like rain rate
that is NaN beyond the radar's range (a mask that changes with time), on a lat-lon extract
and on a Lambert grid (``tests/missing_files.py``), through a user catalog folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from missing_files import SST_FREEZING, TIMES, fields, land, write_latlon, write_projected

from workbench import binnorm, catalog, evaluation, forecast_files, losses, skill, tiling
from workbench.config import parse
from workbench.errors import WorkbenchError
from workbench.imputation import GroupImputer, nearest_in_time
from workbench.sampling import MultiDomainDataModule, sampling_config_from_dict
from workbench.sampling_config import ImputerConfig
from workbench.statistics import Normaliser, VariableStats, compute_statistics
from workbench.training_config import model_config, training_config_from_dict

matplotlib.use("Agg")
pytestmark = pytest.mark.timeout(600)


# --------------------------------------------------------------------------- masked losses


def _case(members: int | None, seed: int = 0):
    """Predictions, a target that is NaN where the mask is False, node and variable weights;
    float64, B=2, T=2, V=3, G=7 (M members)."""
    g = torch.Generator().manual_seed(seed)
    shape = (2, 2, 3, 7)
    target = torch.randn(shape, generator=g, dtype=torch.float64)
    pred_shape = shape if members is None else (2, members, *shape[1:])
    pred = torch.randn(pred_shape, generator=g, dtype=torch.float64).requires_grad_(True)
    mask = torch.rand(shape, generator=g) > 0.35
    mask[0, 0, 0] = False  # one (b, t, v) slice without any valid point
    target = target.where(mask, torch.nan)
    area = torch.rand(7, generator=g, dtype=torch.float64) + 0.2
    var_w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    return pred, target, mask, area, var_w


def _pointwise(name: str, pred: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Each loss's error per point, written from its definition (numpy, members on axis 1)."""
    if name in ("mse", "mae", "area_mse"):
        mean = pred.mean(axis=1) if pred.ndim == 5 else pred
        return (mean - y) ** 2 if name != "mae" else np.abs(mean - y)
    if name == "mse_ensemble":
        return ((pred - y[:, None]) ** 2).mean(axis=1)
    m = pred.shape[1]
    pairs = np.abs(pred[:, :, None] - pred[:, None, :]).sum(axis=(1, 2))  # sum_ij |x_i - x_j|
    if name == "crps":  # alpha * fair + (1 - alpha) * the ensemble's own CRPS
        skill_term = np.abs(pred - y[:, None]).mean(axis=1)
        fair = skill_term - pairs / (2 * m * (m - 1))
        plain = skill_term - pairs / (2 * m * m)
        return alpha * fair + (1 - alpha) * plain
    mu, sigma = pred.mean(axis=1), pred.std(axis=1, ddof=1)  # stats
    gauss = np.exp(-0.5 * (y - mu) ** 2 / np.maximum(sigma**2, 1e-12))
    return (gauss - 1) ** 2 + np.sqrt(sigma)


def _over_valid(error: np.ndarray, mask: np.ndarray, area: np.ndarray,
                var_w: np.ndarray) -> float:
    """The weighted mean over the valid points only: the valid values and their weights
    picked out one by one, nothing else in the sum."""
    values, weights = [], []
    for b, t, v, g in zip(*np.nonzero(mask), strict=True):
        values.append(error[b, t, v, g])
        weights.append(var_w[v] * area[g])
    return float(np.dot(values, weights) / np.sum(weights))


@pytest.mark.parametrize("name,members", [("mse", None), ("mae", None), ("area_mse", None),
                                          ("mse", 3), ("mse_ensemble", 4), ("crps", 4),
                                          ("stats", 5)])
def test_masked_loss_is_the_loss_over_valid_points(name, members):
    """Each loss given a mask equals, to 1e-12, the area- and variable-weighted mean of its
    pointwise error over the valid points only (computed by hand from the definition); the
    NaN targets reach neither the value nor the gradient, which is 0 at invalid points."""
    pred, target, mask, area, var_w = _case(members)
    value = losses.LOSSES[name](pred, target, area, var_w, mask=mask)
    clean = np.where(mask.numpy(), target.numpy(), 0.0)
    error = _pointwise(name, pred.detach().numpy(), clean)
    expected = _over_valid(error, mask.numpy(), area.numpy(), var_w.numpy())
    assert value.item() == pytest.approx(expected, rel=1e-12)
    value.backward()
    grad = pred.grad if members is None else pred.grad.sum(1)
    assert torch.isfinite(pred.grad).all()
    assert (grad[~mask] == 0).all() and (grad[mask] != 0).any()
    # zeros averaged in (the invalid errors counted as 0) would give a smaller number
    zeros_in = np.sum(np.where(mask.numpy(), error, 0.0) * var_w.numpy()[:, None]
                      * area.numpy()) / (np.sum(var_w.numpy()[:, None] * area.numpy()) * 4)
    assert abs(zeros_in - expected) > 1e-3


def test_almost_fair_crps_masked():
    pred, target, mask, area, var_w = _case(4, seed=3)
    value = losses.crps(pred, target, area, var_w, alpha=0.9, mask=mask)
    error = _pointwise("crps", pred.detach().numpy(),
                       np.where(mask.numpy(), target.numpy(), 0.0), alpha=0.9)
    assert value.item() == pytest.approx(
        _over_valid(error, mask.numpy(), area.numpy(), var_w.numpy()), rel=1e-12)


def test_compute_loss_with_a_mask_sums_the_masked_terms_with_the_config_weights():
    """compute_loss (area weights from the graph, variable and level weights from the config)
    with the batch's mask: the sum of the masked mse and mae by hand; an all-valid mask gives
    the unmasked loss; no valid point gives 0 with a zero gradient."""
    pred, target, mask, area, _ = _case(None, seed=1)
    pred, target, area = pred.detach().float().requires_grad_(True), target.float(), area.float()
    names = ["sst", "z_500", "rr"]
    config = losses.LossConfig(losses=("mse", "mae"), variable_weights={"sst": 2.0},
                               level_weighting="linear")
    total, terms = losses.compute_loss(pred, target, config, area, names, mask)
    var_w = np.array([2.0, 0.5, 1.0])  # sst 2, z_500 500/1000, rr 1 (mean-1 scaling cancels)
    clean = np.where(mask.numpy(), target.numpy(), 0.0)
    for name in ("mse", "mae"):
        expected = _over_valid(_pointwise(name, pred.detach().numpy(), clean), mask.numpy(),
                               area.numpy(), var_w)
        assert terms[name].item() == pytest.approx(expected, rel=1e-5)
    assert total.item() == pytest.approx(sum(t.item() for t in terms.values()), rel=1e-6)
    full = torch.ones_like(mask)
    filled = target.nan_to_num(0.0)
    masked, _ = losses.compute_loss(pred, filled, config, area, names, full)
    plain, _ = losses.compute_loss(pred, filled, config, area, names)
    assert masked.item() == pytest.approx(plain.item(), rel=1e-6)
    nothing, _ = losses.compute_loss(pred, target, config, area, names, torch.zeros_like(mask))
    nothing.backward()
    assert nothing.item() == 0.0 and (pred.grad == 0).all()


def test_loss_mask_of_another_shape_is_one_line():
    pred, target, mask, area, var_w = _case(None)
    with pytest.raises(WorkbenchError, match=r"mask shape \(2, 2, 3\) does not match"):
        losses.mse(pred, target, area, var_w, mask=mask[..., 0])


# --------------------------------------------------------------------------- imputers


def _imputer(**config) -> tuple[GroupImputer, Normaliser]:
    stats = {"a": VariableStats(10.0, 2.0, 0.0, 20.0, 1.0),
             "b": VariableStats(280.0, 5.0, 260.0, 300.0, 1.0),
             "c": VariableStats(1.0, 0.5, 0.0, 9.0, 1.0)}
    norm = Normaliser(["a", "b", "c"], stats)
    return GroupImputer(["a", "b", "c"], parse(ImputerConfig, config, "imputer"), norm), norm


NAN = np.nan
WINDOW = np.array([  # [time, variable (a, b, c), point] in physical units
    [[10.5, NAN, 11.0], [281.0, 282.0, 283.0], [NAN, 5.0, NAN]],
    [[NAN, 9.0, 12.0], [NAN, 284.0, 285.0], [1.0, NAN, NAN]],
    [[10.0, 8.0, 13.0], [286.0, 287.0, 288.0], [NAN, 7.0, 3.0]],
    [[11.0, 7.0, 14.0], [289.0, NAN, 290.0], [NAN, NAN, NAN]],
])


def test_imputers_mean_constant_and_nearest_time_by_hand():
    """On a hand-made window of 4 steps (2 inputs, 2 targets): ``mean`` fills 0 after
    normalisation (the training mean, 10); ``constant`` fills the value in physical units;
    ``nearest_time`` fills the nearest valid time's value, inputs only from inputs (no
    target value leaks into a forecast's input), else the mean; valid values untouched."""
    imputer, norm = _imputer(variables={"b": {"kind": "constant", "value": SST_FREEZING},
                                        "c": "nearest_time"})
    values = norm.normalise(torch.from_numpy(WINDOW))
    filled, valid = imputer(values, inputs=2)
    assert torch.equal(valid, torch.from_numpy(np.isfinite(WINDOW)))
    assert torch.isfinite(filled).all()
    assert filled[1, 0, 0] == 0.0  # mean: 0 after normalisation ...
    physical = norm.denormalise(filled).numpy()
    assert physical[1, 0, 0] == pytest.approx(10.0)  # ... the training mean
    np.testing.assert_allclose(physical[[1, 3], 1, [0, 1]], SST_FREEZING, rtol=1e-7)  # float32
    expected_c = np.array([[1.0, 5.0, 1.0],  # point 2 has no valid input: the mean (1)
                           [1.0, 5.0, 1.0],  # point 1: 5 from t0, not 7 from the target t2
                           [1.0, 7.0, 3.0],  # targets: the nearest in the whole window
                           [1.0, 7.0, 3.0]])
    np.testing.assert_allclose(physical[:, 2], expected_c, rtol=1e-12)
    np.testing.assert_array_equal(physical[np.isfinite(WINDOW)], WINDOW[np.isfinite(WINDOW)])


def test_nearest_time_ties_go_to_the_earlier_value():
    values = torch.tensor([[[5.0]], [[NAN]], [[7.0]], [[NAN]], [[NAN]], [[NAN]]])
    filled = nearest_in_time(values, torch.isfinite(values), torch.tensor([True]))
    assert filled[:, 0, 0].tolist() == [5.0, 5.0, 7.0, 7.0, 7.0, 7.0]


def test_was_missing_channel_equals_the_mask():
    imputer, norm = _imputer(default="nearest_time", missing_channel=("a", "c"))
    values = norm.normalise(torch.from_numpy(WINDOW))
    with_channels = imputer.with_channels(values)
    assert with_channels.shape == (4, 5, 3)
    np.testing.assert_array_equal(with_channels[:, 3:].numpy(),
                                  (~np.isfinite(WINDOW[:, [0, 2]])).astype(np.float32))


# --------------------------------------------------------------------------- datasets


@pytest.fixture(scope="module")
def masked_folder(tmp_path_factory) -> Path:
    """``shelf`` (lat-lon) and ``coast`` (Lambert) with their catalog folder ``cat``."""
    folder = tmp_path_factory.mktemp("masked")
    write_latlon(folder)
    write_projected(folder)
    return folder


@pytest.fixture
def masked(masked_folder, monkeypatch) -> Path:
    """The masked datasets' catalog folder in $WORKBENCH_CATALOG (as --catalog puts it)."""
    monkeypatch.setenv("WORKBENCH_CATALOG", str(masked_folder / "cat"))
    return masked_folder


SAMPLING = {
    "name": "masked",
    "domains": [{"name": "shelf", "dataset": "shelf"}, {"name": "coast", "dataset": "coast"}],
    "variables": ["sst", "rr"], "statics": ["depth"], "forcings": ["cos_latitude"],
    "splits": {"train": ["2021-06-01", "2021-06-08T18:00"],
               "val": ["2021-06-09", "2021-06-10T18:00"],
               "test": ["2021-06-11", "2021-06-12T18:00"]},
    "input_steps": 2, "rollout": 2, "batch_size": 2,
    "imputer": {"variables": {"sst": {"kind": "constant", "value": SST_FREEZING},
                              "rr": "nearest_time"},
                "missing_channel": ["rr", "depth"]},
}


def test_batches_carry_masks_imputed_values_and_channels(masked):
    """Every batch is finite; ``y_mask``/``x_mask`` are where the source is valid (land for
    sst, the radar's range for rr, from the fields' own formulas); sst is 271.35 K over land,
    rr the nearest valid input time's value (else the mean); the static depth is its mean
    over land with a was-missing channel equal to the land mask; the model's channel counts
    follow (an rr channel per input step, depth's channel among the statics)."""
    data = MultiDomainDataModule(sampling_config_from_dict(SAMPLING))
    data.setup()
    for d, domain in enumerate(data.domains):
        ds = catalog.open_dataset(domain.domain.dataset)
        truth = fields(ds["latitude"].values, ds["longitude"].values)
        is_land = land(ds["latitude"].values, ds["longitude"].values)
        assert 0 < is_land.sum() < is_land.size
        t0 = 4  # inputs at steps 4, 5; targets 6, 7 (radar range short at steps 5 and 8)
        batch = data.dataset.collate([data.dataset[(d, t0)]])
        for key in ("x", "y", "forcings", "statics"):
            assert torch.isfinite(batch[key]).all(), key
        for key, steps in (("x_mask", (4, 5)), ("y_mask", (6, 7))):
            for v, name in enumerate(("sst", "rr")):
                expected = np.isfinite(truth[name][list(steps)])
                np.testing.assert_array_equal(batch[key][0, :, v].numpy(), expected)
        norm = domain.normalisers["variables"]
        x = norm.denormalise(batch["x"][0]).numpy()
        np.testing.assert_allclose(x[:, 0, is_land], SST_FREEZING, rtol=1e-6)
        np.testing.assert_allclose(x[:, 0, ~is_land], truth["sst"][4:6][:, ~is_land], rtol=1e-6)
        rr = truth["rr"]
        out_at_5 = ~np.isfinite(rr[5]) & np.isfinite(rr[4])
        assert out_at_5.any()
        np.testing.assert_allclose(x[1, 1, out_at_5], rr[4, out_at_5], rtol=1e-5)
        never = ~np.isfinite(rr[4]) & ~np.isfinite(rr[5])
        np.testing.assert_allclose(x[:, 1, never], domain.stats["rr"].mean, rtol=1e-5)
        statics = batch["statics"]
        assert statics.shape == (2, domain.n_grid)
        depth = domain.normalisers["statics"].denormalise(statics[:1]).numpy()[0]
        np.testing.assert_allclose(depth[is_land], domain.stats["depth"].mean, rtol=1e-5)
        np.testing.assert_array_equal(statics[1].numpy(), is_land.astype(np.float32))
    config = training_config_from_dict({"name": "t", "sampling": SAMPLING})
    model = model_config(config, sampling_config_from_dict(SAMPLING))
    assert (model.n_variables, model.n_missing, model.n_forcings, model.n_statics) == (2, 1, 1, 2)
    assert model.node_inputs == 2 * (2 + 1) + 3 * 1 + 2 + 3


def test_statistics_tiling_and_bin_norm_ignore_nan(masked, tmp_path):
    """Statistics over the valid values only (numpy's nanmean/nanstd); tiles' missing
    fraction = the land share of the tile (a hand count), their rr aggregate the mean of the
    valid values, a tile without any rr (beyond the radar's range) dropped; bin-norm bins
    every tile kept."""
    ds = catalog.open_dataset("shelf")
    stats = compute_statistics(ds, ["sst", "rr", "depth"])
    for name in ("sst", "rr", "depth"):
        values = ds[name].values.astype(np.float64)
        assert stats[name].mean == pytest.approx(np.nanmean(values), rel=1e-5)
        assert stats[name].std == pytest.approx(np.nanstd(values), rel=1e-4)
    config = tiling.TilingConfig(tile_size=(6, 11), max_missing_fraction=1.0, variables=("sst",),
                                 aggregate_variable="rr", aggregate="mean")
    tiles = tiling.tile_index(ds, config, "shelf", tmp_path)
    is_land = land(ds["latitude"].values, ds["longitude"].values).reshape(18, 22)
    rr = ds["rr"].values.reshape(-1, 18, 22)
    kept = {(t, j, i) for t in range(len(TIMES)) for j in (0, 6, 12) for i in (0, 11)
            if np.isfinite(rr[t, j:j + 6, i:i + 11]).any()}  # no rr at all: dropped
    assert 0 < len(TIMES) * 6 - len(kept) < len(TIMES)
    assert set(zip(tiles["t_index"], tiles["j0"], tiles["i0"], strict=True)) == kept
    for row in tiles.itertuples():
        box = (slice(row.j0, row.j0 + 6), slice(row.i0, row.i0 + 11))
        assert row.missing_fraction == pytest.approx(is_land[box].mean())
        assert row.aggregate == pytest.approx(np.nanmean(rr[row.t_index][box]), rel=1e-5)
    sampled = binnorm.bin_norm_sample(tiles, binnorm.BinNormConfig(n_bins=4), tmp_path)
    assert sum(sampled.attrs["counts_before"]) == len(tiles)
    assert np.isfinite(sampled["weight"]).all()


# --------------------------------------------------------------------------- masked metrics


def _scores_case(seed: int = 0):
    """A truth (time, grid) with a time-varying NaN mask (one point never valid), a forecast
    (init_time, lead_time, [member], grid) and area weights."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2021-01-01", periods=8, freq="6h").values
    n = 9
    values = rng.normal(280, 3, (8, n))
    values[rng.random((8, n)) < 0.3] = np.nan
    values[:, 4] = np.nan
    truth = xr.Dataset({"sst": (("time", "grid"), values)},
                       coords={"time": times, "latitude": ("grid", np.linspace(-40, 40, n)),
                               "longitude": ("grid", np.linspace(0, 80, n))})
    init, lead = times[:5], pd.to_timedelta([6, 12], unit="h").values
    fc = rng.normal(280, 3, (5, 2, 4, n))
    forecast = xr.Dataset({"sst": (("init_time", "lead_time", "member", "grid"), fc)},
                          coords={"init_time": init, "lead_time": lead})
    weights = xr.DataArray(rng.random(n) + 0.5, dims="grid")
    return truth, forecast, weights


def _by_hand(pointwise, valid, w):
    """Per init: sum_g w e / sum_g w over valid points; then the mean over the init times
    with a valid point ([init, lead] -> [lead])."""
    out = []
    for k in range(pointwise.shape[1]):
        per_init = [np.sum(w[ok] * e[ok]) / np.sum(w[ok])
                    for e, ok in zip(pointwise[:, k], valid[:, k], strict=True) if ok.any()]
        out.append(np.mean(per_init))
    return np.array(out)


def test_masked_metrics_equal_numpy_over_valid_points():
    """rmse, mse, mae, bias, crps and acc with NaN in the truth: each the area-weighted mean
    over the valid points per init time, then the mean over init times (numpy by hand); maps
    NaN where a point is never valid; an explicit mask narrows the points further."""
    truth, forecast, weights = _scores_case()
    mean = forecast.mean("member")
    y = np.stack([truth["sst"].values[i + 1:i + 3] for i in range(5)])  # [init, lead, grid]
    valid = np.isfinite(y)
    f = mean["sst"].values
    w = weights.values
    np.testing.assert_allclose(skill.mse(mean, truth, weights)["sst"].values,
                               _by_hand((f - y) ** 2, valid, w), rtol=1e-12)
    np.testing.assert_allclose(skill.rmse(mean, truth, weights)["sst"].values,
                               np.sqrt(_by_hand((f - y) ** 2, valid, w)), rtol=1e-12)
    np.testing.assert_allclose(skill.mae(mean, truth, weights)["sst"].values,
                               _by_hand(np.abs(f - y), valid, w), rtol=1e-12)
    np.testing.assert_allclose(skill.bias(mean, truth, weights)["sst"].values,
                               _by_hand(f - y, valid, w), rtol=1e-12)
    members = forecast["sst"].values  # [init, lead, member, grid]
    pairs = np.abs(members[:, :, :, None] - members[:, :, None, :]).sum(axis=(2, 3))
    crps = np.abs(members - np.nan_to_num(y)[:, :, None]).mean(2) - pairs / (2 * 4 * 3)
    np.testing.assert_allclose(skill.crps(forecast, truth, weights)["sst"].values,
                               _by_hand(crps, valid, w), rtol=1e-12)
    clim = xr.Dataset({"sst": ("grid", np.full(9, 279.0))})
    fa, ta = f - 279.0, y - 279.0
    acc = []
    for k in range(2):
        per_init = []
        for i in range(5):
            ok = valid[i, k]
            if ok.any():
                mean_w = [np.sum(w[ok] * a[ok]) / np.sum(w[ok])
                          for a in (fa[i, k] * ta[i, k], fa[i, k] ** 2, ta[i, k] ** 2)]
                per_init.append(mean_w[0] / np.sqrt(mean_w[1] * mean_w[2]))
        acc.append(np.mean(per_init))
    np.testing.assert_allclose(skill.acc(mean, truth, clim, weights)["sst"].values, acc,
                               rtol=1e-12)
    spatial = skill.spatial_mse(mean, truth)["sst"].values  # [lead, grid]
    assert np.isnan(spatial[:, 4]).all() and np.isfinite(np.delete(spatial, 4, axis=1)).all()
    k, g = 1, 3
    point = [(f[n, k, g] - y[n, k, g]) ** 2 for n in range(5) if valid[n, k, g]]
    assert spatial[k, g] == pytest.approx(np.mean(point), rel=1e-12)
    narrower = valid & (np.arange(9) % 2 == 0)
    given = xr.DataArray(narrower, dims=("init_time", "lead_time", "grid"),
                         coords={"init_time": mean["init_time"], "lead_time": mean["lead_time"]})
    np.testing.assert_allclose(skill.mse(mean, truth, weights, given)["sst"].values,
                               _by_hand((f - y) ** 2, narrower, w), rtol=1e-12)


def test_by_band_leaves_missing_points_out():
    metric = xr.Dataset({"sst": (("lead_time", "grid"), [[1.0, np.nan, 3.0, 5.0]])})
    labels = xr.DataArray([0, 0, 1, 1], dims="grid", attrs={"edges": [0, 1, 2]})
    weights = xr.DataArray([1.0, 1.0, 1.0, 3.0], dims="grid")
    out = skill.by_band(metric, labels, weights)["sst"].values[0]
    np.testing.assert_allclose(out, [1.0, (3.0 + 15.0) / 4.0])


def test_scores_and_maps_score_model_and_baselines_on_the_same_points(masked):
    """evaluation.scores on the radar domain: the scored points are where the truth is valid
    at the valid time and at the init time (persistence) and the climatology is defined; the
    model's and persistence's RMSE equal numpy over exactly those points; skill maps are
    NaN (drawn blank) where a point is never scored and finite elsewhere."""
    truth = catalog.open_dataset("coast")[["rr"]].load()
    times = truth["time"].values
    init = times[40:45]
    lead = pd.to_timedelta([6, 12], unit="h").values
    rng = np.random.default_rng(1)
    valid_values = np.stack([truth["rr"].values[41 + i:43 + i] for i in range(5)])
    model = np.nan_to_num(valid_values, nan=1.0) + rng.normal(0, 0.1, valid_values.shape)
    forecast = xr.Dataset({"rr": (("init_time", "lead_time", "grid"), model)},
                          coords={"init_time": init, "lead_time": lead},
                          attrs={"domain": "coast", "dataset": "coast", "split": "test"})
    period = ("2021-06-01", "2021-06-08T18:00")
    table = evaluation.scores(forecast, truth, period)
    persistence = np.stack([np.repeat(truth["rr"].values[40 + i][None], 2, 0) for i in range(5)])
    scored = np.isfinite(valid_values) & np.isfinite(persistence)
    clim = skill.climatology(truth, *period)["rr"]
    assert np.isfinite(clim.values).all(axis=0).sum() > 0
    w = evaluation.area_weights(truth).values
    for name, values in (("model", model), ("persistence", persistence)):
        rows = table[(table.forecast == name) & (table.metric == "rmse")].sort_values(
            "lead_hours")
        expected = np.sqrt(_by_hand((values - np.nan_to_num(valid_values)) ** 2, scored, w))
        np.testing.assert_allclose(rows["value"].values, expected, rtol=1e-6)
    assert np.isfinite(table["value"]).all()
    maps = evaluation.skill_maps(forecast, truth, period)
    never = ~scored.any(axis=0)[0]
    assert never.any() and not never.all()
    skill_map = maps["rr"].sel(forecast="model", metric="skill_vs_persistence").values[0]
    assert np.isnan(skill_map[never]).all() and np.isfinite(skill_map[~never]).all()
    from workbench.plotting_skill import skill_map as draw

    ax = draw(maps, "rr", 0)
    mesh = ax.collections[0].get_array()
    assert np.ma.count_masked(mesh) == never.sum()  # drawn as missing, nothing else


def test_no_valid_point_to_score_is_one_line(masked):
    """A domain whose mask covers every scored point: one line naming the variable."""
    truth = catalog.open_dataset("coast")[["sst"]].load()
    truth["sst"][:] = np.nan
    forecast = xr.Dataset({"sst": (("init_time", "lead_time", "grid"),
                                   np.zeros((2, 1, truth.sizes["grid"])))},
                          coords={"init_time": truth["time"].values[40:42],
                                  "lead_time": pd.to_timedelta([6], unit="h").values},
                          attrs={"domain": "coast", "split": "test"})
    truth["sst"][:10] = 280.0  # a climatology, but nothing valid in the test period
    with pytest.raises(WorkbenchError, match=r"domain 'coast': sst has no valid point to score "
                                             r"in the test split") as err:
        evaluation.scores(forecast, truth, ("2021-06-01", "2021-06-02"))
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- a training


TRAIN = """\
name: masked
sampling:
  name: masked
  domains:
    - {{name: shelf, dataset: shelf, graph: {folder}/shelf-graph.yaml}}
    - {{name: coast, dataset: coast, graph: {folder}/coast-graph.yaml}}
  splits: {{train: ["2021-06-01", "2021-06-08T18:00"], val: ["2021-06-09", "2021-06-10T18:00"],
           test: ["2021-06-11", "2021-06-12T18:00"]}}
  variables: [sst, rr]
  statics: [depth]
  batch_size: 4
  imputer:
    variables: {{sst: {{kind: constant, value: 271.35}}, rr: nearest_time}}
    missing_channel: [rr, depth]
model: {{processor: interaction, hidden_dim: 32, processor_layers: 2, mlp_ratio: 1.0}}
optimizer: {{lr: 3.0e-3, warmup_steps: 10}}
max_steps: {steps}
val_rollout: 2
val_every: {steps}
val_batches: 4
checkpoint_every: 1000
boundary_cells: 1
runs_dir: {folder}/runs
"""


def _workbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_CATALOG"}
    env["WORKBENCH_CACHE"] = str(cwd / "cache")
    exe = Path(sys.executable).with_name("workbench")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=500)


@pytest.mark.slow
def test_training_on_masked_fields_stays_finite_and_beats_persistence(masked_folder):
    """``workbench train --catalog`` on the SST-over-land and radar-range fields of both
    grids: every loss finite (no NaN reaches the model); ``workbench evaluate --catalog`` on
    each domain: finite scores on the valid points, and the model beats persistence there
    for sst and rr at both leads."""
    folder = masked_folder
    for name in ("shelf", "coast"):
        (folder / f"{name}-graph.yaml").write_text(
            f"name: {name}\ndata: {{datasets: [{name}]}}\n"
            "hidden: {kind: coarsened, factor: 2, k: 6}\n"
            "encoder: {kind: reversed_knn, k: 1}\ndecoder: {kind: knn, k: 3}\n")
    (folder / "train.yaml").write_text(TRAIN.format(folder=folder, steps=200))
    done = _workbench("train", "train.yaml", "--catalog", "cat", "--run-dir", "run",
                      "--no-progress", "--json", cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = pd.read_csv(folder / "run" / "metrics.csv")
    losses_seen = metrics["train/loss"].dropna()
    assert len(losses_seen) == 200 and np.isfinite(losses_seen).all()
    assert losses_seen.tail(50).mean() < losses_seen.head(10).mean()
    val = metrics.dropna(subset=["val/mse"]).iloc[-1]
    figures = {}
    for domain in ("shelf", "coast"):
        for step in (1, 2):
            model = val[f"val/mse_{domain}_step{step}"]
            reference = val[f"val/persistence_{domain}_step{step}"]
            assert np.isfinite(model) and model < reference, (domain, step, model, reference)
        scored = _workbench("evaluate", "run", "--domain", domain, "--catalog", "cat", "--json",
                            cwd=folder)
        assert scored.returncode == 0, scored.stderr[-3000:]
        table = pd.DataFrame(json.loads(scored.stdout)["scores"])
        table = table[table.region == "interior"]
        assert np.isfinite(table["value"]).all()
        card = table[(table.forecast == "model") & (table.metric == "skill_vs_persistence")]
        assert len(card) == 4  # sst and rr at 6 and 12 h
        for row in card.itertuples():
            figures[(domain, row.variable, row.lead_hours)] = round(row.value, 3)
            assert row.value > 0, (domain, row.variable, row.lead_hours, row.value)
    print("skill vs persistence on the valid points:", figures)
    # the forecast is finite everywhere; its skill map is missing over land, and only there
    forecast = forecast_files.read_forecast(folder / "run" / "forecasts" / "coast-test.zarr")
    assert np.isfinite(forecast["sst"].values).all()
    truth = catalog.open_dataset("coast", catalog=[folder / "cat"])
    maps = evaluation.skill_maps(forecast, truth, ("2021-06-01", "2021-06-08T18:00"))
    values = maps["sst"].sel(forecast="model", metric="skill_vs_persistence").values
    is_land = land(truth["latitude"].values, truth["longitude"].values)
    shown = ~is_land & ~forecast["forced"].values
    assert np.isnan(values[:, ~shown]).all() and np.isfinite(values[:, shown]).all()
