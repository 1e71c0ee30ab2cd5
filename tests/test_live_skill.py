"""Notebook 04 live: the selection's skill against the scores tables (fast), the panel's
widgets driven in Python, and the notebook itself in a real JupyterLab (slow)."""

from __future__ import annotations

import ast
import concurrent.futures
import json
import re
import shutil
import time
from pathlib import Path

import helpers
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from test_skill_notebook import TRAIN, frozen_forecast, synthetic_truth

from workbench import evaluation, grids, live, live_skill, plotting, plotting_skill
from workbench.errors import WorkbenchError
from workbench.live_skill import INTERIOR, Selection, SkillScores

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "04_skill_maps.ipynb"


@pytest.fixture(scope="module")
def scored():
    """Notebook 04's dicts for a 13 x 11 LAM (a frozen model, ring forced) and a 30 deg globe."""
    lam = grids.lambert_conformal("lam", lat_0=45.0, lon_0=-100.0, nx=13, ny=11, dx_m=60e3)
    globe = grids.regular_latlon(30.0)
    out = {"tables": {}, "forecasts": {}, "truths": {}, "periods": {}, "maps": {}}
    for name, grid, ring in (("lam", lam, grids.boundary_distance_cells(lam) < 2),
                             ("globe", globe, None)):
        truth = synthetic_truth(grid)
        fc = frozen_forecast(truth, truth["time"].values[12:20], 3, ring)
        out["tables"][name] = evaluation.scores(fc, truth, TRAIN)
        out["forecasts"][name], out["truths"][name], out["periods"][name] = fc, truth, TRAIN
        out["maps"][name] = evaluation.skill_maps(fc[["t2m"]], truth, TRAIN)  # one variable
    return out


def scores_of(scored) -> SkillScores:
    return SkillScores(*(dict(scored[k]) for k in ("tables", "forecasts", "truths", "periods",
                                                   "maps")))


def test_interior_skill_is_the_scores_tables_number(scored):
    scores = scores_of(scored)
    assert scores.domains() == ["lam", "globe"]
    assert scores.variables("lam") == ["z_500", "t2m"] and scores.leads("lam") == [6.0, 12.0, 18.0]
    for domain, table in scored["tables"].items():
        for baseline in live_skill.BASELINES:
            card = evaluation.scorecard(table, f"skill_vs_{baseline}")
            for variable in ("z_500", "t2m"):
                for lead in (6.0, 12.0, 18.0):
                    got = scores.value(Selection(domain, variable, lead, baseline))
                    assert got == card.loc[variable, lead]
    # by hand: the frozen model is persistence inside the ring, so 0 against persistence, and
    # 1 - MSE(persistence) / MSE(climatology) against climatology (interior points, area weights)
    truth, fc = scored["truths"]["lam"], scored["forecasts"]["lam"]
    inner = ~fc["forced"].values
    w = evaluation.area_weights(truth).values[inner]
    x = truth["t2m"]
    clim = x.sel(time=slice(*TRAIN)).groupby("time.hour").mean("time")
    valid = [t + np.timedelta64(12, "h") for t in fc["init_time"].values]
    mse = {name: np.mean([np.average(((first.values - x.sel(time=v).values) ** 2)[inner],
                                     weights=w) for first, v in zip(firsts, valid, strict=True)])
           for name, firsts in (("persistence", [x.sel(time=t) for t in fc["init_time"].values]),
                                ("climatology", [clim.sel(hour=pd.Timestamp(v).hour)
                                                 for v in valid]))}
    assert scores.value(Selection("lam", "t2m", 12.0, "persistence")) == pytest.approx(0, abs=1e-12)
    assert scores.value(Selection("lam", "t2m", 12.0, "climatology")) == pytest.approx(
        1 - mse["persistence"] / mse["climatology"], rel=1e-9)


def test_band_skill_is_the_boundary_analysis_number(scored):
    scores = scores_of(scored)
    lam = [scored[k]["lam"] for k in ("forecasts", "truths")]
    every = evaluation.boundary_skill(*lam, TRAIN)  # both variables at once, as notebook 04
    assert scores.band_options("lam", "z_500") == [INTERIOR, "[0, 2) forced", "[2, 5)",
                                                   "[5, 10)"]
    assert scores.band_options("globe", "t2m") == [INTERIOR]  # a globe has no boundary
    for row in every.itertuples():
        for baseline in live_skill.BASELINES:
            got = scores.value(Selection("lam", row.variable, row.lead_hours, baseline,
                                         row.band_label))
            assert got == pytest.approx(getattr(row, f"skill_vs_{baseline}"), rel=1e-12)
    assert scores.value(Selection("lam", "z_500", 6.0, "persistence", "[0, 2) forced")) == 1.0
    # a band's map: its points alone, the forced ring's included (skill 1 there)
    for row in every.drop_duplicates("band").itertuples():
        band = scores.band_maps("lam", "z_500", row.band_label)["z_500"].sel(
            forecast="model", metric="skill_vs_persistence")
        drawn = np.isfinite(band.values).all(axis=0)
        assert drawn.sum() == row.points
        assert (np.isnan(band.values[:, ~drawn])).all()
        if row.band == 0:
            np.testing.assert_allclose(band.values[:, drawn], 1.0)
            assert (drawn == scored["forecasts"]["lam"]["forced"].values).all()
    # t2m's maps are the notebook's; z_500's are computed once, here
    assert scores.skill_maps("lam", "t2m") is scored["maps"]["lam"]
    assert list(scores.skill_maps("lam", "z_500").data_vars) == ["z_500"]


@pytest.mark.parametrize("selection, words", [
    (Selection("lam", "t2m", 24.0), "no skill_vs_persistence score for lam t2m at +24 h"),
    (Selection("lam", "tp", 6.0), "no skill_vs_persistence score for lam tp"),
    (Selection("globe", "t2m", 6.0, band="[2, 5)"), "in band '[2, 5)'"),
    (Selection("lam", "t2m", 6.0, "mean"), "baseline must be one of persistence, climatology"),
])
def test_a_selection_the_scores_do_not_hold_is_one_line(scored, selection, words):
    with pytest.raises(WorkbenchError, match=re.escape(words)) as err:
        scores_of(scored).value(selection)
    assert "\n" not in str(err.value)


def shown(panel) -> str:
    """The skill figure the panel shows, as the browser reads it."""
    return panel.shown.value.split('data-wb-value="skill">')[1].split("<")[0]


def test_the_panel_redraws_what_its_selectors_pick(scored, monkeypatch):
    monkeypatch.setenv(live.BATCH_ENV, "1")  # batch: today's lead-time slider map, no widget
    static = live_skill.panel(*(scored[k] for k in ("tables", "forecasts", "truths", "periods",
                                                    "maps")), "t2m", domain="lam")
    today = plotting_skill.interactive_skill_map(scored["maps"]["lam"], "t2m")
    assert type(static) is type(today) and not isinstance(static, widgets.Widget)
    plotting.configure_cartopy()
    scores = scores_of(scored)
    panel = live_skill.SkillPanel(scores, Selection("lam", "t2m", 6.0), "test", None, "training")
    card = evaluation.scorecard(scored["tables"]["lam"], "skill_vs_climatology")
    assert shown(panel) == "0"  # persistence against itself
    panel.baseline.value = "climatology"
    assert shown(panel) == f"{card.loc['t2m', 6.0]:.4g}"
    panel.lead.value = 18
    assert shown(panel) == f"{card.loc['t2m', 18.0]:.4g}" != f"{card.loc['t2m', 6.0]:.4g}"
    drawn = bytes(panel.image.value)
    assert drawn.startswith(b"\x89PNG")  # the map, redrawn
    panel.band.value = "[2, 5)"
    bands = scores.bands("lam", "t2m")
    row = bands[(bands.band_label == "[2, 5)") & (bands.lead_hours == 18.0)]
    assert shown(panel) == f"{row['skill_vs_climatology'].item():.4g}"
    assert bytes(panel.image.value) != drawn  # its title gives the band and the band's skill
    panel.domain.value = "globe"  # no bands there: back to the interior, lead and variable kept
    assert (panel.band.options, panel.band.value) == ((INTERIOR,), INTERIOR)
    assert (panel.variable.value, panel.lead.value) == ("t2m", 18)
    globe = evaluation.scorecard(scored["tables"]["globe"], "skill_vs_climatology")
    assert shown(panel) == f"{globe.loc['t2m', 18.0]:.4g}"
    panel.score.click()  # no run dir typed: one line, nothing added
    assert panel.status.value.startswith("error: type a training run dir")
    assert scores.domains() == ["lam", "globe"]
    plt.close("all")


# --------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def frozen(tmp_path_factory) -> Path:
    """A training run whose model is persistence (lr 0), trained on global and conus; its test
    split is 3 days (8 initial times at 4 steps), so that notebook 04 forecasts little."""
    from workbench import training

    sampling = training.config_dict(training.load_training_config("demo"))["sampling"]
    sampling["splits"]["test"] = ["2020-03-16", "2020-03-18T18:00"]
    return helpers.frozen_run(tmp_path_factory.mktemp("live-skill") / "run", sampling=sampling)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_score_button_adds_another_run(frozen):
    period = tuple(evaluation.run_config(frozen).sampling["splits"]["train"])
    scores = SkillScores({}, {}, {}, {"europe": period})  # europe's climatology period only
    name = live_skill.score_run(scores, str(frozen), "europe", "val", 1)
    assert name == f"europe @ {frozen.parent.name}/{frozen.name}"
    assert scores.domains() == [name] and scores.periods[name] == period
    assert scores.leads(name) == [6.0] and scores.forecasts[name].attrs["domain"] == "europe"
    for variable in scores.variables(name):  # the frozen run is persistence: skill 0
        assert scores.value(Selection(name, variable, 6.0)) == pytest.approx(0.0, abs=1e-6)
        assert scores.value(Selection(name, variable, 6.0, "climatology")) < 1
    with pytest.raises(WorkbenchError, match="config.yaml"):
        live_skill.score_run(scores, str(frozen.parent), "europe", "val", 1)


def set_parameters(notebook: Path, **values) -> None:
    """Edit the parameters cell's values in place, as a person would (one line each)."""
    nb = json.loads(notebook.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    lines = "".join(cell["source"]).splitlines(keepends=True)
    for name, value in values.items():
        at = [i for i, line in enumerate(lines) if line.startswith(f"{name} = ")]
        assert len(at) == 1, name
        comment = lines[at[0]].partition("  #")[2]
        lines[at[0]] = f"{name} = {value!r}" + (f"  #{comment}" if comment else "\n")
    cell["source"] = lines
    ast.parse("".join(lines))
    notebook.write_text(json.dumps(nb, indent=1))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_notebook_04_live_in_jupyterlab(frozen, tmp_path):
    """JupyterLab runs notebook 04 on a frozen run over conus and europe; the lead slider, the
    dropdowns and the score button recompute in the kernel, and what the page shows is the
    library's number, made here."""
    from lab import lab_root, lab_session

    started = time.monotonic()
    root = lab_root(tmp_path)
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    set_parameters(root / NOTEBOOK.name, run_dir=str(frozen), domains=["conus", "europe"],
                   lead_steps=4)
    period = tuple(evaluation.run_config(frozen).sampling["splits"]["train"])

    def library_scores(domain: str):
        """The library's numbers, made here while JupyterLab runs the notebook."""
        fc = evaluation.forecast(frozen, domain, "test", steps=4, progress=False)
        truth = evaluation.truth_for(fc).load()
        assert fc.sizes["init_time"] == 8  # the split's 12 times less the last 4 (no +24 h)
        return (evaluation.scores(fc, truth, period),
                evaluation.boundary_skill(fc[["z_500"]], truth, period))

    pool = concurrent.futures.ThreadPoolExecutor(1)
    futures = {d: pool.submit(library_scores, d) for d in ("conus", "europe")}
    expected = {}

    def library(domain: str, lead: float, baseline: str, band: str = INTERIOR) -> str:
        table, bands = expected[domain]
        value = live_skill.skill_value(table, Selection(domain, "z_500", lead, baseline, band),
                                       bands)
        return f"{value:.4g}"  # as live.value_html shows it

    with lab_session(root, tmp_path / "lab.log") as lab:
        lab.open(NOTEBOOK.name)
        lab.run_all(timeout_s=400)
        ran = time.monotonic()
        expected.update({d: f.result(timeout=300) for d, f in futures.items()})
        pool.shutdown()
        scored_here = time.monotonic()
        assert lab.value("skill") == library("europe", 6.0, "persistence") == "0"
        lab.select("baseline", "climatology")
        at_6h = lab.wait_value("skill", library("europe", 6.0, "climatology"))
        assert at_6h == library("europe", 6.0, "climatology")
        lab.set_slider("lead (h)", 24)
        at_24h = lab.wait_value("skill", library("europe", 24.0, "climatology"))
        assert at_24h == library("europe", 24.0, "climatology") != at_6h
        lab.select("domain", "conus")
        assert lab.wait_value("skill", library("conus", 24.0, "climatology")) == library(
            "conus", 24.0, "climatology")
        lab.select("boundary band", "[2, 5)")
        band = library("conus", 24.0, "climatology", "[2, 5)")
        assert lab.wait_value("skill", band) == band != library("conus", 24.0, "climatology")
        # the same run again through the score button: conus forecast anew, the same number
        lab.widget("run dir").locator("input").fill(str(frozen))
        lab.click("score")
        again = f"conus @ {frozen.parent.name}/{frozen.name}"
        assert lab.wait_value("scored", again, timeout_s=120) == again
        assert lab.widget("domain").locator("select").first.input_value() == again
        assert lab.wait_value("skill", band) == band
        lab.page.locator('[data-wb-value="skill"]').last.scroll_into_view_if_needed()
        lab.screenshot(tmp_path / "04_skill_maps.png")
        assert lab.external == [], f"JupyterLab asked outside: {lab.external[:5]}"
        assert lab.page_errors == []
    summary = json.loads((root / "summary.json").read_text())
    assert set(summary["domains"]) == {"conus", "europe"}
    print(f"notebook 04 live: JupyterLab and run all {ran - started:.0f} s, the library's scores "
          f"{scored_here - ran:.0f} s more, widgets {time.monotonic() - scored_here:.0f} s")
