"""Notebook 02 (domain sampling) live: panels whose widgets re-run the library.

In JupyterLab (``live.is_live()``) ``shares_panel`` gives one weight slider per domain and
re-runs the training batch sampler (``sampling_report.domain_frequency``) on every change;
``bin_norm_panel`` gives binnorm's settings (``BinNormConfig``'s fields) and re-balances the
tiles already in memory (``binnorm.rebalance``: no data read, no index written) before
re-drawing the histograms. Key figures are tagged with ``live.value_html``. In a batch run
(papermill) each panel draws the report's static content and returns at once.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import binnorm, live, plotting, sampling_report
from .errors import WorkbenchError
from .pipeline import BinNormSample, Pipeline, PipelineState
from .sampling import MultiDomainDataModule

__all__ = ["Rebalanced", "bin_figures", "bin_norm_config", "bin_norm_panel", "bin_norm_widget",
           "figures_html", "rebalance", "sample_browser", "shares_panel", "shares_widget",
           "start_weights"]


# --------------------------------------------------------------------------- computations


def start_weights(datamodule: MultiDomainDataModule,
                  weights: Sequence[float] | None = None) -> list[float]:
    """The weight sliders' first values: ``weights`` when given, else the domains' own."""
    if weights is not None:
        return [float(w) for w in weights]
    return [float(d.weight) for d in datamodule.config.domains]


def bin_norm_config(pipe: Pipeline) -> binnorm.BinNormConfig:
    """The bin-norm settings of ``pipe``'s ``bin_norm`` step."""
    for step in pipe.steps:
        if isinstance(step, BinNormSample):
            return binnorm.BinNormConfig(**dataclasses.asdict(step))
    raise WorkbenchError("the pipeline has no bin_norm step; add `- bin_norm: {n_bins: 10}` "
                         "after its tile step")


@dataclass(frozen=True)
class Rebalanced:
    """Tiles re-balanced by one bin-norm config: bin edges, counts per bin, the samples."""

    config: binnorm.BinNormConfig
    edges: np.ndarray
    before: np.ndarray  # tiles per bin
    after: np.ndarray  # samples per bin
    samples: pd.DataFrame


def rebalance(tiles: pd.DataFrame, config: binnorm.BinNormConfig) -> Rebalanced:
    """``tiles`` re-balanced by ``config`` in memory, counted per bin as notebook 02 counts."""
    samples = binnorm.rebalance(tiles, config)
    edges = np.asarray(samples.attrs["bin_edges"], dtype=float)
    return Rebalanced(config, edges, binnorm.bin_counts(tiles["aggregate"], edges),
                      binnorm.bin_counts(samples["aggregate"], edges), samples)


def bin_figures(result: Rebalanced) -> dict[str, int]:
    """The bin-norm panel's key figures: tiles, bins and samples."""
    return {"tiles": int(result.before.sum()), "bins": int(result.edges.size - 1),
            "samples": int(len(result.samples))}


def figures_html(figures: Mapping[str, object]) -> str:
    """Key figures as tagged HTML (``live.value_html``), one after the other."""
    return " &nbsp;·&nbsp; ".join(live.value_html(name, value, f"{name}:")
                                  for name, value in figures.items())


# --------------------------------------------------------------------------- drawing


def _draw_shares(shares: pd.DataFrame) -> None:
    plotting.domain_shares(shares["requested"], shares["drawn"])
    plt.show()
    _display(shares)


def _draw_bins(result: Rebalanced, quantity: str) -> None:
    plotting.bin_histograms(result.edges, result.before, result.after, quantity=quantity)
    plt.show()


def _display(obj) -> None:
    from IPython.display import display

    display(obj)


def _redraw(out, error, compute: Callable[[], object], draw: Callable[[object], None]):
    """``compute()``, then ``draw`` its result into the Output ``out`` and return the result;
    a WorkbenchError goes into ``error`` as one line and leaves ``out`` as it was."""
    try:
        result = compute()
    except WorkbenchError as exc:
        error.value = f"<span style='color:#b00'>error: {html.escape(str(exc), quote=False)}</span>"
        return None
    error.value = ""
    with out:
        out.clear_output(wait=True)
        draw(result)
    return result


# --------------------------------------------------------------------------- panels


def shares_widget(datamodule: MultiDomainDataModule, n_batches: int,
                  weights: Sequence[float] | None = None):
    """One weight slider per domain (``weight <domain>``) over the requested vs drawn shares
    of ``n_batches`` training batches, redrawn by ``domain_frequency`` on every change."""
    import ipywidgets as widgets

    names = [d.name for d in datamodule.config.domains]
    start = start_weights(datamodule, weights)
    top = max(10.0, 2 * max(start))
    sliders = [widgets.FloatSlider(value=w, min=0.1, max=top, step=0.1, continuous_update=False,
                                   description=f"weight {n}",
                                   style={"description_width": "initial"})
               for n, w in zip(names, start, strict=True)]
    shown, error, out = widgets.HTML(), widgets.HTML(), widgets.Output()

    def update(chosen: Sequence[float] | None) -> None:
        shares = _redraw(out, error, lambda: sampling_report.domain_frequency(
            datamodule, n_batches, chosen), _draw_shares)
        if shares is not None:
            shown.value = figures_html({**sampling_report.share_figures(shares),
                                        "batches": int(shares["batches"].sum())})

    update(weights)
    for slider in sliders:
        slider.observe(lambda _: update([s.value for s in sliders]), names="value")
    return widgets.VBox([widgets.HBox(sliders), shown, error, out])


def shares_panel(datamodule: MultiDomainDataModule, n_batches: int,
                 weights: Sequence[float] | None = None) -> pd.DataFrame:
    """The domain-frequency section: live, :func:`shares_widget`; in batch, the share plot and
    table. Returns the shares for ``weights`` (what summary.json reports)."""
    shares = sampling_report.domain_frequency(datamodule, n_batches, weights)
    if live.is_live():
        _display(shares_widget(datamodule, n_batches, weights))
    else:
        _draw_shares(shares)
    return shares


def bin_norm_widget(tiles: pd.DataFrame, config: binnorm.BinNormConfig,
                    quantity: str = "aggregate"):
    """binnorm's settings as widgets (``n_bins``, ``bin_edges``, ``method``, ``n_samples``
    with 0 for one per tile, ``q_min``, ``mean_weight``, ``seed``) over the per-bin histograms
    of ``tiles`` re-balanced in memory; key figures ``tiles``, ``bins``, ``samples``."""
    import ipywidgets as widgets

    style = {"description_width": "initial"}
    n = len(tiles)
    controls = {
        "n_bins": widgets.IntSlider(value=int(config.n_bins), min=1, max=max(40, config.n_bins),
                                    continuous_update=False, description="n_bins", style=style),
        "bin_edges": widgets.Dropdown(options=binnorm.BIN_EDGES, value=config.bin_edges,
                                      description="bin_edges", style=style),
        "method": widgets.Dropdown(options=binnorm.METHODS, value=config.method,
                                   description="method", style=style),
        "n_samples": widgets.BoundedIntText(value=int(config.n_samples or 0), min=0,
                                            max=max(10 * n, int(config.n_samples or 0)),
                                            description="n_samples", style=style),
        "q_min": widgets.FloatSlider(value=float(config.q_min), min=0.01, max=1.0, step=0.01,
                                     continuous_update=False, description="q_min", style=style),
        "mean_weight": widgets.FloatSlider(value=float(config.mean_weight), min=0.1,
                                           max=max(10.0, config.mean_weight), step=0.1,
                                           continuous_update=False, description="mean_weight",
                                           style=style),
        "seed": widgets.BoundedIntText(value=int(config.seed), min=0, max=2**31 - 1,
                                       description="seed", style=style),
    }
    shown, error, out = widgets.HTML(), widgets.HTML(), widgets.Output()

    def chosen() -> binnorm.BinNormConfig:
        values = {k: w.value for k, w in controls.items()}
        equalize = values["method"] == "equalize"
        values["n_samples"] = (values["n_samples"] or None) if equalize else None
        return dataclasses.replace(config, **values)  # BinNormConfig checks the combination

    def enable() -> None:
        equalize = controls["method"].value == "equalize"
        controls["n_samples"].disabled = not equalize
        controls["q_min"].disabled = controls["mean_weight"].disabled = equalize

    def update(settings: Callable[[], binnorm.BinNormConfig]) -> None:
        enable()
        result = _redraw(out, error, lambda: rebalance(tiles, settings()),
                         lambda r: _draw_bins(r, quantity))
        if result is not None:
            shown.value = figures_html(bin_figures(result))

    update(lambda: config)
    for control in controls.values():
        control.observe(lambda _: update(chosen), names="value")
    rows = [widgets.HBox(list(controls.values())[:3]), widgets.HBox(list(controls.values())[3:])]
    return widgets.VBox([*rows, shown, error, out])


def bin_norm_panel(pipe: Pipeline, state: PipelineState, index: Mapping,
                   quantity: str = "aggregate") -> tuple[np.ndarray, np.ndarray]:
    """The bin-norm section: live, :func:`bin_norm_widget` on the pipeline's tiles; in batch,
    the histograms of the index the pipeline wrote. Either way a line with the tiles, drops,
    samples and index files. Returns the index's counts per bin (tiles before, samples after)."""
    config = bin_norm_config(pipe)
    edges = index["bin_edges"]
    before = binnorm.bin_counts(state.tiles["aggregate"], edges)
    after = binnorm.bin_counts(state.samples["aggregate"], edges)
    if live.is_live():
        _display(bin_norm_widget(state.tiles, config, quantity))
    else:
        plotting.bin_histograms(edges, before, after, quantity=quantity)
        plt.show()
    print("tiles", index["tiles_total"], "| dropped for missing data", index["dropped_missing"],
          "| samples", index["samples"], "| indexes", index["index_files"])
    return before, after


def sample_browser(samples: Sequence[dict]):
    """The first training samples on their maps: a ``sample`` slider and a ``variable``
    dropdown (``plotting.sample_map``); the report shows the first sample."""
    import ipywidgets as widgets

    return widgets.interactive(
        plotting.sample_map, samples=widgets.fixed(samples),
        index=widgets.IntSlider(value=0, min=0, max=len(samples) - 1, description="sample"),
        variable=widgets.Dropdown(options=samples[0]["variables"], description="variable"),
        ax=widgets.fixed(None))
