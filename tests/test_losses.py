"""Training losses checked against hand values, numpy loops and scoringrules."""

from __future__ import annotations

import numpy as np
import pytest
import scoringrules as sr
import torch

from workbench.errors import WorkbenchError
from workbench.losses import (
    LOSSES,
    LossConfig,
    area_mse,
    compute_loss,
    crps,
    loss_config_from_dict,
    mae,
    mse,
    mse_ensemble,
    node_weight_vector,
    stats,
    variable_weight_vector,
)


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def ref_reduce(err: np.ndarray, node_w=None, var_w=None) -> float:
    """Plain-loop reference of the reduction: weighted mean over G, mean over B, T, V."""
    b_n, t_n, v_n, g_n = err.shape
    node_w = np.ones(g_n) if node_w is None else np.asarray(node_w, dtype=float)
    var_w = np.ones(v_n) if var_w is None else np.asarray(var_w, dtype=float)
    var_w = var_w / var_w.mean()
    total = 0.0
    for b in range(b_n):
        for s in range(t_n):
            for v in range(v_n):
                num = sum(node_w[g] * err[b, s, v, g] for g in range(g_n))
                total += var_w[v] * num / node_w.sum()
    return total / (b_n * t_n * v_n)


@pytest.fixture
def ens_data():
    rng = np.random.default_rng(42)
    members = rng.normal(size=(2, 5, 2, 3, 7)).astype(np.float32)
    target = rng.normal(size=(2, 2, 3, 7)).astype(np.float32)
    node_w = rng.uniform(0.1, 2.0, size=7)
    var_w = np.array([1.0, 2.0, 0.5])
    return members, target, node_w, var_w


# --------------------------------------------------------------------------- deterministic


def test_mse_mae_by_hand():
    pred, target = t([[[[1.0, 2.0, 3.0]]]]), t([[[[0.0, 0.0, 0.0]]]])
    assert mse(pred, target).item() == pytest.approx(14 / 3)
    assert mae(pred, target).item() == pytest.approx(2.0)
    w = t([1.0, 2.0, 3.0])
    assert mse(pred, target, node_weights=w).item() == pytest.approx((1 + 8 + 27) / 6)
    assert mae(pred, target, node_weights=w).item() == pytest.approx((1 + 4 + 9) / 6)
    assert area_mse(pred, target, node_weights=w).item() == pytest.approx(6.0)


def test_area_mse_requires_weights():
    with pytest.raises(WorkbenchError, match="area_mse"):
        area_mse(t([[[[1.0]]]]), t([[[[0.0]]]]))


def test_ensemble_mean_and_mse_ensemble_by_hand():
    # members [1, 2] and [3, 4] over G=2 nodes, target 0
    pred = t([[[[[1.0, 2.0]]], [[[3.0, 4.0]]]]])  # [1, 2, 1, 1, 2]
    target = t([[[[0.0, 0.0]]]])
    assert mse(pred, target).item() == pytest.approx((4 + 9) / 2)  # ensemble mean [2, 3]
    assert mae(pred, target).item() == pytest.approx(2.5)
    assert mse_ensemble(pred, target).item() == pytest.approx((2.5 + 12.5) / 2)
    assert mse_ensemble(pred[:, 0], target).item() == pytest.approx(mse(pred[:, 0], target).item())


def test_random_against_numpy_loop(ens_data):
    members, target, node_w, var_w = ens_data
    det = members[:, 0]
    nw, vw = t(node_w), t(var_w)
    ref = {
        "mse": ref_reduce((det - target) ** 2, node_w, var_w),
        "mae": ref_reduce(np.abs(det - target), node_w, var_w),
    }
    assert mse(t(det), t(target), nw, vw).item() == pytest.approx(ref["mse"], rel=1e-5)
    assert mae(t(det), t(target), nw, vw).item() == pytest.approx(ref["mae"], rel=1e-5)
    per_member = ((members - target[:, None]) ** 2).mean(axis=1)
    assert mse_ensemble(t(members), t(target), nw, vw).item() == pytest.approx(
        ref_reduce(per_member, node_w, var_w), rel=1e-5)


def test_zero_error():
    target = torch.randn(2, 3, 4, 5)
    for fn in (mse, mae, mse_ensemble):
        assert fn(target.clone(), target).item() == 0.0
    identical = target.unsqueeze(1).repeat(1, 4, 1, 1, 1)
    assert crps(identical, target).item() == pytest.approx(0.0, abs=1e-6)
    assert crps(identical, target, alpha=0.9).item() == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------- weights


def test_node_weight_vector():
    area = t([1.0, 3.0])
    assert torch.allclose(node_weight_vector(area, LossConfig()), t([0.5, 1.5]))
    off = LossConfig(latitude_weighting=False)
    assert node_weight_vector(area, off) is None
    assert torch.allclose(node_weight_vector(area, off, force=True), t([0.5, 1.5]))
    assert node_weight_vector(None, LossConfig()) is None


def test_latitude_weighting_off_ignores_area_except_area_mse():
    pred, target = t([[[[1.0, 2.0, 3.0]]]]), torch.zeros(1, 1, 1, 3)
    area = t([1.0, 2.0, 3.0])
    cfg = LossConfig(losses=("mse", "area_mse"), latitude_weighting=False)
    total, terms = compute_loss(pred, target, cfg, area_weight=area)
    assert terms["mse"].item() == pytest.approx(14 / 3)
    assert terms["area_mse"].item() == pytest.approx(6.0)
    assert total.item() == pytest.approx(14 / 3 + 6.0)
    _, on = compute_loss(pred, target, LossConfig(), area_weight=area)
    assert on["mse"].item() == pytest.approx(6.0)


def test_area_mse_without_area_weight_fails():
    with pytest.raises(WorkbenchError, match="area_weight"):
        zeros = torch.zeros(1, 1, 1, 2)
        compute_loss(zeros, zeros, LossConfig(losses=("area_mse",)))


def test_level_weights_linear_and_relu():
    names = ["z_50", "t_850", "t2m", "u10"]
    linear = variable_weight_vector(names, LossConfig(level_weighting="linear"))
    raw = np.array([0.05, 0.85, 1.0, 1.0])
    assert np.allclose(linear.numpy(), raw / raw.mean())
    relu = variable_weight_vector(names, LossConfig(level_weighting="relu"))
    raw = np.array([0.2, 0.85, 1.0, 1.0])  # max(0.2, 0.001 * level)
    assert np.allclose(relu.numpy(), raw / raw.mean())
    custom = LossConfig(level_weighting="relu", level_min=0.1, level_slope=0.002,
                        variable_weights={"t2m": 3.0})
    raw = np.array([0.1, 1.7, 3.0, 1.0])
    assert np.allclose(variable_weight_vector(names, custom).numpy(), raw / raw.mean())
    none = variable_weight_vector(names, LossConfig(variable_weights={"u10": 2.0}))
    assert np.allclose(none.numpy(), np.array([1, 1, 1, 2]) / 1.25)


def test_variable_weights_in_compute_loss():
    # V=2, G=1: squared errors 1 and 4; weights 1 and 3 -> mean-1 weights 0.5 and 1.5
    pred, target = t([[[[1.0], [2.0]]]]), torch.zeros(1, 1, 2, 1)
    cfg = LossConfig(variable_weights={"b": 3.0})
    total, _ = compute_loss(pred, target, cfg, variable_names=["a", "b"])
    assert total.item() == pytest.approx((0.5 * 1 + 1.5 * 4) / 2)
    with pytest.raises(WorkbenchError, match="variable_names"):
        compute_loss(pred, target, cfg)
    with pytest.raises(WorkbenchError, match="unknown variable"):
        bad = LossConfig(variable_weights={"c": 1.0})
        compute_loss(pred, target, bad, variable_names=["a", "b"])


def test_loss_weights_scale_each_summed_term():
    # errors 1 and 2 at two points: mse 2.5, mae 1.5; mse + 0.2 mae = 2.8, terms unweighted
    pred, target = t([[[[1.0, 2.0]]]]), torch.zeros(1, 1, 1, 2)
    cfg = loss_config_from_dict({"losses": ["mse", "mae"], "loss_weights": {"mae": 0.2},
                                 "latitude_weighting": False})
    total, terms = compute_loss(pred, target, cfg)
    assert total.item() == pytest.approx(2.5 + 0.2 * 1.5)
    assert terms["mse"].item() == pytest.approx(2.5) and terms["mae"].item() == pytest.approx(1.5)
    off = loss_config_from_dict({"losses": ["mse", "mae"], "loss_weights": {"mse": 0},
                                 "latitude_weighting": False})
    assert compute_loss(pred, target, off)[0].item() == pytest.approx(1.5)


# --------------------------------------------------------------------------- crps and stats


def test_crps_m2_by_hand():
    target = torch.zeros(1, 1, 1, 2)
    # node 0: members {1, -1}: fair 0, standard 0.5; node 1: members {1, 3}: fair 1, standard 1.5
    pred = t([[[[[1.0, 1.0]]], [[[-1.0, 3.0]]]]])
    assert crps(pred, target).item() == pytest.approx((0.0 + 1.0) / 2)
    expected = 0.5 * (0.95 * 0.0 + 0.05 * 0.5) + 0.5 * (0.95 * 1.0 + 0.05 * 1.5)
    assert crps(pred, target, alpha=0.95).item() == pytest.approx(expected)


@pytest.mark.parametrize("alpha", [1.0, 0.95, 0.5, 0.1])
def test_crps_against_scoringrules(ens_data, alpha):
    members, target, node_w, var_w = ens_data
    fair = sr.crps_ensemble(target, members, m_axis=1, estimator="fair")
    assert np.allclose(fair, sr.crps_ensemble(target, members, m_axis=1, estimator="pwm"))
    standard = sr.crps_ensemble(target, members, m_axis=1, estimator="nrg")
    point = alpha * fair + (1 - alpha) * standard
    got = crps(t(members), t(target), t(node_w), t(var_w), alpha=alpha).item()
    assert got == pytest.approx(ref_reduce(point, node_w, var_w), rel=1e-5)
    assert crps(t(members), t(target), alpha=alpha).item() == pytest.approx(point.mean(), rel=1e-5)


def test_crps_alpha_out_of_range(ens_data):
    members, target, _, _ = ens_data
    with pytest.raises(WorkbenchError, match="alpha"):
        crps(t(members), t(target), alpha=0.0)


def test_compute_loss_passes_crps_alpha(ens_data):
    members, target, _, _ = ens_data
    _, terms = compute_loss(t(members), t(target), LossConfig(losses=("crps",), crps_alpha=0.5))
    assert terms["crps"].item() == pytest.approx(crps(t(members), t(target), alpha=0.5).item())


def test_stats_against_numpy(ens_data):
    members, target, node_w, var_w = ens_data
    mu, sigma = members.mean(axis=1), members.std(axis=1, ddof=1)
    gauss = np.exp(-0.5 * (target - mu) ** 2 / sigma**2)
    point = (gauss - 1.0) ** 2 + np.sqrt(np.abs(sigma))
    got = stats(t(members), t(target), t(node_w), t(var_w)).item()
    assert got == pytest.approx(ref_reduce(point, node_w, var_w), rel=1e-5)
    assert stats(t(members), t(target)).item() == pytest.approx(point.mean(), rel=1e-5)


def test_stats_by_hand():
    # members {0, 2}, target 1 + sqrt(2): mu 1, sigma sqrt(2) -> exp(-1/2); sqrt(sigma) = 2^(1/4)
    pred, target = t([[[[[0.0]]], [[[2.0]]]]]), t([[[[1.0 + 2**0.5]]]])
    expected = (np.exp(-0.5) - 1) ** 2 + 2**0.25
    assert stats(pred, target).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("fn", [crps, stats])
def test_ensemble_losses_need_members(fn):
    target = torch.zeros(1, 1, 1, 3)
    with pytest.raises(WorkbenchError, match="M >= 2") as err:
        fn(torch.zeros(1, 1, 1, 3), target)
    assert "\n" not in str(err.value)
    with pytest.raises(WorkbenchError, match="M >= 2"):
        fn(torch.zeros(1, 1, 1, 1, 3), target)


def test_shape_mismatch_is_an_error():
    with pytest.raises(WorkbenchError, match="does not match"):
        mse(torch.zeros(1, 1, 2, 3), torch.zeros(1, 1, 1, 3))


# --------------------------------------------------------------------------- combined


def test_all_losses_backward(ens_data):
    members, target, node_w, _ = ens_data
    pred = t(members).requires_grad_(True)
    names = ["z_500", "t_850", "t2m"]
    cfg = LossConfig(losses=tuple(LOSSES), level_weighting="relu", crps_alpha=0.95)
    total, terms = compute_loss(pred, t(target), cfg, area_weight=t(node_w), variable_names=names)
    assert set(terms) == set(LOSSES)
    assert all(not v.requires_grad for v in terms.values())
    assert total.item() == pytest.approx(sum(v.item() for v in terms.values()), rel=1e-6)
    total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


# --------------------------------------------------------------------------- config


def test_config_from_dict():
    cfg = loss_config_from_dict({"losses": ["mse", "crps"], "crps_alpha": 0.95,
                                 "level_weighting": "linear", "variable_weights": {"t2m": 2}})
    assert cfg.losses == ("mse", "crps") and cfg.crps_alpha == 0.95
    assert cfg.variable_weights == {"t2m": 2}
    assert loss_config_from_dict(None) == LossConfig()
    assert loss_config_from_dict({"losses": "mae"}).losses == ("mae",)


@pytest.mark.parametrize("raw, needle", [
    ({"loss": ["mse"]}, "unknown key 'loss'"),
    ({"losses": ["mse", "msee"]}, "unknown loss 'msee'"),
    ({"losses": []}, "losses"),
    ({"losses": ["mse", "mse"]}, "twice"),
    ({"level_weighting": "log"}, "level_weighting 'log'"),
    ({"crps_alpha": 0.0}, "crps_alpha"),
    ({"crps_alpha": 1.5}, "crps_alpha"),
    ({"variable_weights": {"t2m": -1}}, "variable_weights.t2m: should be greater than or equal to 0"),
    ({"variable_weights": [1, 2]}, "variable_weights"),
    ({"level_slope": "x"}, "level_slope"),
    ({"latitude_weighting": "yes"}, "latitude_weighting: should be a valid boolean"),
    ({"latitude_weighting": 1}, "latitude_weighting: should be a valid boolean"),
    (["mse"], "expected a mapping"),
    ({"losses": ["mse"], "loss_weights": {"stats": 1.0}},
     "loss_weights names 'stats', not in `losses` (mse)"),
    ({"loss_weights": {"mse": -1}}, "loss_weights.mse: should be greater than or equal to 0"),
])
def test_bad_config(raw, needle):
    with pytest.raises(WorkbenchError) as err:
        loss_config_from_dict(raw)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)
