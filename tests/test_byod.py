"""Bring your own data, end to end: anemoi stores with missing dates (read as NaN, never in a
sampled window, left out of the statistics), the configs ``workbench.byod`` makes for any
catalog dataset, every layout of the test corpus (``tests/corpus.py``) through the library
path the notebooks call (graph, a short training, evaluation, the skill summary), and the
``byod`` batch plan through the real notebooks 00-04 on one layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from corpus import (
    ANEMOI_MISSING,
    BYOD_TIMES,
    GARBAGE,
    LAYOUTS,
    write_anemoi,
    write_corpus,
    write_wb2,
)

from workbench import byod, catalog, cli, evaluation, graphs, inspection, training
from workbench.errors import WorkbenchError
from workbench.sampling import MultiDomainDataModule, sampling_config_from_dict
from workbench.statistics import compute_statistics

pytestmark = pytest.mark.timeout(900)


# --------------------------------------------------------------------------- missing dates


@pytest.fixture(scope="module")
def anemoi_store(tmp_path_factory):
    """The anemoi store (garbage at its missing dates); its catalog folder and valid values."""
    folder = tmp_path_factory.mktemp("anemoi")
    valid = write_anemoi(folder, "an", BYOD_TIMES, ANEMOI_MISSING)
    return folder / "cat", valid


@pytest.fixture
def anemoi(anemoi_store, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CATALOG", str(anemoi_store[0]))
    return anemoi_store[1]


def test_missing_dates_read_as_nan_and_listed(anemoi):
    ds = catalog.open_dataset("an")
    expected = [str(BYOD_TIMES[i].astype("datetime64[s]")) for i in ANEMOI_MISSING]
    assert ds.attrs["missing_dates"] == expected
    for name, values in anemoi.items():
        read = ds[name].values
        assert np.isnan(read[ANEMOI_MISSING]).all()  # not the 9e9 the store holds there
        np.testing.assert_allclose(read, values, rtol=1e-6)  # NaN in the same places
    import zarr

    stored = zarr.open_group(catalog.get_entry("an").source.location, mode="r")["data"][:]
    assert (stored[ANEMOI_MISSING] == GARBAGE).all()  # the garbage is really there


def test_statistics_leave_missing_dates_out(anemoi):
    """Mean, std, min, max over the valid dates only; the std of one-step differences over
    the pairs of consecutive valid dates (numpy by hand)."""
    stats = compute_statistics(catalog.open_dataset("an"))
    for name, values in anemoi.items():
        s = stats[name]
        assert s.mean == pytest.approx(np.nanmean(values), rel=1e-6)
        assert s.std == pytest.approx(np.nanstd(values), rel=1e-5)
        assert (s.min, s.max) == pytest.approx((np.nanmin(values), np.nanmax(values)), rel=1e-6)
        assert s.diff_std == pytest.approx(np.nanstd(np.diff(values, axis=0)), rel=1e-5)


def test_statistics_drop_listed_dates_whatever_the_values():
    """A dataset whose ``missing_dates`` attr lists times holding garbage (not NaN):
    statistics still leave them out, differences across them too."""
    values = np.arange(8.0)[:, None] * np.ones((1, 3))
    values[[2, 5]] = GARBAGE
    ds = xr.Dataset({"x": (("time", "grid"), values)}, coords={"time": BYOD_TIMES[:8]},
                    attrs={"missing_dates": [str(BYOD_TIMES[i].astype("datetime64[s]"))
                                             for i in (2, 5)]})
    s = compute_statistics(ds)["x"]
    kept = np.arange(8.0)[[0, 1, 3, 4, 6, 7]]
    assert (s.mean, s.max) == pytest.approx((kept.mean(), 7.0))
    assert s.diff_std == pytest.approx(0.0, abs=1e-12)  # only steps 0-1, 3-4, 6-7: all 1


def _windows_by_hand(lo: int, hi: int, window: int) -> list[int]:
    return [t for t in range(lo, hi - window + 2)
            if not any(t <= m < t + window for m in ANEMOI_MISSING)]


def test_sampling_never_draws_a_window_with_a_missing_date(anemoi):
    """Every window start of every split against a hand count; an epoch of training batches
    (and the validation batches): none holds a missing date, every value finite and near
    the data's (normalised, |x| < 10: no 9e9 reached the model), no value masked."""
    config = sampling_config_from_dict({
        "name": "an", "domains": [{"name": "an", "dataset": "an"}], "variables": ["t2m", "z_500"],
        "splits": {"train": [str(BYOD_TIMES[0]), str(BYOD_TIMES[17])],
                   "val": [str(BYOD_TIMES[18]), str(BYOD_TIMES[27])]},
        "forcings": ["cos_solar_zenith_angle"], "input_steps": 2, "rollout": 1, "batch_size": 2})
    module = MultiDomainDataModule(config)
    module.setup()
    domain = module.domains[0]
    assert domain.missing.tolist() == ANEMOI_MISSING
    assert domain.samples("train").tolist() == _windows_by_hand(0, 17, 3) == [
        0, 1, 2, 7, 8, 9, 10, 14, 15]
    assert domain.samples("val").tolist() == _windows_by_hand(18, 27, 3)
    missing_ns = BYOD_TIMES[ANEMOI_MISSING].astype("datetime64[ns]").astype(np.int64)
    seen = []
    for split in ("train", "val"):
        for batch in module.dataloader(split):
            assert not np.isin(batch["times"].numpy(), missing_ns).any()
            for key in ("x", "y"):
                assert batch[f"{key}_mask"].all() and batch[key].abs().max() < 10
            seen += batch["t0"].tolist()
    assert set(seen) == set(_windows_by_hand(0, 17, 3) + _windows_by_hand(18, 27, 3))


def test_missing_dates_that_are_not_dates_are_one_line(tmp_path, capsys):
    import zarr

    write_anemoi(tmp_path, "an", BYOD_TIMES, [1])
    zarr.open_group(tmp_path / "an.zarr", mode="r+").attrs["missing_dates"] = ["yesterday"]
    code = cli.main(["data", "show", "an", "--catalog", str(tmp_path / "cat")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "missing_dates ['yesterday'] are not ISO dates" in err


def test_a_split_whose_every_window_holds_a_missing_date_is_one_line(anemoi):
    config = sampling_config_from_dict({
        "name": "an", "domains": [{"name": "an", "dataset": "an"}], "variables": ["t2m"],
        "splits": {"train": [str(BYOD_TIMES[8]), str(BYOD_TIMES[27])],
                   "val": [str(BYOD_TIMES[4]), str(BYOD_TIMES[7])]}, "input_steps": 1})
    module = MultiDomainDataModule(config)
    module.setup()
    with pytest.raises(WorkbenchError, match="every window of split val holds a missing date"):
        module.domains[0].samples("val")


# --------------------------------------------------------------------------- configs


@pytest.fixture(scope="module")
def corpus_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, write_corpus(folder)


@pytest.fixture
def corpus(corpus_folder, monkeypatch):
    """The corpus's layouts, its catalog folder in $WORKBENCH_CATALOG (as --catalog puts it)."""
    monkeypatch.setenv("WORKBENCH_CATALOG", str(corpus_folder[0] / "cat"))
    return corpus_folder[1]


def test_splits_are_shares_of_the_period_in_its_calendar(corpus):
    """wb2: 28 steps -> val and test 5 each (at least a window of 1 + 4), train the first 18;
    the 360_day file: the same shares, its dates in its calendar (2000-02-30 in train)."""
    wb2 = byod.sampling_dict("wb2")
    assert wb2["splits"] == {"train": ["2021-03-01T00:00:00", "2021-03-05T06:00:00"],
                             "val": ["2021-03-05T12:00:00", "2021-03-06T12:00:00"],
                             "test": ["2021-03-06T18:00:00", "2021-03-07T18:00:00"]}
    assert wb2["variables"] == ["t2m", "z_500"] and wb2["statics"] == []
    assert wb2["forcings"] == list(byod.FORCINGS)
    clim = byod.sampling_dict("clim")
    assert clim["splits"]["train"] == ["2000-02-28T00:00:00", "2000-03-02T06:00:00"]
    assert clim["splits"]["test"] == ["2000-03-03T18:00:00", "2000-03-04T18:00:00"]
    shelf = byod.sampling_dict("shelf", ["sst"])  # its static depth comes along
    assert shelf["statics"] == ["depth"] and shelf["variables"] == ["sst"]
    hourly = byod.splits(pd.date_range("2020-01-01", periods=100, freq="h").values, "x")
    assert [len(pd.date_range(a, b, freq="h")) for a, b in hourly.values()] == [70, 15, 15]


def test_byod_input_errors_are_one_line(corpus):
    for call, words in [
        (lambda: byod.splits(np.arange(19), "short"), "has 19 time steps; bring your own data "
                                                      "needs at least 20"),
        (lambda: byod.sampling_dict("wb2", ["sst"]), "dataset 'wb2' has no time-varying "
                                                     "variable ['sst'] (it has t2m, z_500)"),
        (lambda: byod.graph_config(""), None),
        (lambda: byod.training_dict("nothing-here"), "unknown dataset 'nothing-here'"),
    ]:
        if words is None:
            assert call() is None  # no dataset, no otherwise: nothing
            continue
        with pytest.raises(WorkbenchError) as err:
            call()
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_graphs_suit_the_grid_and_no_data_node_hangs(corpus):
    """Global grids: the icosahedral level with at most a quarter as many nodes as points;
    limited areas: 2 x 2 block centres. No data node hangs in the encoder or the decoder,
    and no hidden node is left without input."""
    expected = {"wb2": ("icosahedral", 162),  # 684 points: level 2 (162 <= 171 < 642)
                "shelf": ("coarsened", 9 * 11), "coast": ("coarsened", 10 * 12),
                "clim": ("icosahedral", 42),  # 144 points: level 1, the coarsest
                "an": ("icosahedral", 42),  # 544 points: 162 > 136
                "gfs": ("icosahedral", 162), "hrrr": ("coarsened", 6 * 7)}  # 12 x 15
    for layout in corpus.values():
        config = graphs.load_config(byod.graph_config(layout.dataset))
        graph = graphs.build_graph(config)
        kind, hidden = expected[layout.dataset]
        assert config.hidden.kind == kind and graph["hidden"].num_nodes == hidden, layout
        assert not inspection.hanging_mask(graph, "encoder", "sources").any()
        assert not inspection.hanging_mask(graph, "encoder", "targets").any()
        assert not inspection.hanging_mask(graph, "decoder", "targets").any()


def test_one_file_per_config_whoever_asks(corpus, tmp_path):
    """The same dataset and variables give the same YAML file (named by its content), in
    another process too; other variables another file."""
    first = byod.training_config("wb2", ["t2m"], cache=tmp_path)
    again = byod.training_config("wb2", ["t2m"], cache=tmp_path)
    other = byod.training_config("wb2", ["z_500"], cache=tmp_path)
    code = ("from workbench import byod; "
            f"print(byod.training_config('wb2', ['t2m'], cache={str(tmp_path)!r}))")
    elsewhere = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=120, check=True).stdout.strip()
    assert first == again == Path(elsewhere) and other != first
    graph = byod.graph_config("wb2", cache=tmp_path)
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "byod").glob("*.yaml")) == [
        "graph", "training", "training"]
    assert byod.graph_config("", otherwise="demo") == "demo"
    from workbench.training_config import load_training_config

    config = load_training_config(first)
    assert config.sampling["domains"][0]["graph"] == str(graph)
    assert config.max_steps == 200 and config.val_rollout == byod.LEAD_STEPS


def test_notebook_02_calls_on_the_anemoi_point_list(corpus):
    """Notebook 02's pipeline (workbench.byod's) and maps on the octahedral anemoi store:
    28 whole-domain windows, the 3 missing dates dropped as missing (their fields are NaN),
    the rest in one bin (the global mean of a moving wave does not change); the tile map
    draws its points (no grid shape, no outline). On wb2, whose mean rises steadily, 4
    quantile bins of 7 windows each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workbench import pipeline, plotting, sampling, sampling_report

    state = pipeline.load_pipeline(byod.pipeline_config("an", ["t2m"])).run()
    index = pipeline.index_summary(state)
    assert (index["tiles_total"], index["dropped_missing"]) == (28, len(ANEMOI_MISSING))
    assert index["samples"] == sum(index["per_bin_after"]) == 28 - len(ANEMOI_MISSING)
    wb2 = pipeline.index_summary(pipeline.load_pipeline(byod.pipeline_config("wb2")).run())
    assert wb2["per_bin_before"] == wb2["per_bin_after"] == [7, 7, 7, 7]
    ax = plotting.tile_map(state.ds, state.samples)
    assert "1 tile locations" in ax.get_title()
    plt.close("all")
    module = sampling.MultiDomainDataModule(byod.sampling_config("an", ["t2m"]))
    table = sampling_report.domain_table(module)
    assert table.loc["an", "grid_points"] == 544 and table.loc["an", "test_samples"] > 0


# --------------------------------------------------------------------------- the corpus


STEPS = 20  # training steps per layout


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_each_layout_trains_evaluates_and_scores(layout, corpus, tmp_path):
    """What notebooks 01, 03 and 04 call, on each layout: the byod graph, a short training
    (finite losses), the test split's forecasts (every window clear of missing dates, the
    truth-forced ring only on limited areas, lead hours from the data's step) and the skill
    summary (finite skill against persistence at the first lead). Prints the figures."""
    info = corpus[layout]
    name = info.dataset
    run = training.fit(byod.training_config(name, list(info.variables), max_steps=STEPS),
                       run_dir=tmp_path / "run", progress=False)
    losses = pd.read_csv(run / "metrics.csv")["train/loss"].dropna()
    assert len(losses) == STEPS and np.isfinite(losses).all()
    forecast = evaluation.forecast(run, name, "test", progress=False)
    step_h = pd.to_timedelta(forecast.attrs["time_step"]).total_seconds() / 3600
    assert list(forecast["lead_time"].values / np.timedelta64(1, "h")) == [
        step_h * k for k in range(1, byod.LEAD_STEPS + 1)]
    assert bool(forecast["forced"].any()) == (info.kind == "lam")
    if layout == "anemoi":  # inputs and leads of every forecast are valid dates
        inputs = forecast["init_time"].values[:, None] + forecast["lead_time"].values[None, :]
        used = np.concatenate([forecast["init_time"].values, inputs.ravel()])
        assert not np.isin(used, BYOD_TIMES[ANEMOI_MISSING]).any()
    truth = evaluation.truth_for(forecast)
    config = evaluation.run_config(run)
    table = evaluation.scores(forecast, truth, tuple(config.sampling["splits"]["train"]))
    summary = evaluation.notebook_summary({name: table}, run, forecasts={name: forecast})
    first = f"skill_vs_persistence_{name}_{step_h:g}h"
    assert np.isfinite(summary["key_figures"][first])
    model = evaluation.interior(table).query("forecast == 'model' and metric == 'rmse'")
    assert np.isfinite(model["value"]).all() and set(model["variable"]) == set(info.variables)
    print(f"\n{layout} ({name}, {', '.join(info.variables)}): losses {losses.iloc[0]:.4f} -> "
          f"{losses.iloc[-1]:.4f} over {STEPS} steps; skill vs persistence "
          + ", ".join(f"{k.rsplit('_', 1)[1]} {v:.3f}" for k, v in summary["key_figures"].items()
                      if k.startswith("skill_vs_persistence") and v is not None))


# --------------------------------------------------------------------------- the plan


def _workbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_CATALOG"}
    exe = Path(sys.executable).with_name("workbench")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=1500)


def readme_example() -> tuple[str, list[str]]:
    """The README's bring-your-own-data catalog entry (YAML) and first command (its words)."""
    import shlex

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Bring your own data", 1)[1].split("\n## ", 1)[0]
    entry = section.split("```yaml\n", 1)[1].split("```")[0]
    command = next(line for line in section.split("```bash\n", 1)[1].splitlines()
                   if line.startswith("workbench batch byod"))
    return entry, shlex.split(command)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_readme_byod_example_runs_notebooks_00_to_04(tmp_path):
    """The README's example, its paths pointed at a WeatherBench 2-like store:
    ``workbench batch byod -p catalog '[DIR]' -p dataset era5-1p5 -p variables '[t2m, z_500]'``
    (60 training steps): every notebook ends ok in runs/byod-era5-1p5/; notebook 01 inspected
    the very graph notebook 03 trained with (one graph config, one cached graph); finite
    losses; notebook 04 scored the run on the dataset with finite skill."""
    write_wb2(tmp_path, "wb2", "era5", BYOD_TIMES)
    entry, command = readme_example()
    path_line = next(line for line in entry.splitlines() if "path:" in line)
    store = path_line.split("path: ")[1].split(",")[0]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "era5-1p5.yaml").write_text(entry.replace(store, str(tmp_path /
                                                                             "wb2.zarr")))
    args = [a.replace("/data/my-catalog", str(tmp_path / "mine")) for a in command[1:]]
    assert args[:2] == ["batch", "byod"] and "era5-1p5" in args and "[t2m, z_500]" in args
    done = _workbench(*args, "-p", "max_steps", "60", "--runs-dir", "runs", "--reports-dir",
                      "reports", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    root = tmp_path / "runs" / "byod-era5-1p5"
    summaries = {step: json.loads((root / step / "summary.json").read_text())
                 for step in ("catalog", "graph", "sampling", "train", "skill")}
    assert summaries["catalog"]["datasets"]["era5-1p5"]["grid_points"] == 19 * 36
    graph_id = summaries["graph"]["key_figures"]["graph_id"]
    trained = json.loads((root / "train" / "train" / "graphs.json").read_text())["era5-1p5"]
    assert trained["graph_id"] == graph_id and trained["data_nodes"] == 19 * 36
    cache = Path(os.environ["WORKBENCH_CACHE"])
    assert len(list((cache / "byod").glob("graph-era5-1p5-*.yaml"))) == 1
    assert summaries["sampling"]["key_figures"]["samples"] > 0
    losses = pd.read_csv(root / "train" / "train" / "metrics.csv")["train/loss"].dropna()
    assert len(losses) == 60 and np.isfinite(losses).all()
    figures = summaries["skill"]["key_figures"]
    assert np.isfinite(figures["skill_vs_persistence_era5-1p5_6h"])
    assert summaries["skill"]["run"]["trained_on"] == ["era5-1p5"]
    assert all((root / step / "report.html").is_file() for step in summaries)
    print(f"\nbyod plan on era5-1p5 (WB2-like): losses {losses.iloc[0]:.4f} -> "
          f"{losses.iloc[-1]:.4f}; skill vs persistence 6 h "
          f"{figures['skill_vs_persistence_era5-1p5_6h']:.3f}, 24 h "
          f"{figures['skill_vs_persistence_era5-1p5_24h']:.3f}")
