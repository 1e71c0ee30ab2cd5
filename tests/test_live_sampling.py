"""Notebook 02 live: the weight sliders give domain_frequency's shares, the bin-norm settings
give the bins and samples binnorm writes (counted here by hand), both through real ipywidgets;
and in JupyterLab itself, in a real browser."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import matplotlib
import nbformat
import numpy as np
import pandas as pd
import pytest

from workbench import binnorm, live, live_sampling, pipeline, sampling, sampling_report
from workbench.errors import WorkbenchError

matplotlib.use("Agg")
NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "02_domain_sampling.ipynb"


@pytest.fixture(scope="module")
def datamodule():
    return sampling.MultiDomainDataModule("demo")


@pytest.fixture(scope="module")
def conus_tp():
    pipe = pipeline.load_pipeline("conus-tp")
    return pipe, pipe.run()


@pytest.fixture(autouse=True)
def _close_figures():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def control(box, description: str):
    """The widget labelled ``description`` anywhere inside ``box``."""
    for child in getattr(box, "children", ()):
        if getattr(child, "description", None) == description:
            return child
        found = control(child, description)
        if found is not None:
            return found
    return None


def shown(box) -> dict[str, str]:
    """Every figure tagged data-wb-value in the box's HTML widgets, by name."""
    text = " ".join(c.value for c in box.children if type(c).__name__ == "HTML")
    return dict(re.findall(r'data-wb-value="([^"]+)">([^<]*)<', text))


@pytest.mark.timeout(120)
def test_weight_sliders_show_the_samplers_drawn_shares(datamodule):
    names = [d.name for d in datamodule.config.domains]
    assert names == ["global", "conus"]
    box = live_sampling.shares_widget(datamodule, 300)  # the config's weights, 1 and 1
    assert [control(box, f"weight {n}").value for n in names] == [1.0, 1.0]
    control(box, "weight global").value = 3.0
    figures = shown(box)

    shares = sampling_report.domain_frequency(datamodule, 300, [3, 1])
    # by hand: the sampler itself, its domains counted
    sampler = datamodule.batch_sampler("train", [3.0, 1.0], 300)
    drawn = np.array([batch[0][0] for batch in sampler])
    assert shares.loc["global", "drawn"] == pytest.approx(np.mean(drawn == 0))
    for name, requested in zip(names, (0.75, 0.25), strict=True):
        assert figures[f"requested_share_{name}"] == f"{requested:.4g}"
        assert figures[f"drawn_share_{name}"] == f"{shares.loc[name, 'drawn']:.4g}"
    assert figures["batches"] == "300"
    assert figures["drawn_share_global"] != f"{0.5:.4g}"  # it moved off the 1:1 draw


@pytest.mark.timeout(120)
def test_panels_are_static_in_batch_and_widgets_live(datamodule, monkeypatch, capsys):
    monkeypatch.setenv(live.BATCH_ENV, "1")
    shares = live_sampling.shares_panel(datamodule, 200, [3, 1])
    pd.testing.assert_frame_equal(shares, sampling_report.domain_frequency(datamodule, 200, [3, 1]))
    assert "VBox" not in capsys.readouterr().out
    monkeypatch.setenv(live.BATCH_ENV, "0")
    assert live_sampling.shares_panel(datamodule, 200, [3, 1]).equals(shares)
    assert "VBox" in capsys.readouterr().out  # displayed (outside a kernel: its repr)


@pytest.mark.timeout(120)
def test_bin_settings_rebalance_as_binnorm_writes(conus_tp, tmp_path):
    pipe, state = conus_tp
    tiles = state.tiles
    config = live_sampling.bin_norm_config(pipe)
    assert (config.n_bins, config.method, config.bin_edges) == (10, "equalize", "linear")
    first = live_sampling.rebalance(tiles, config)  # the pipeline's own settings: its index
    pd.testing.assert_frame_equal(first.samples[["tile_id", "bin", "weight"]],
                                  state.samples[["tile_id", "bin", "weight"]])

    box = live_sampling.bin_norm_widget(tiles, config)
    assert shown(box) == {"tiles": str(len(tiles)), "bins": "10", "samples": str(len(tiles))}
    control(box, "n_bins").value = 5
    values = tiles["aggregate"].to_numpy()
    edges = binnorm.make_bin_edges(values, 5, "linear")
    five = live_sampling.rebalance(tiles, dataclasses.replace(config, n_bins=5))
    np.testing.assert_array_equal(five.edges, edges)
    assert five.before.tolist() == np.histogram(values, edges)[0].tolist()  # hand count
    assert five.after.tolist() == np.histogram(five.samples["aggregate"], edges)[0].tolist()
    assert five.after.max() - five.after[five.before > 0].min() <= 1  # equalized
    written = binnorm.bin_norm_sample(tiles, five.config, tmp_path)  # the on-disk route
    assert five.after.tolist() == written.attrs["counts_after"]
    assert shown(box) == {"tiles": str(len(tiles)), "bins": str(edges.size - 1),
                          "samples": str(len(written))}

    control(box, "method").value = "importance"
    control(box, "q_min").value = 0.2
    importance = dataclasses.replace(config, n_bins=5, method="importance", q_min=0.2)
    kept = binnorm.bin_norm_sample(tiles, importance, tmp_path)
    assert len(kept) < len(tiles)
    assert shown(box)["samples"] == str(len(kept))
    assert control(box, "n_samples").disabled and not control(box, "q_min").disabled


@pytest.mark.timeout(120)
def test_a_bad_setting_shows_one_line_and_keeps_the_figures(conus_tp):
    pipe, state = conus_tp
    box = live_sampling.bin_norm_widget(state.tiles, live_sampling.bin_norm_config(pipe))
    before = shown(box)
    control(box, "n_bins").value = 1
    control(box, "bin_edges").value = "log"  # one log bin from 0: no log scale reaches 0
    error = control_html(box)
    assert "error: bin_edges='log' needs" in error and "\n" not in error
    assert shown(box)["bins"] == "1"  # the last setting that worked (linear, one bin)
    assert shown(box)["tiles"] == before["tiles"]
    with pytest.raises(WorkbenchError, match="no bin_norm step"):
        live_sampling.bin_norm_config(pipeline.Pipeline([]))


def control_html(box) -> str:
    return " ".join(c.value for c in box.children if type(c).__name__ == "HTML"
                    and "error:" in c.value)


# --------------------------------------------------------------------------- JupyterLab


def small_copy(folder: Path) -> Path:
    """Notebook 02 with a smaller parameters cell, as a person would edit it."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = nb.cells[1]
    assert "parameters" in cell.metadata["tags"]
    for name, value in (("n_batches", "400"), ("browse_samples", "2")):
        cell.source, n = re.subn(rf"^{name} = \S+", f"{name} = {value}", cell.source, flags=re.M)
        assert n == 1, name
    path = folder / NOTEBOOK.name
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_notebook_02_live_in_jupyterlab(tmp_path, conus_tp):
    from lab import lab_root, lab_session

    root = lab_root(tmp_path)
    small_copy(root)
    module = sampling.MultiDomainDataModule("demo")
    with lab_session(root, tmp_path / "lab.log") as lab:
        lab.open(NOTEBOOK.name)
        lab.run_all(timeout_s=400)
        first = sampling_report.domain_frequency(module, 400)
        assert lab.value("drawn_share_global") == f"{first.loc['global', 'drawn']:.4g}"
        lab.set_slider("weight global", 3)
        expected = sampling_report.domain_frequency(module, 400, [3, 1])
        want = f"{expected.loc['global', 'drawn']:.4g}"
        assert lab.wait_value("drawn_share_global", want) == want
        assert lab.value("requested_share_global") == "0.75"

        pipe, state = conus_tp
        assert lab.value("bins") == "10"
        lab.set_slider("n_bins", 4)
        config = dataclasses.replace(live_sampling.bin_norm_config(pipe), n_bins=4)
        four = live_sampling.rebalance(state.tiles, config)
        bins = str(four.edges.size - 1)
        assert lab.wait_value("bins", bins) == bins
        assert lab.value("samples") == str(int(four.after.sum())) == str(len(state.tiles))
        lab.select("method", "importance")
        kept = live_sampling.rebalance(state.tiles, dataclasses.replace(config, method="importance"))
        assert lab.wait_value("samples", str(len(kept.samples))) == str(len(kept.samples))
        lab.screenshot(tmp_path / "02_domain_sampling.png")
        assert lab.external == [], f"JupyterLab asked outside: {lab.external[:5]}"
    summary = json.loads((root / "summary.json").read_text())
    assert summary["key_figures"]["batches"] == 400  # the parameters', not the sliders'
