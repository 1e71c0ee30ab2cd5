"""Notebook 04's live panel: the skill map and the aggregated skill of one selection.

``SkillScores`` holds what the notebook has already computed (its ``tables``, ``forecasts``,
``truths``, climatology ``periods`` and skill ``maps``) and answers one ``Selection`` - domain,
variable, lead time in hours, baseline, boundary band - with the number
:func:`workbench.evaluation.scores` (region ``interior``) or
:func:`workbench.evaluation.boundary_skill` (one band) holds for it: :func:`skill_value`.

``panel`` is the notebook cell's one call: in JupyterLab (:func:`workbench.live.is_live`) an
ipywidgets box whose selectors redraw the map and show the skill (tagged ``data-wb-value="skill"``
for the browser tests), and whose ``score`` button scores another run dir on demand; in a batch
run the report's lead-time slider map of today (:func:`plotting_skill.interactive_skill_map`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from . import evaluation, live, plotting, plotting_skill
from .errors import WorkbenchError

__all__ = ["BASELINES", "INTERIOR", "Selection", "SkillScores", "skill_value", "panel"]

BASELINES = ("persistence", "climatology")
INTERIOR = "interior"  # the band option for every scored point: evaluation.scores' region


@dataclass(frozen=True)
class Selection:
    """What the panel shows: one domain, variable, lead (hours), baseline and band."""

    domain: str
    variable: str
    lead_hours: float
    baseline: str = "persistence"
    band: str = INTERIOR

    @property
    def metric(self) -> str:
        return f"skill_vs_{self.baseline}"


def skill_value(table: pd.DataFrame, selection: Selection,
                bands: pd.DataFrame | None = None) -> float:
    """The model's aggregated skill for ``selection``: the ``interior`` row of
    :func:`evaluation.scores`' ``table``, or, for a boundary band, the band's row of
    :func:`evaluation.boundary_skill`'s ``bands`` (matched by its ``band_label``)."""
    s = selection
    if s.baseline not in BASELINES:
        raise WorkbenchError(f"baseline must be one of {', '.join(BASELINES)}, got {s.baseline!r}")
    if s.band == INTERIOR:
        rows = table[(table["region"] == INTERIOR) & (table["forecast"] == "model")
                     & (table["metric"] == s.metric) & (table["variable"] == s.variable)
                     & np.isclose(table["lead_hours"], s.lead_hours)]["value"]
    else:
        frame = bands if bands is not None else pd.DataFrame(columns=evaluation.BOUNDARY_COLUMNS)
        rows = frame[(frame["band_label"] == s.band) & (frame["variable"] == s.variable)
                     & np.isclose(frame["lead_hours"].astype(float), s.lead_hours)][s.metric]
    if len(rows) != 1:
        raise WorkbenchError(f"no {s.metric} score for {s.domain} {s.variable} at "
                             f"+{s.lead_hours:g} h in band {s.band!r}: pick a variable, lead "
                             "and band the scores hold")
    return float(rows.iloc[0])


@dataclass
class SkillScores:
    """The notebook's scores, per domain, with skill maps and boundary bands on demand."""

    tables: dict[str, pd.DataFrame]
    forecasts: dict[str, xr.Dataset]
    truths: dict[str, xr.Dataset]
    periods: dict[str, tuple[str, str]]
    maps: dict[str, xr.Dataset] = field(default_factory=dict)
    _maps: dict = field(default_factory=dict, repr=False)
    _bands: dict = field(default_factory=dict, repr=False)

    def domains(self) -> list[str]:
        return list(self.tables)

    def variables(self, domain: str) -> list[str]:
        """The domain's scored variables, in the table's order."""
        rows = evaluation.interior(self.tables[domain])
        return list(dict.fromkeys(rows[rows["forecast"] == "model"]["variable"]))

    def leads(self, domain: str) -> list[float]:
        return sorted(set(self.tables[domain]["lead_hours"].astype(float)))

    def skill_maps(self, domain: str, variable: str) -> xr.Dataset:
        """The notebook's maps where they hold ``variable``, else computed once here."""
        given = self.maps.get(domain)
        if given is not None and variable in given.data_vars:
            return given
        key = (domain, variable)
        if key not in self._maps:
            self._maps[key] = evaluation.skill_maps(self.forecasts[domain][[variable]],
                                                    self.truths[domain], self.periods[domain])
        return self._maps[key]

    def bands(self, domain: str, variable: str) -> pd.DataFrame:
        """:func:`evaluation.boundary_skill` of one variable (empty on a global grid)."""
        key = (domain, variable)
        if key not in self._bands:
            self._bands[key] = evaluation.boundary_skill(
                self.forecasts[domain][[variable]], self.truths[domain], self.periods[domain])
        return self._bands[key]

    def band_maps(self, domain: str, variable: str, band: str) -> xr.Dataset:
        """The skill maps of one boundary band: its points (forced ones too, skill 1 there),
        NaN elsewhere (:func:`evaluation.band_of_points`, the bands of ``bands``)."""
        key = (domain, variable, "forced included")
        if key not in self._maps:
            self._maps[key] = evaluation.skill_maps(self.forecasts[domain][[variable]],
                                                    self.truths[domain], self.periods[domain],
                                                    include_forced=True)
        rows = self.bands(domain, variable)
        number = rows.loc[rows["band_label"] == band, "band"].iloc[0]
        labels, _ = evaluation.band_of_points(self.truths[domain])
        return self._maps[key].where(xr.DataArray(labels == number, dims="grid"))

    def band_options(self, domain: str, variable: str) -> list[str]:
        """``interior`` first, then the domain's boundary bands, nearest the edge first."""
        return [INTERIOR, *dict.fromkeys(self.bands(domain, variable)["band_label"])]

    def value(self, selection: Selection) -> float:
        bands = None if selection.band == INTERIOR else self.bands(selection.domain,
                                                                    selection.variable)
        return skill_value(self.tables[selection.domain], selection, bands)

    def add(self, name: str, table: pd.DataFrame, forecast: xr.Dataset, truth: xr.Dataset,
            period: tuple[str, str]) -> None:
        """Another forecast's scores beside the notebook's (the panel's ``score`` button)."""
        self.tables[name], self.forecasts[name], self.truths[name] = table, forecast, truth
        self.periods[name] = period


def score_run(scores: SkillScores, run_dir: str, domain: str, split: str, steps: int,
              normalise: str = "training") -> str:
    """Forecast ``domain`` with another run dir (:func:`evaluation.forecast`), score it with
    the climatology ``domain`` is scored with (:func:`evaluation.scores`) and add it to
    ``scores`` as ``<domain> @ <run>``; returns that name."""
    if not run_dir.strip():
        raise WorkbenchError("type a training run dir (config.yaml, checkpoints/last.ckpt) "
                             "to score")
    run = evaluation.find_run(run_dir.strip())  # one-line errors: no config, no checkpoint
    base = domain.split(" @ ")[0]
    fc = evaluation.forecast(run, base, split, steps=steps, progress=False, normalise=normalise)
    truth = evaluation.truth_for(fc).load()
    period = scores.periods[domain]
    name = f"{base} @ {run.parent.name}/{run.name}"  # e.g. conus @ 03_training-<id>/train
    scores.add(name, evaluation.scores(fc, truth, period), fc, truth, period)
    return name


def map_figure(scores: SkillScores, selection: Selection, dpi: int = 80):
    """The skill map of ``selection`` (its domain, variable, lead and baseline; a band's points
    alone when a band is selected); the title gives the aggregated skill shown beside it.
    Returns the figure."""
    value = scores.value(selection)  # first: a one-line error for what the scores do not hold
    s = selection
    maps = (scores.skill_maps(s.domain, s.variable) if s.band == INTERIOR
            else scores.band_maps(s.domain, s.variable, s.band))
    fig = plt.figure(figsize=(7.5, 5.0), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1, projection=plotting.map_projection(maps))
    plotting_skill.skill_map(maps, selection.variable, float(selection.lead_hours),
                             selection.metric, ax=ax,
                             title=f"{selection.domain} {selection.variable} "
                                   f"+{selection.lead_hours:g} h vs {selection.baseline}: "
                                   f"{value:+.3f} ({selection.band})")
    return fig


def panel(tables: dict[str, pd.DataFrame], forecasts: dict[str, xr.Dataset],
          truths: dict[str, xr.Dataset], periods: dict[str, tuple[str, str]],
          maps: dict[str, xr.Dataset], variable: str, domain: str | None = None,
          split: str = "test", steps: int | None = None, normalise: str = "training"):
    """Notebook 04's interactive map. Live: selectors for domain, variable, lead time,
    baseline and boundary band that redraw the skill map and show the selection's skill, and a
    run dir box whose ``score`` button scores another run. Batch: today's lead-time slider map
    of ``variable`` on ``domain`` (the last one by default), every lead embedded."""
    domain = domain or list(maps)[-1]
    if not live.is_live():
        return plotting_skill.interactive_skill_map(maps[domain], variable)
    scores = SkillScores(dict(tables), dict(forecasts), dict(truths), dict(periods), dict(maps))
    first = Selection(domain, variable, scores.leads(domain)[0])
    return SkillPanel(scores, first, split, steps, normalise).box


def _set_options(dropdown, options: list[str]) -> None:
    """New options for a dropdown, keeping its value where it is one of them (else the first)."""
    keep = dropdown.value
    dropdown.options = options
    dropdown.value = keep if keep in options else options[0]


class SkillPanel:
    """The live widgets over a :class:`SkillScores`; every change redraws through it."""

    def __init__(self, scores: SkillScores, first: Selection, split: str, steps: int | None,
                 normalise: str) -> None:
        import ipywidgets as widgets

        self.scores, self.split, self.normalise = scores, split, normalise
        self.steps = steps or len(scores.leads(first.domain))
        style = {"description_width": "initial"}

        def narrow() -> dict:  # as wide as its longest option, so the row fits
            return {"style": style, "layout": widgets.Layout(width="max-content")}

        self.domain = widgets.Dropdown(options=scores.domains(), value=first.domain,
                                       description="domain", **narrow())
        self.variable = widgets.Dropdown(options=scores.variables(first.domain),
                                         value=first.variable, description="variable",
                                         **narrow())
        self.baseline = widgets.Dropdown(options=list(BASELINES), value=first.baseline,
                                         description="baseline", **narrow())
        self.band = widgets.Dropdown(options=scores.band_options(first.domain, first.variable),
                                     value=INTERIOR, description="boundary band", **narrow())
        self.lead = widgets.IntSlider(description="lead (h)", style=style, continuous_update=False)
        self._set_leads(first.domain, first.lead_hours)
        self.shown = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="640px"))
        self.run_dir = widgets.Text(description="run dir", placeholder="runs/<id>/train",
                                    style=style, layout=widgets.Layout(width="420px"))
        self.score = widgets.Button(description="score")
        self.status = widgets.HTML()
        self._quiet = False
        for w in (self.domain, self.variable, self.baseline, self.band, self.lead):
            w.observe(self._changed, names="value")
        self.score.on_click(self._score)
        self.box = widgets.VBox([
            widgets.HBox([self.domain, self.variable, self.baseline, self.band]),
            self.lead, self.shown, self.image,
            widgets.HBox([self.run_dir, self.score]), self.status])
        self.redraw()

    def selection(self) -> Selection:
        return Selection(self.domain.value, self.variable.value, float(self.lead.value),
                         self.baseline.value, self.band.value)

    def _set_leads(self, domain: str, keep: float) -> None:
        leads = self.scores.leads(domain)
        step = leads[1] - leads[0] if len(leads) > 1 else 1
        if not all(float(h).is_integer() for h in leads) or not np.allclose(np.diff(leads), step):
            raise WorkbenchError(f"the live panel needs whole, evenly spaced lead hours: {leads}")
        self.lead.min, self.lead.max = -10**9, 10**9  # widen first: min <= max at every step
        self.lead.step = int(step)
        self.lead.min, self.lead.max = int(leads[0]), int(leads[-1])
        self.lead.value = int(keep) if keep in leads else int(leads[0])

    def _changed(self, change) -> None:
        if self._quiet:
            return
        self._quiet = True
        try:
            domain = self.domain.value
            if change["owner"] is self.domain:
                _set_options(self.variable, self.scores.variables(domain))
                self._set_leads(domain, self.lead.value)
            if change["owner"] in (self.domain, self.variable):
                _set_options(self.band, self.scores.band_options(domain, self.variable.value))
        finally:
            self._quiet = False
        self.redraw()

    def redraw(self) -> None:
        """Show the selection's skill and its map as a PNG (an error as one line instead)."""
        selection = self.selection()
        try:
            value = self.scores.value(selection)
            fig = map_figure(self.scores, selection)
        except WorkbenchError as err:
            self.shown.value = f"error: {err}"
            return
        png = io.BytesIO()
        fig.savefig(png, format="png", bbox_inches="tight")
        plt.close(fig)
        self.image.value = png.getvalue()
        self.shown.value = live.value_html(
            "skill", value, f"skill vs {selection.baseline}, {selection.domain} "
            f"{selection.variable} +{selection.lead_hours:g} h, {selection.band}:")

    def _score(self, _button) -> None:
        self.status.value = "scoring..."
        try:
            name = score_run(self.scores, self.run_dir.value, self.domain.value, self.split,
                             self.steps, self.normalise)
        except WorkbenchError as err:
            self.status.value = f"error: {err}"
            return
        self._quiet = True
        try:
            _set_options(self.domain, self.scores.domains())
        finally:
            self._quiet = False
        self.domain.value = name  # redraws: new variables, leads and bands
        self.status.value = live.value_html("scored", name, "scored:")
