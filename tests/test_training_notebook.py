"""Notebook 03 (training): metrics.csv as tidy tables, the validation table, the summary,
the plots; and the notebook itself through the CLI, its report rendered offline."""

from __future__ import annotations

import csv
import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from test_runs import assert_renders_offline

from workbench import plotting_training, training_config, training_report
from workbench.config import dump_yaml
from workbench.errors import WorkbenchError

NAN = math.nan
# The layout Lightning's CSVLogger writes for a two-domain run (columns sorted, one row per
# logged step; the other domain's loss is NaN; validation rows hold only val/ columns). Two
# lead steps, validations at steps 3 and 5. Values are binary fractions: sums are exact.
HEADER = ["epoch", "step", "train/domain_index", "train/loss", "train/loss_conus",
          "train/loss_global", "train/samples_per_s", "val/mse",
          "val/mse_conus_step1", "val/mse_conus_step2", "val/mse_global_step1",
          "val/mse_global_step2", "val/persistence_conus_step1", "val/persistence_conus_step2",
          "val/persistence_global_step1", "val/persistence_global_step2"]
TRAIN_ROWS = [  # step, domain index (0 global, 1 conus), loss
    (0, 0, 1.0), (1, 1, 0.5), (2, 0, 0.75), (3, 1, 0.25), (4, 0, 0.5), (5, 1, 0.125)]
VAL_ROWS = {  # step: (conus model s1, s2, global model s1, s2)
    3: (0.5, 1.5, 0.25, 0.75),
    5: (0.25, 0.75, 0.125, 1.25),
}
PERSISTENCE = (1.0, 2.0, 0.5, 1.0)  # conus s1, s2, global s1, s2


def write_run(run_dir, rows_train=TRAIN_ROWS, rows_val=VAL_ROWS, time_step=None):
    """A hand-made training run dir: metrics.csv, graphs.json (global first), run.json, the
    demo's config.yaml (its sampling ``time_step`` set when given) and a
    checkpoint with three model tensors."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for step, d, loss in rows_train:
            row = dict.fromkeys(HEADER, "")
            row.update({"epoch": 0, "step": step, "train/domain_index": float(d),
                        "train/loss": loss, "train/samples_per_s": 4.0,
                        "train/loss_global": loss if d == 0 else NAN,
                        "train/loss_conus": loss if d == 1 else NAN})
            out.writerow(row.values())
            if step in rows_val:
                values = rows_val[step]
                row = dict.fromkeys(HEADER, "")
                row.update({"epoch": 0, "step": step, "val/mse": sum(values) / 4,
                            "val/mse_conus_step1": values[0], "val/mse_conus_step2": values[1],
                            "val/mse_global_step1": values[2], "val/mse_global_step2": values[3],
                            "val/persistence_conus_step1": PERSISTENCE[0],
                            "val/persistence_conus_step2": PERSISTENCE[1],
                            "val/persistence_global_step1": PERSISTENCE[2],
                            "val/persistence_global_step2": PERSISTENCE[3]})
                out.writerow(row.values())
    (run_dir / "graphs.json").write_text(json.dumps(
        {"global": {"graph_id": "aaa111"}, "conus": {"graph_id": "bbb222"}}))
    (run_dir / "run.json").write_text(json.dumps(
        {"kind": "training", "name": "hand", "status": "finished", "steps": 6,
         "parameters": 23, "trainable_parameters": 23, "samples_per_s": 4.0,
         "graphs": {"global": "aaa111", "conus": "bbb222"}}))
    config = training_config.config_dict(training_config.load_training_config("demo"))
    if time_step is not None:
        config["sampling"]["time_step"] = time_step
    (run_dir / "config.yaml").write_text(dump_yaml(config))
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    torch.save({"state_dict": {"model.encoder.weight": torch.zeros(3, 4),
                               "model.encoder.bias": torch.zeros(3),
                               "model.processor.weight": torch.zeros(2, 4)}},
               run_dir / "checkpoints" / "last.ckpt")
    return run_dir


def test_read_metrics_tidy_tables(tmp_path):
    run = write_run(tmp_path / "train")
    train, val = training_report.read_metrics(run)
    # NaN rows of the other domain dropped; domains in the run's order (graphs.json)
    assert list(train.columns) == ["step", "domain", "loss"]
    assert train.to_records(index=False).tolist() == [
        (0, "global", 1.0), (2, "global", 0.75), (4, "global", 0.5),
        (1, "conus", 0.5), (3, "conus", 0.25), (5, "conus", 0.125)]
    assert list(val.columns) == ["step", "domain", "lead_step", "lead_hours", "model_mse",
                                 "persistence_mse"]
    assert val.to_records(index=False).tolist() == [
        (3, "global", 1, 6.0, 0.25, 0.5), (3, "global", 2, 12.0, 0.75, 1.0),
        (5, "global", 1, 6.0, 0.125, 0.5), (5, "global", 2, 12.0, 1.25, 1.0),
        (3, "conus", 1, 6.0, 0.5, 1.0), (3, "conus", 2, 12.0, 1.5, 2.0),
        (5, "conus", 1, 6.0, 0.25, 1.0), (5, "conus", 2, 12.0, 0.75, 2.0)]
    # the metrics.csv path reads the same; lead hours follow step_hours
    _, val3 = training_report.read_metrics(run / "metrics.csv", step_hours=3)
    assert val3["lead_hours"].tolist() == [3.0, 6.0] * 4
    with pytest.raises(WorkbenchError, match="train first"):
        training_report.read_metrics(tmp_path / "nothing")


def test_read_metrics_keeps_loss_terms(tmp_path):
    """With several losses Lightning logs each term per domain: they become columns."""
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train/loss,train/loss_a,train/loss_b,train/mae_a,train/mae_b,"
                    "train/mse_a,train/mse_b,train/samples_per_s\n"
                    "0,0,1.5,1.5,nan,0.5,nan,1.0,nan,2.0\n"
                    "0,1,3.0,nan,3.0,nan,1.0,nan,2.0,2.0\n")
    train, val = training_report.read_metrics(path)
    assert train.to_dict("records") == [
        {"step": 0, "domain": "a", "loss": 1.5, "mae": 0.5, "mse": 1.0},
        {"step": 1, "domain": "b", "loss": 3.0, "mae": 1.0, "mse": 2.0}]
    assert val.empty


def test_validation_table_final_and_at_a_step(tmp_path):
    run = write_run(tmp_path / "train")
    table = training_report.validation_table(run)
    assert list(table.columns) == ["domain", "lead_step", "lead_hours", "step", "model_mse",
                                   "persistence_mse", "skill"]
    assert table.to_records(index=False).tolist() == [
        ("global", 1, 6.0, 5, 0.125, 0.5, 0.75),
        ("global", 2, 12.0, 5, 1.25, 1.0, -0.25),
        ("conus", 1, 6.0, 5, 0.25, 1.0, 0.75),
        ("conus", 2, 12.0, 5, 0.75, 2.0, 0.625)]
    early = training_report.validation_table(run, step=3)
    assert early["skill"].tolist() == [0.5, 0.25, 0.5, 0.25]
    with pytest.raises(WorkbenchError, match=r"no validation at step 4 .*\[3, 5\]"):
        training_report.validation_table(run, step=4)
    bare = write_run(tmp_path / "bare", rows_val={})
    with pytest.raises(WorkbenchError, match="no validation yet"):
        training_report.validation_table(bare)


def test_lead_hours_follow_the_runs_time_step(tmp_path):
    """A run sampled at 12 h (its sampling ``time_step``): lead steps 1, 2 are 12 and 24 h in
    the tables, the summary and the config table."""
    run = write_run(tmp_path / "train", time_step="12h")
    table = training_report.validation_table(run)
    assert table["lead_hours"].tolist() == [12.0, 24.0, 12.0, 24.0]
    assert training_report.read_metrics(run)[1]["lead_hours"].max() == 24.0
    assert training_report.notebook_summary(run)["lead_step_hours"] == 12.0
    assert training_report.run_step_hours(run) == 12.0
    shown = training_report.config_table(training_config.load_training_config(
        run / "config.yaml"))["value"]["validation"]
    assert shown.endswith("4 lead steps of 12h (48 h)"), shown


def test_notebook_summary_key_figures(tmp_path):
    run = write_run(tmp_path / "train")
    summary = training_report.notebook_summary(run)
    figures = summary["key_figures"]
    assert list(summary)[0] == "key_figures"
    assert figures == {
        "val_mse_global_step1": 0.125, "val_mse_global_step2": 1.25,
        "val_mse_conus_step1": 0.25, "val_mse_conus_step2": 0.75,
        "persistence_mse_global_step1": 0.5, "persistence_mse_global_step2": 1.0,
        "persistence_mse_conus_step1": 1.0, "persistence_mse_conus_step2": 2.0,
        "skill_global_step1": 0.75, "skill_global_step2": -0.25,
        "skill_conus_step1": 0.75, "skill_conus_step2": 0.625,
        "beats_persistence_global": False,  # worse than persistence at step 2
        "beats_persistence_conus": True,
        "parameters": 23, "samples_per_s": 4.0, "steps": 6,
        "graph_id_global": "aaa111", "graph_id_conus": "bbb222",
    }
    assert list(figures)[:4] == ["val_mse_global_step1", "val_mse_global_step2",
                                 "val_mse_conus_step1", "val_mse_conus_step2"]
    assert summary["train_loss_last20"] == pytest.approx({"global": 0.75, "conus": 0.875 / 3})
    assert len(summary["validation"]) == 4 and summary["run"]["name"] == "hand"
    json.dumps(summary)  # plain values only


def test_run_info_and_parameter_table(tmp_path):
    run = write_run(tmp_path / "train")
    assert training_report.run_info(run)["parameters"] == 23
    table = training_report.parameter_table(run)
    assert table["parameters"].to_dict() == {"encoder": 15, "processor": 8, "total": 23}
    assert table.loc["total", "share"] == 1.0
    with pytest.raises(WorkbenchError, match="no run.json"):
        training_report.run_info(tmp_path)


def test_config_table_shows_the_overrides():
    config = training_config.apply_overrides(training_config.load_training_config("demo"), 50,
                                             ["conus"], None, ["mae"])
    table = training_report.config_table(config)["value"]
    assert table["max_steps"] == "50" and table["losses"] == "mae"
    assert table["task"] == "forecast"
    assert "domain conus" in table and "domain global" not in table
    assert table["model.hidden_dim"] == str(config.model["hidden_dim"])
    assert max(len(v) for v in table) <= 50  # pandas cuts longer cells short in HTML


def test_training_plots_draw(tmp_path):
    run = write_run(tmp_path / "train")
    train, val = training_report.read_metrics(run)
    ax = plotting_training.train_loss_curves(train, window=2)
    smooth = [line for line in ax.get_lines() if line.get_label().startswith("global")]
    np.testing.assert_allclose(smooth[0].get_ydata(), [1.0, 0.875, 0.625])  # rolling mean
    axes = plotting_training.validation_curves(val)
    assert [a.get_title() for a in axes] == ["global: validation", "conus: validation"]
    persistence = [line for line in axes[1].get_lines() if line.get_label() == "persistence"]
    np.testing.assert_array_equal(persistence[0].get_ydata(), [1.0, 2.0])
    ax = plotting_training.skill_bars(training_report.validation_table(run))
    assert sorted(p.get_height() for p in ax.patches) == [-0.25, 0.625, 0.75, 0.75]
    plt.close("all")


def test_forecast_maps_on_a_small_grid():
    lat = np.arange(85.0, -90.0, -10.0)
    lon = np.arange(0.0, 360.0, 10.0)
    glat, glon = (a.ravel() for a in np.meshgrid(lat, lon, indexing="ij"))
    ds = xr.Dataset({"t2m": (("grid",), np.zeros(glat.size), {"units": "K"})},
                    coords={"latitude": ("grid", glat), "longitude": ("grid", glon)},
                    attrs={"domain": "tiny", "grid_kind": "regular_latlon",
                           "grid_shape": [lat.size, lon.size]})
    truth = np.stack([np.full((2, glat.size), 280.0 + k) for k in range(3)])  # [lead, V, G]
    sample = {"domain": "tiny", "variables": ["z_500", "t2m"],
              "init_time": np.datetime64("2020-03-01T00"),
              "valid_times": np.array(["2020-03-01T06", "2020-03-01T12", "2020-03-01T18"],
                                      dtype="datetime64[ns]"),
              "truth": truth, "forecast": truth + 1.0, "persistence": truth[:1].repeat(3, 0),
              "latitude": glat, "longitude": glon, "grid_shape": [lat.size, lon.size]}
    fig = plotting_training.forecast_maps(sample, ds, variables=("t2m", "nope"))
    maps = [a for a in fig.axes if a.get_title()]
    assert [a.get_title() for a in maps] == [
        "t2m +6 h: truth", "t2m +6 h: forecast", "t2m +6 h: forecast - truth, rms 1",
        "t2m +6 h: persistence - truth, rms 0",
        "t2m +18 h: truth", "t2m +18 h: forecast", "t2m +18 h: forecast - truth, rms 1",
        "t2m +18 h: persistence - truth, rms 2"]
    plt.close("all")


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the session's demo plan may run in this test's set-up
def test_training_run_and_report(demo_plan):
    """Notebook 03 through the CLI: demo training (300 steps), the model beats persistence at
    the first and last lead step on both domains, and the report renders offline. The run is
    the demo plan's train step (``workbench batch demo`` runs ``workbench run 03_training``
    with the notebook's defaults), shared with tests/test_batch_demo.py."""
    runs, _, _ = demo_plan
    run_dir = runs / "demo" / "train"
    params = yaml.safe_load((run_dir / "params.yaml").read_text()) or {}
    assert params.get("config", "demo") == "demo" and params.get("max_steps", 300) == 300
    summary = json.loads((run_dir / "summary.json").read_text())
    figures = summary["key_figures"]
    assert list(summary)[0] == "key_figures"
    train = run_dir / "train"
    for name in ("config.yaml", "graphs.json", "metrics.csv", "run.json",
                 "checkpoints/last.ckpt"):
        assert (train / name).is_file(), name
    info = json.loads((train / "run.json").read_text())
    assert info["status"] == "finished" and info["steps"] == figures["steps"] == 300
    assert figures["parameters"] == info["parameters"] > 0
    # the figures against metrics.csv read here independently: the last validation row
    with open(train / "metrics.csv") as f:
        last = [row for row in csv.DictReader(f) if row["val/mse"]][-1]
    for domain in ("global", "conus"):
        for step in (1, 4):
            model = float(last[f"val/mse_{domain}_step{step}"])
            persistence = float(last[f"val/persistence_{domain}_step{step}"])
            assert figures[f"val_mse_{domain}_step{step}"] == pytest.approx(model)
            assert figures[f"persistence_mse_{domain}_step{step}"] == pytest.approx(persistence)
            assert model < persistence, (domain, step)  # beats persistence
            assert figures[f"skill_{domain}_step{step}"] == pytest.approx(1 - model / persistence)
        assert figures[f"beats_persistence_{domain}"] is True
        assert figures[f"graph_id_{domain}"] == info["graphs"][domain]
    report = run_dir / "report.html"
    assert report.stat().st_size < 15e6
    # loss curves, validation curves, skill bars and one map figure per domain
    assert_renders_offline(report, bokeh_plots=0, images=5)
