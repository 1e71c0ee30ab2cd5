"""Tendency normalisation of the output and statistics shared across domains (issue 17, 5).

``normalisation.output: tendency``: the model's output is the next state's change from the last
input state divided by ``diff_std``; ``normalisation.statistics: shared``: every domain is
normalised with the training domains' pooled statistics. Checked by hand on tiny tensors, on
the demo's Trainer, and through a real run, its checkpoint and ``evaluate``/``forecast``.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from test_training import metrics, tiny, train_losses

from workbench import evaluation, forecasting, training
from workbench.errors import WorkbenchError
from workbench.evaluation_inputs import pool_statistics, training_statistics
from workbench.statistics import FixedScaling, Normaliser, VariableStats
from workbench.times import iso

pytestmark = pytest.mark.timeout(600)

TENDENCY = {"output": "tendency"}


# --------------------------------------------------------------------------- by hand


def test_normaliser_tendency_by_hand():
    """a: mean 10, std 4, diff_std 2; b: diff_std None; tp: log1p fixed scaling. A tendency
    of 1 is one diff_std in physical units; b and tp keep their normalised units."""
    stats = {"a": VariableStats(10.0, 4.0, 0.0, 20.0, 2.0),
             "b": VariableStats(0.0, 2.0, -5.0, 5.0, None),
             "tp": VariableStats(0.001, 0.002, 0.0, 0.01, 0.001)}
    norm = Normaliser(["a", "b", "tp"], stats, {"tp": FixedScaling("log1p", unit=0.001)})
    assert norm.tendency_scale.tolist() == [0.5, 1.0, 1.0]  # 2 / 4, no diff_std, fixed
    physical = torch.tensor([[[12.0, 6.0], [1.0, -1.0], [0.002, 0.0]]])  # [T=1, V, G]
    last = norm.normalise(physical)
    out = torch.tensor([[[0.5, -1.5], [0.25, 0.0], [0.1, 0.0]]])
    nxt = norm.next_state(last, out)
    # a: 12 + 0.5 * 2 = 13, 6 - 1.5 * 2 = 3 (physical); b: normalised + 0.25 (std 2: + 0.5)
    np.testing.assert_allclose(norm.denormalise(nxt)[0, 0].numpy(), [13.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(norm.denormalise(nxt)[0, 1].numpy(), [1.5, -1.0], rtol=1e-6)
    # tp: log1p(x / 1 mm) + 0.1, back in metres
    expect = np.expm1(np.log1p(np.array([2.0, 0.0])) + [0.1, 0.0]) * 0.001
    np.testing.assert_allclose(norm.denormalise(nxt)[0, 2].numpy(), expect, rtol=1e-5)
    # a zero output is the last state bit for bit; tendency() undoes next_state()
    assert torch.equal(norm.next_state(last, torch.zeros_like(out)), last)
    np.testing.assert_allclose(norm.tendency(last, nxt).numpy(), out.numpy(), atol=1e-6)
    # the physical change over diff_std
    np.testing.assert_allclose(norm.tendency(last, norm.normalise(
        torch.tensor([[[16.0, 6.0], [1.0, -1.0], [0.002, 0.0]]])))[0, 0].numpy(), [2.0, 0.0])


def _batch(datamodule, domain: int, split: str = "val") -> dict:
    data = datamodule.domains[domain]
    start = int(data.samples(split)[0])
    return datamodule.dataset.collate([datamodule.dataset[(domain, start)]])


def test_zero_output_is_persistence_and_a_bias_is_diff_std_by_hand(tmp_path):
    """The demo's Trainer in tendency mode: the untrained (zero) output forecasts exactly the
    last input state away from the forced LAM ring; an output bias c gives, in physical
    units, last state + c * diff_std at the first step."""
    config = tiny(tmp_path, normalisation=TENDENCY)
    _, datamodule, module = training.prepare_run(config)
    d = 1  # conus: a LAM with a forced boundary ring
    batch = _batch(datamodule, d)
    interior = ~module.graphs[d].boundary
    with torch.no_grad():
        pred = module.rollout_forecast(batch, 2)
        last = batch["x"][:, -1]
        for step in range(2):
            assert torch.equal(pred[:, step][..., interior], last[..., interior])
        bias = torch.linspace(-1.0, 1.0, len(module.variables))
        module.model.output.bias.copy_(bias)
        pred = module.rollout_forecast(batch, 1)
    data = datamodule.domains[d]
    norm = data.normalisers["variables"]
    got = norm.denormalise(pred[0, 0]).numpy()
    before = norm.denormalise(last[0]).numpy()
    for v, name in enumerate(data.variables):
        if name in datamodule.config.fixed_scaling:
            continue  # tp: its change is in its log1p units (the test above)
        expect = before[v] + float(bias[v]) * data.stats[name].diff_std
        np.testing.assert_allclose(got[v][interior.numpy()], expect[interior.numpy()],
                                   rtol=1e-5, atol=1e-5 * data.stats[name].std, err_msg=name)


def test_loss_is_on_tendencies_by_hand(tmp_path):
    """The untrained tendency model (persistence) on a global batch: the mse loss is the mean
    over variables and points of ((y - x_last) / tendency_scale)^2 (no weights: the demo
    trains without latitude weighting); the replay buffer's loss on that batch is the same."""
    config = tiny(tmp_path, normalisation=TENDENCY, finetune={"replay_size": 2})
    _, datamodule, module = training.prepare_run(config)
    batch = _batch(datamodule, 0, "train")
    scale = datamodule.domains[0].normalisers["variables"].tendency_scale.view(-1, 1)
    tendency = ((batch["y"][:, :1].double() - batch["x"][:, -1:].double()) / scale)
    expect = float((tendency ** 2).mean())
    with torch.no_grad():
        replay, _ = module._task_loss(batch)  # replay_size > 0: the replay path
        module.replay = None
        forecast, _ = module._task_loss(batch)
    assert forecast.item() == pytest.approx(expect, rel=1e-5)
    assert replay.item() == pytest.approx(expect, rel=1e-5)
    state = ((batch["y"][:, :1] - batch["x"][:, -1:]) ** 2).mean().item()
    assert forecast.item() != pytest.approx(state, rel=1e-2)  # not the state loss


def test_state_output_is_the_default_bitwise(tmp_path):
    """Three steps with `normalisation` absent and with `output: state, statistics: domain`
    give the same losses bit for bit; tendency output gives others (the option acts)."""
    absent = train_losses(training.fit(tiny(tmp_path / "a", max_steps=3), progress=False))
    explicit = train_losses(training.fit(tiny(tmp_path / "b", max_steps=3, normalisation={
        "output": "state", "statistics": "domain"}), progress=False))
    assert absent.tolist() == explicit.tolist()
    tendency = train_losses(training.fit(tiny(tmp_path / "c", max_steps=1,
                                              normalisation=TENDENCY), progress=False))
    assert tendency.iloc[0] != absent.iloc[0]


# --------------------------------------------------------------------------- shared statistics


def test_shared_statistics_are_the_pooled_ones_for_every_domain(tmp_path):
    """`statistics: shared` normalises global and conus with pool_statistics of their own
    statistics, weighted by grid points x train time steps, and those numbers are the mean
    and std of both domains' train-split values laid side by side (numpy, here)."""
    config = tiny(tmp_path, normalisation={"statistics": "shared"})
    _, datamodule, _ = training.prepare_run(config)
    own = training.prepare_run(tiny(tmp_path))[1]
    parts = [(d.stats, d.n_grid * (d.splits["train"][1] - d.splits["train"][0] + 1))
             for d in own.domains]
    pooled = pool_statistics(parts)
    assert pooled == training_statistics(datamodule.config)
    for data in datamodule.domains:
        assert data.stats == pooled
        norm = data.normalisers["variables"]
        for v, name in enumerate(data.variables):
            if name in pooled:
                assert norm.offset[v].item() == pooled[name].mean
                assert norm.scale[v].item() == pooled[name].std
    assert own.domains[0].stats["t2m"] != own.domains[1].stats["t2m"]  # sharing changes them
    values = []
    for data in own.domains:
        lo, hi = data.splits["train"]
        window = data.ds["t2m"].sel(time=slice(iso(data.times[lo]), iso(data.times[hi])))
        values.append(window.values.astype(np.float64).ravel())
    values = np.concatenate(values)
    np.testing.assert_allclose(pooled["t2m"].mean, values.mean(), rtol=1e-6)
    np.testing.assert_allclose(pooled["t2m"].std, values.std(), rtol=1e-5)


# --------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def tendency_run(tmp_path_factory) -> Path:
    """20 demo steps with tendency output and shared statistics, no warm-up."""
    tmp = tmp_path_factory.mktemp("tendency")
    config = tiny(tmp, max_steps=20, val_every=20, normalisation={
        "output": "tendency", "statistics": "shared"}, optimizer={"warmup_steps": 0})
    return training.fit(config, progress=False)


@pytest.mark.slow
def test_tendency_run_trains(tendency_run):
    """The untrained model is persistence, so validation below persistence on both domains is
    a loss that fell; the training loss (in tendency units) falls too."""
    val = metrics(tendency_run).dropna(subset=["val/mse"]).iloc[-1]
    for domain in ("global", "conus"):
        assert val[f"val/mse_{domain}_step1"] < val[f"val/persistence_{domain}_step1"]
    losses = train_losses(tendency_run)
    assert len(losses) == 20 and losses.iloc[-6:].mean() < losses.iloc[:6].mean()


@pytest.mark.slow
def test_tendency_checkpoint_forecasts_as_the_module(tendency_run, tmp_path, monkeypatch):
    """The checkpoint records the mode: `evaluate`'s forecast and `workbench forecast`'s file
    from the checkpoint alone equal the run's module's forecast (notebook 03's load_run),
    whose first step is the last state plus the model's output times diff_std (by hand),
    and differ from reading the same weights as state output."""
    config, module, datamodule = training.load_run(tendency_run)
    assert config.normalisation.output == "tendency"
    d, steps = 1, 2
    sample = training.forecast_sample(module, datamodule, "conus", "test", 0, steps=steps)
    # by hand: the model's raw output, times diff_std, added in physical units
    data = datamodule.domains[d]
    batch = _batch(datamodule, d, "test")
    with torch.no_grad():
        n_in = batch["x"].shape[1]
        change = module.model.change(batch["x"], batch["forcings"][:, :n_in + 1],
                                     batch["statics"], module.graph(d))[0, 0]
        norm = data.normalisers["variables"]
        last = norm.denormalise(batch["x"][0, -1]).numpy()
    interior = ~module.graphs[d].boundary.numpy()
    for v, name in enumerate(data.variables):
        if name in datamodule.config.fixed_scaling:
            continue
        expect = last[v] + change[v].numpy() * data.stats[name].diff_std
        np.testing.assert_allclose(sample["forecast"][0, v][interior], expect[interior],
                                   rtol=1e-4, atol=1e-4 * data.stats[name].std, err_msg=name)
    # the checkpoint alone, through restore: evaluate and forecast
    folder = tmp_path / "alone"
    folder.mkdir()
    ckpt = Path(shutil.copy(tendency_run / "checkpoints" / "last.ckpt", folder / "m.ckpt"))
    monkeypatch.chdir(folder)
    start = iso(sample["init_time"])
    ds = evaluation.forecast(ckpt, "conus", steps=steps, start=start, progress=False)
    out = forecasting.forecast_file(ckpt, "conus", start, steps, folder / "f.nc")
    with xr.open_dataset(out) as written:
        file_t2m = written["t2m"].values.reshape(steps, -1)
    for v, name in enumerate(data.variables):
        np.testing.assert_allclose(ds[name].values[0], sample["forecast"][:, v], rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    t2m = data.variables.index("t2m")
    np.testing.assert_allclose(file_t2m, sample["forecast"][:, t2m], rtol=1e-5)
    # the same weights read as state output forecast something else
    state = training.Trainer(
        training.training_config_from_dict({**training.config_dict(config),
                                             "normalisation": {"output": "state"}}),
        module.graphs, module.variables, [n.normalisers["variables"] for n in datamodule.domains])
    state.model.load_state_dict(module.model.state_dict())
    with torch.no_grad():
        other = norm.denormalise(state.eval().rollout_forecast(batch, 1)[0, 0]).numpy()
    assert not np.allclose(other[t2m][interior], sample["forecast"][0, t2m][interior],
                           rtol=1e-3)


@pytest.mark.slow
def test_tendency_checkpoint_records_mode_and_shared_statistics(tendency_run):
    """The checkpoint's config holds the mode; its artifact's statistics for every domain are
    the pooled ones, so an unseen domain's pooling of them gives them back."""
    state = torch.load(tendency_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["workbench"]["config"]["normalisation"] == {"output": "tendency",
                                                             "statistics": "shared"}
    domains = state["workbench"]["artifact"]["domains"]
    config = training.read_run_config(tendency_run)
    pooled = training_statistics(training.sampling_config(config))
    for name in ("global", "conus"):
        assert domains[name]["statistics"] == {k: asdict(v) for k, v in pooled.items()}


# --------------------------------------------------------------------------- bad values


@pytest.mark.parametrize("normalisation, task, message", [
    ({"output": "delta"}, "forecast", "unknown normalisation.output 'delta'; use one of state, "
                                      "tendency"),
    ({"statistics": "pooled"}, "forecast", "unknown normalisation.statistics 'pooled'"),
    ({"output": "tendency"}, "bert", "output tendency applies to forecast training, not bert"),
    ({"outputs": "state"}, "forecast", "unknown key 'outputs'"),
])
def test_bad_normalisation_is_one_line(tmp_path, normalisation, task, message):
    with pytest.raises(WorkbenchError) as err:
        tiny(tmp_path, normalisation=normalisation, task=task)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


@pytest.mark.slow
def test_init_from_a_checkpoint_of_the_other_output_mode_is_one_line(tendency_run, tmp_path):
    """A tendency run's weights started as a state model would forecast nonsense: refused,
    naming the mode to set; the same mode starts from it."""
    ckpt = str(tendency_run / "checkpoints" / "last.ckpt")
    state_cfg = tiny(tmp_path / "s", max_steps=1, init_from=ckpt,
                     normalisation={"statistics": "shared"})
    with pytest.raises(WorkbenchError, match="trained with normalisation.output 'tendency', "
                                             "this config has 'state'"):
        training.fit(state_cfg, progress=False)
    same = tiny(tmp_path / "t", max_steps=1, init_from=ckpt,
                normalisation={"output": "tendency", "statistics": "shared"})
    assert (training.fit(same, progress=False) / "checkpoints" / "last.ckpt").is_file()
