"""Self-describing checkpoints: what a checkpoint carries, and forecasting from the file
alone (no run dir, a cache without statistics) with the same values its run dir gives.

One tiny run (2 steps) is trained for the module; the forecast from the file alone runs
``workbench forecast`` in a real process whose cache holds only the dataset stores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from test_training import tiny

import workbench
from workbench import catalog, checkpoints, cli, evaluation, graphs, restore, training
from workbench.config import resolve_config
from workbench.errors import WorkbenchError
from workbench.forecast_files import read_forecast

STEPS = 2
WORKBENCH = Path(sys.executable).with_name("workbench")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The demo run, tiny: 2 steps, a 3-day test split (10 forecasts of 2 steps)."""
    splits = {"train": ["2020-01-01", "2020-02-29T18:00"], "val": ["2020-03-01", "2020-03-15T18:00"],
              "test": ["2020-03-16", "2020-03-18T18:00"]}
    return training.fit(tiny(tmp_path_factory.mktemp("artifact"), max_steps=2,
                             sampling={"splits": splits}), progress=False)


@pytest.fixture(scope="module")
def old_run(run, tmp_path_factory) -> Path:
    """A copy of the run whose checkpoint is as they were before they described the run."""
    old = Path(shutil.copytree(run, tmp_path_factory.mktemp("old") / run.name))
    ckpt = old / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True, map_location="cpu")
    del state["workbench"]["artifact"]
    torch.save(state, ckpt)
    return old


@pytest.fixture(scope="module")
def reference(old_run) -> xr.Dataset:
    """What ``evaluate RUN_DIR`` gave before checkpoints described the run (statistics
    computed from the data): conus, test split."""
    return evaluation.forecast(old_run, "conus", split="test", steps=STEPS, progress=False)


def fresh_cache(path: Path) -> Path:
    """A cache holding only the dataset stores of the test's cache: no statistics, graphs or
    indexes (they would otherwise be reused)."""
    path.mkdir()
    for store in catalog.cache_dir().glob("*.zarr"):
        (path / store.name).symlink_to(store.resolve())
    return path


def alone(run: Path, folder: Path) -> Path:
    """The run's last checkpoint copied into an empty folder."""
    folder.mkdir()
    return Path(shutil.copy(run / "checkpoints" / "last.ckpt", folder / "model.ckpt"))


def test_checkpoint_alone_evaluates_as_its_run_dir(run, reference, tmp_path, monkeypatch,
                                                    capsys):
    """``workbench evaluate CKPT`` from the file alone (no run dir, a fresh cache): the
    forecasts ``evaluate RUN_DIR`` gave, scored."""
    ckpt = alone(run, tmp_path / "alone")
    cache = fresh_cache(tmp_path / "cache")
    monkeypatch.chdir(ckpt.parent)
    hidden = run.with_name(run.name + "-away")  # the run dir is gone while it forecasts
    run.rename(hidden)
    try:
        code = cli.main(["evaluate", str(ckpt), "--domain", "conus", "--steps", str(STEPS),
                         "--json", "--cache", str(cache)])
    finally:
        hidden.rename(run)
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    report = json.loads(out.out)
    path = ckpt.parent / "forecasts" / "model-conus-test.zarr"
    assert Path(report["forecasts"]).resolve() == path
    assert "from the checkpoint" in report["scoring"]["normalisation_note"]
    assert {r["forecast"] for r in report["scores"]} == {"model", "persistence", "climatology"}
    got = read_forecast(path)
    for name in reference.data_vars:
        np.testing.assert_array_equal(got[name].values, reference[name].values, err_msg=name)
    np.testing.assert_array_equal(got.init_time.values, reference.init_time.values)
    np.testing.assert_array_equal(got["forced"].values, reference["forced"].values)
    assert not (cache / "statistics").exists()  # the checkpoint's normalisers, none computed
    assert any((cache / "graphs").iterdir())  # the graph rebuilt from the recorded config
    assert got.attrs["graph_id"] == reference.attrs["graph_id"]
    assert got.attrs["run"] == run.name


@pytest.mark.slow
def test_forecast_command_from_checkpoint_alone(run, old_run, reference, tmp_path):
    """``workbench forecast CKPT`` in its own process, the file alone, a fresh cache: the
    window the run dir gives (~15 s)."""
    ckpt = alone(run, tmp_path / "alone")
    cache = fresh_cache(tmp_path / "cache")
    init = reference.init_time.values[3]
    start = str(init)[:16]
    # the same window from the run dir as before, alone in its batch as the command's is
    # (the size of a batch changes the last bits of float32 sums)
    one = evaluation.forecast(old_run, "conus", steps=STEPS, progress=False, start=start)
    hidden = run.with_name(run.name + "-away")
    run.rename(hidden)
    try:
        done = subprocess.run(
            [str(WORKBENCH), "forecast", str(ckpt), "--domain", "conus", "--start", start,
             "--steps", str(STEPS), "--out", "f.nc"],
            cwd=ckpt.parent, env={**os.environ, "WORKBENCH_CACHE": str(cache)},
            capture_output=True, text=True, timeout=300)
    finally:
        hidden.rename(run)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "f.nc"
    assert not (cache / "statistics").exists()
    got = read_forecast(ckpt.parent / "f.nc")
    assert got.sizes == {"init_time": 1, "lead_time": STEPS, "grid": 8330}
    assert got.init_time.values[0] == init
    want = reference.sel(init_time=[init])
    for name in reference.data_vars:
        np.testing.assert_array_equal(got[name].values, one[name].values, err_msg=name)
        np.testing.assert_allclose(got[name].values, want[name].values, rtol=1e-6, atol=1e-9,
                                   err_msg=name)
    np.testing.assert_array_equal(got["forced"].values, reference["forced"].values)
    assert "from the checkpoint" in got.attrs["normalisation_note"]
    assert got.attrs["graph_id"] == reference.attrs["graph_id"]


def test_checkpoint_holds_what_forecasting_needs(run):
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    art = state["workbench"]["artifact"]
    sampling = checkpoints.read_run_config(run).sampling
    assert art["workbench_version"] == workbench.__version__
    assert art["format"] == checkpoints.ARTIFACT_FORMAT and art["task"] == "forecast"
    assert art["variables"] == list(sampling["variables"])
    assert art["forcings"] == ["insolation"] and art["statics"] == ["orog", "lsm"]
    assert art["time_step"] == "6h" and art["input_steps"] == 1
    assert art["model"]["hidden_dim"] == 16 and art["model"]["n_variables"] == 8
    assert art["imputer"]["default"]["kind"] == "mean"
    assert art["fixed_scaling"]["tp"]["transform"] == "log1p"
    assert set(art["domains"]) == {"global", "conus"}
    conus = art["domains"]["conus"]
    assert conus["dataset"] == "conus" and conus["n_grid"] == 8330 == 70 * 119
    assert conus["grid_shape"] == [70, 119] and conus["calendar"] == "standard"
    assert conus["catalog_entry"]["file"].endswith("conus.yaml")
    assert conus["catalog_entry"]["source"]["kind"] == "generator"
    graph = conus["graph"]
    assert graph["graph_id"] == state["workbench"]["graphs"]["conus"]
    assert graph["graph_id"] == json.loads((run / "graphs.json").read_text())["conus"]["graph_id"]
    assert graph["config_yaml"] == resolve_config("demo-conus", "graphs").read_text()
    assert graph["file_sha256"] is None and graph["data_nodes"] == 8330
    # the normalisers equal the train split's statistics, computed here independently
    ds = catalog.open_dataset("conus")
    train = ds.sel(time=slice(*conus["train_period"]))
    assert conus["train_values"] == 8330 * train.sizes["time"]
    norm = conus["normalisers"]["variables"]
    for i, name in enumerate(norm["variables"]):
        values = train[name].values.astype(np.float64)
        if name == "tp":  # fixed scaling: log1p of mm, no statistics
            assert (norm["offset"][i], norm["scale"][i], norm["log1p"][i]) == (0.0, 1.0, True)
            continue
        np.testing.assert_allclose(norm["offset"][i], values.mean(), rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(norm["scale"][i], values.std(), rtol=1e-4, err_msg=name)
    statics = conus["normalisers"]["statics"]
    np.testing.assert_allclose(statics["offset"][0], ds["orog"].values.mean(), rtol=1e-5)


def test_graph_mismatch_is_one_line_naming_both_ids(run, tmp_path, monkeypatch, capsys):
    ckpt = alone(run, tmp_path / "alone")
    recorded = resolve_config("demo-conus", "graphs").read_text()
    other = tmp_path / "other-k.yaml"
    text = recorded.replace("decoder: {kind: knn, k: 3}", "decoder: {kind: knn, k: 4}")
    assert text != recorded
    other.write_text(text)
    want_id = checkpoints.load_checkpoint(ckpt)["workbench"]["artifact"]["domains"]["conus"][
        "graph"]["graph_id"]
    monkeypatch.chdir(tmp_path)
    code = cli.main(["evaluate", str(ckpt), "--domain", "conus", "--graph", str(other),
                     "--cache", str(fresh_cache(tmp_path / "cache"))])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    got_id = err.split(" has id ")[1].split()[0]
    assert got_id != want_id and len(got_id) == len(want_id)
    for word in ["domain 'conus'", "other-k.yaml", want_id, "--graph"]:
        assert word in err, (word, err)
    assert not (tmp_path / "alone" / "forecasts").exists()
    base = ["forecast", str(ckpt), "--domain", "conus", "--steps", "2", "--cache",
            str(tmp_path / "cache")]
    for extra, words in [
        (["--start", "2019-06-01", "--out", "a.zarr"],
         ["--start 2019-06-01 is not a time of domain 'conus'", "2020-01-01T00:00:00 .. "]),
        (["--start", "2020-03-31T12:00", "--out", "b.nc"],
         ["--start 2020-03-31T12:00 + 2 steps of 6h ends after the data", "fewer --steps"]),
    ]:
        code = cli.main(base + extra)
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
        for word in words:
            assert word in err, (word, err)
        assert not (tmp_path / extra[-1]).exists()


def test_graph_file_is_read_and_checked(run, tmp_path):
    """A run trained on a graph .pt records the file's path and sha256: the file is read
    again, and a file changed since (another graph) is one line."""
    pt = tmp_path / "conus.pt"
    graphs.save_graph(graphs.build_graph("demo-conus"), pt)
    ckpt = alone(run, tmp_path / "alone")
    state = torch.load(ckpt, weights_only=True, map_location="cpu")
    record = state["workbench"]["artifact"]["domains"]["conus"]["graph"]
    record.update(spec=str(pt), file=str(pt), config_yaml=None,
                  file_sha256=checkpoints.file_sha256(pt))
    by_file = tmp_path / "by-file.ckpt"
    torch.save(state, by_file)
    start = "2020-03-17T06:00"
    want = evaluation.forecast(ckpt, "conus", steps=1, progress=False, start=start)
    got = evaluation.forecast(by_file, "conus", steps=1, progress=False, start=start)
    assert got.attrs["graph_id"] == record["graph_id"]
    np.testing.assert_array_equal(got["z_500"].values, want["z_500"].values)
    other = tmp_path / "other-k.yaml"
    other.write_text(resolve_config("demo-conus", "graphs").read_text().replace(
        "decoder: {kind: knn, k: 3}", "decoder: {kind: knn, k: 4}"))
    graphs.save_graph(graphs.build_graph(str(other)), pt)
    with pytest.raises(WorkbenchError, match=f"has id .* with id {record['graph_id']}") as err:
        evaluation.forecast(by_file, "conus", steps=1, progress=False, start=start)
    assert "sha256" in str(err.value) and "\n" not in str(err.value)
    pt.unlink()
    with pytest.raises(WorkbenchError, match="conus.pt .* which is not there: pass that file"):
        evaluation.forecast(by_file, "conus", steps=1, progress=False, start=start)


def test_old_checkpoint_evaluates_with_its_run_dir(old_run, reference, tmp_path):
    ckpt = old_run / "checkpoints" / "last.ckpt"
    assert restore.restore(ckpt).artifact is None and restore.restore(old_run).artifact is None
    assert "from the checkpoint" not in reference.attrs["normalisation_note"]
    init = reference.init_time.values[5]
    by_file = evaluation.forecast(ckpt, "conus", steps=STEPS, progress=False,
                                  start=str(init)[:16])  # the file, read with its run dir
    assert by_file.attrs["run"] == old_run.name
    np.testing.assert_array_equal(by_file["t2m"].values,
                                  reference["t2m"].sel(init_time=[init]).values)
    lone = alone(old_run, tmp_path / "lone")
    with pytest.raises(WorkbenchError,
                       match="from before self-describing checkpoints.*run dir"):
        evaluation.forecast(lone, "conus", progress=False)


def test_dataset_found_through_the_catalog(run, tmp_path, monkeypatch, capsys):
    """A checkpoint whose dataset the catalog does not know says where it came from; with
    --catalog naming a folder that holds its entry, the same forecast."""
    monkeypatch.setenv("WORKBENCH_CATALOG", os.environ.get("WORKBENCH_CATALOG", ""))
    ckpt = alone(run, tmp_path / "alone")
    state = torch.load(ckpt, weights_only=True, map_location="cpu")
    for domain in state["workbench"]["config"]["sampling"]["domains"]:
        if domain["dataset"] == "conus":
            domain["dataset"] = "conus-copy"
    state["workbench"]["artifact"]["domains"]["conus"]["dataset"] = "conus-copy"
    moved = tmp_path / "moved.ckpt"
    torch.save(state, moved)
    cache = fresh_cache(tmp_path / "cache")  # conus-copy's store: conus's (same source)
    entry = catalog.get_entry("conus")
    store = catalog.cache_path(entry, cache)
    store.with_name(store.name.replace("conus-", "conus-copy-", 1)).symlink_to(store.resolve())
    monkeypatch.chdir(tmp_path)
    argv = ["forecast", str(moved), "--domain", "conus", "--start", "2020-03-17T06:00",
            "--steps", "1", "--out", "f.nc", "--cache", str(cache)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    recorded = state["workbench"]["artifact"]["domains"]["conus"]["catalog_entry"]["file"]
    for word in ["dataset 'conus-copy' is not in the catalog", "from generator",
                 f"(catalog entry {recorded})", "--catalog"]:
        assert word in err, (word, err)
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "conus-copy.yaml").write_text(
        Path(recorded).read_text().replace("name: conus\n", "name: conus-copy\n"))
    assert cli.main(argv + ["--catalog", str(tmp_path / "cat")]) == 0, capsys.readouterr().err
    got = read_forecast(tmp_path / "f.nc")
    assert got.attrs["dataset"] == "conus-copy"
    want = evaluation.forecast(ckpt, "conus", steps=1, progress=False, start="2020-03-17T06:00")
    for name in want.data_vars:
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)
    state["workbench"]["artifact"]["domains"]["conus"]["calendar"] = "noleap"
    torch.save(state, moved)  # as if trained on other data under the same name
    assert cli.main(argv + ["--catalog", str(tmp_path / "cat")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "the standard calendar, the checkpoint's data the noleap" in err, err
