"""Masked-step scores of bert and interpolation runs against linear interpolation and
persistence (workbench.evaluation_masked, `workbench evaluate` of such a run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from workbench import evaluation, evaluation_masked, training
from workbench.errors import WorkbenchError
from workbench.evaluation_inputs import REGIONS
from workbench.restore import forecast_inputs

pytestmark = pytest.mark.timeout(900)

HOUR = np.timedelta64(1, "h")


# --------------------------------------------------------------------------- by hand


def _hand_made(masked: np.ndarray, n_windows: int = 3):
    """A truth of 4 points on 6-hourly times and a reconstruction (value 0) of 5-step windows
    starting 6 h apart, masked where ``masked`` [T] (the same in every window)."""
    rng = np.random.default_rng(0)
    times = pd.date_range("2020-01-01", periods=n_windows + 5, freq="6h")
    lat, lon = np.array([10.0, 20.0, 30.0, 40.0]), np.array([0.0, 5.0, 10.0, 15.0])
    truth = xr.Dataset({"t2m": (("time", "grid"), rng.normal(280, 5, (len(times), 4)))},
                       coords={"time": times, "latitude": ("grid", lat),
                               "longitude": ("grid", lon)})
    values = np.where(masked[None, :, None], 0.0, np.nan) * np.ones((n_windows, 5, 4))
    recon = xr.Dataset({"t2m": (("init_time", "lead_time", "grid"), values)},
                       coords={"init_time": times[:n_windows],
                               "lead_time": pd.to_timedelta(np.arange(5) * 6, unit="h"),
                               "latitude": ("grid", lat), "longitude": ("grid", lon)},
                       attrs={"domain": "hand", "task": "bert"})
    return recon, truth


def test_baselines_interpolate_between_and_persist_the_nearest_given_states():
    masked = np.array([True, False, True, True, False])  # offsets 0, 2, 3 masked
    recon, truth = _hand_made(masked)
    fc = evaluation_masked.baselines(recon, truth)
    y = truth["t2m"].values
    for i in range(3):  # window i: truth steps i..i+4
        w = y[i:i + 5]
        interp, persist = fc["interpolation"]["t2m"].values[i], fc["persistence"]["t2m"].values[i]
        assert np.isnan(interp[0]).all() and np.isnan(persist[0]).all()  # nothing before
        np.testing.assert_allclose(interp[2], w[1] + (w[4] - w[1]) / 3, rtol=1e-12)
        np.testing.assert_allclose(interp[3], w[1] + 2 * (w[4] - w[1]) / 3, rtol=1e-12)
        np.testing.assert_array_equal(persist[2], w[1])
        np.testing.assert_array_equal(persist[3], w[1])
        assert np.isnan(interp[[1, 4]]).all() and np.isnan(persist[[1, 4]]).all()  # given


def test_a_model_equal_to_interpolation_has_skill_zero_and_hand_rmse():
    masked = np.array([False, True, True, False, False])
    recon, truth = _hand_made(masked, n_windows=6)
    line = evaluation_masked.baselines(recon, truth)["interpolation"]
    model = recon.copy(data={"t2m": line["t2m"].values})
    weights = xr.DataArray(np.array([1.0, 2.0, 3.0, 4.0]), dims="grid")
    table = evaluation_masked.scores(model, truth, weights)
    assert list(table.columns) == evaluation.SCORE_COLUMNS
    assert set(table.forecast) == set(evaluation_masked.FORECASTS)
    assert sorted(table.lead_hours.unique()) == [6.0, 12.0]  # only the masked offsets
    skill = table[table.metric == "skill_vs_interpolation"]
    assert (skill.value == 0.0).all() and (skill.ci_low == 0.0).all()
    assert (skill.ci_high == 0.0).all() and not skill.significant.any()
    # RMSE of the interpolation at offset 12 h: area-weighted per window, mean over windows
    y = truth["t2m"].values
    w = weights.values / weights.values.sum()
    per_window = [np.sum(w * (y[i] + 2 * (y[i + 3] - y[i]) / 3 - y[i + 2]) ** 2)
                  for i in range(6)]
    rmse = table[(table.forecast == "interpolation") & (table.metric == "rmse")
                 & (table.lead_hours == 12.0)].value.item()
    assert rmse == pytest.approx(np.sqrt(np.mean(per_window)), rel=1e-12)
    persistence = table[(table.forecast == "persistence") & (table.metric == "mae")
                        & (table.lead_hours == 12.0)].value.item()
    assert persistence == pytest.approx(np.mean([np.sum(w * abs(y[i] - y[i + 2]))
                                                 for i in range(6)]), rel=1e-12)


def test_missing_truth_is_not_scored_and_nothing_to_score_is_one_line():
    masked = np.array([False, True, False, False, False])
    recon, truth = _hand_made(masked, n_windows=4)
    weights = xr.DataArray(np.ones(4), dims="grid")
    # time 2, point 0: window 0's state after its masked step (no interpolation), window 1's
    # masked step (no truth), window 2's state before it (neither baseline): not scored
    truth["t2m"][2, 0] = np.nan
    table = evaluation_masked.scores(recon, truth, weights)
    y = truth["t2m"].values
    expected = np.mean([np.mean([(0 - y[i + 1, g]) ** 2 for g in range(4)
                                 if not (g == 0 and i < 3)]) for i in range(4)])
    rmse = table[(table.forecast == "model") & (table.metric == "rmse")].value.item()
    assert rmse == pytest.approx(np.sqrt(expected), rel=1e-12)
    truth["t2m"][:] = np.nan
    with pytest.raises(WorkbenchError, match="t2m has no masked point"):
        evaluation_masked.scores(recon, truth, weights)


def test_bert_patches_are_each_nodes_nearest_hidden_node_on_any_thread_count():
    """BERT tokens use domain_graph's patch_id: each data node's shortest decoder edge,
    whatever the threads (an assignment through repeated indices had kept an arbitrary edge
    on 2 threads: masks then differed from process to process)."""
    from workbench.domain_graphs import EDGE_SETS, domain_graph, graph_for

    dec = graph_for("demo-conus", "conus", None)[EDGE_SETS["decoder"]]
    length = dec.edge_length_km.reshape(-1).numpy()
    source, target = dec.edge_index.numpy()
    frame = pd.DataFrame({"source": source, "target": target, "length": length})
    shortest = frame.loc[frame.groupby("target")["length"].idxmin()]
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            patch = domain_graph("demo-conus", "conus", "conus", 2).patch_id.numpy()
            np.testing.assert_array_equal(patch[shortest.target.to_numpy()],
                                          shortest.source.to_numpy())
            assert len(shortest) == len(patch)
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------- real runs


def _frozen(path: Path, task: str, rollout: int) -> Path:
    """A tiny run of ``task`` whose weights never move (lr 0): the untrained model returns
    its input, so every masked value (0, the normalised mean) comes back as the mean. A
    2-day test split keeps the scoring short."""
    raw = training.config_dict(training.load_training_config("demo"))
    raw["model"].update(hidden_dim=8, processor_layers=1)
    raw["sampling"]["rollout"] = rollout
    raw["sampling"]["splits"]["test"] = ["2020-03-16", "2020-03-17T18:00"]
    raw.update(task=task, max_steps=1, val_batches=1, optimizer={"lr": 0.0},
               runs_dir=str(path / "runs"))
    return training.fit(training.training_config_from_dict(raw), run_dir=path / task,
                        progress=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("masked")
    return {"bert": _frozen(tmp, "bert", 2), "interpolation": _frozen(tmp, "interpolation", 3)}


@pytest.fixture(scope="module")
def interpolated(runs):
    recon = evaluation_masked.reconstruct(runs["interpolation"], "conus", progress=False)
    return recon, evaluation.truth_for(recon).load()


@pytest.mark.slow
def test_interpolation_run_fills_the_middle_steps_with_what_the_model_outputs(runs,
                                                                              interpolated):
    recon, _ = interpolated
    assert recon.attrs["task"] == "interpolation"
    # window of input_steps 1 + rollout 3: offsets 0..18 h, the middle two masked
    assert (recon["lead_time"].values / HOUR).tolist() == [0, 6, 12, 18]
    masked = recon["t2m"].notnull().all(("init_time", "grid")).values.tolist()
    assert masked == [False, True, True, False]
    assert recon["forced"].values.sum() > 0  # conus: the LAM ring, left out of interior
    data = forecast_inputs(runs["interpolation"], "conus",
                           tasks=evaluation_masked.MASKED_TASKS).data
    mean = data.normalisers["variables"].denormalise(
        torch.zeros(1, 1, len(data.variables), data.n_grid))[0, 0].numpy()
    for v, name in enumerate(data.variables):  # the frozen model returns its masked input
        np.testing.assert_allclose(recon[name].values[:, 1:3],
                                   np.broadcast_to(mean[v], recon[name].values[:, 1:3].shape),
                                   rtol=1e-5)


@pytest.mark.slow
def test_interpolation_run_scores_skill_zero_against_itself_and_hand_rmse(interpolated):
    recon, truth = interpolated
    table = evaluation_masked.scores(recon, truth)
    assert set(table.region) == set(REGIONS)
    assert {"ci_low", "ci_high", "significant"} <= set(table.columns)
    skill = table[table.metric.str.startswith("skill_vs_")]
    assert skill[["ci_low", "ci_high"]].notna().all().all()
    assert (skill.ci_low <= skill.value).all() and (skill.value <= skill.ci_high).all()
    # a model whose output equals linear interpolation: skill 0 against it, exactly
    line = evaluation_masked.baselines(recon, truth)["interpolation"]
    same = recon.copy(data={v: line[v].values for v in recon.data_vars})
    zero = evaluation_masked.scores(same, truth)
    rows = zero[zero.metric == "skill_vs_interpolation"]
    assert len(rows) == 2 * 8 * 2 and (rows.value == 0).all() and (rows.ci_low == 0).all()
    # the interpolation baseline's RMSE of one window, by hand over the interior
    one = evaluation_masked.scores(recon.isel(init_time=[0]), truth)
    start = recon["init_time"].values[0]
    y = {h: truth["t2m"].sel(time=start + h * HOUR).values.astype(np.float64)
         for h in (0, 6, 18)}
    inside = ~recon["forced"].values
    w = evaluation.area_weights(truth).values[inside]
    error = (y[0] + (y[18] - y[0]) / 3 - y[6])[inside]
    hand = np.sqrt(np.sum(w * error ** 2) / np.sum(w))
    got = one[(one.region == "interior") & (one.forecast == "interpolation")
              & (one.metric == "rmse") & (one.variable == "t2m") & (one.lead_hours == 6.0)]
    assert got.value.item() == pytest.approx(hand, rel=1e-9)


@pytest.mark.slow
def test_bert_run_through_the_cli_json(runs):
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "evaluate", str(runs["bert"]),
                          "--domain", "conus", "--json"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["task"] == "bert" and report["domain"] == "conus"
    assert "bert run" in report["scoring"]["note"]
    rows = pd.DataFrame(report["scores"])
    assert set(rows.forecast) == set(evaluation_masked.FORECASTS)
    assert set(rows.region) == set(REGIONS)
    # window of 3 steps: only the middle one has given states on both sides
    assert sorted(rows.lead_hours.unique()) == [6.0]
    skill = rows[rows.metric.str.startswith("skill_vs_")]
    assert set(skill.metric) == {"skill_vs_interpolation", "skill_vs_persistence"}
    assert skill[["ci_low", "ci_high", "significant"]].notna().all().all()
    assert rows[rows.metric == "rmse"]["ci_low"].isna().all()  # intervals on skill rows only
    # the same numbers as the library, masks drawn the same way on every call
    recon = evaluation_masked.reconstruct(runs["bert"], "conus", progress=False)
    table = evaluation_masked.scores(recon, evaluation.truth_for(recon).load())
    np.testing.assert_allclose(rows.value.to_numpy(dtype=float), table.value.to_numpy(),
                               rtol=1e-12)
    masked = recon["t2m"].notnull().values
    assert 0 < masked.mean() < 1  # some tokens masked, not all


@pytest.mark.slow
def test_notebook_04_on_an_interpolation_run(runs, interpolated, tmp_path):
    """Notebook 04 through the CLI on a masked run: the masked-step table, plot and summary
    (the library's numbers), the forecast sections empty and the live panel saying it does
    not apply."""
    from test_runs import run_via_cli

    run_dir, summary = run_via_cli(tmp_path, "04_skill_maps", "run_dir",
                                   str(runs["interpolation"]), "domains", '["conus"]')
    assert json.loads((run_dir / "run.json").read_text())["status"] == "ok"
    recon, truth = interpolated
    table = evaluation_masked.scores(recon, truth)
    rows = pd.DataFrame(summary["masked_scores"])
    assert set(rows.domain) == {"conus"} and len(rows) == len(table)
    np.testing.assert_allclose(rows.value.to_numpy(dtype=float), table.value.to_numpy(),
                               rtol=1e-12)
    interior = table[(table.region == "interior") & (table.metric == "skill_vs_persistence")]
    assert summary["key_figures"]["masked_skill_vs_persistence_conus"] == pytest.approx(
        interior.value.mean(), rel=1e-12)
    assert summary["scores"] == []  # nothing forecast
    (notebook,) = run_dir.glob("*.ipynb")
    text = notebook.read_text()
    assert "it does not apply to this interpolation run" in text
    assert "skill_vs_interpolation" in text and "image/png" in text
