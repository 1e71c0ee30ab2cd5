"""Notebook 01's live panel: k, trim, region, edge set and a fix recompute the hanging count.

``GraphExplorer`` answers one setting with library code only: the one-query sweep
(:func:`workbench.inspection.hanging_ranks`, cached per (trim, edge set)) gives every k at once,
and a fix (:func:`workbench.fixes.find_fixes`, each fix at its smallest setting without a
hanging node in the region, cached per (trim, region)) is built as a graph and counted.
``panel`` wires it to ipywidgets in JupyterLab (``live.is_live()``); in a batch run it returns
the report's embedded slider frames, as before, so papermill never waits on a widget.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping, Sequence

import numpy as np

from . import fixes, graphs, inspection, live, plotting
from .errors import WorkbenchError

__all__ = ["NO_FIX", "HangingView", "GraphExplorer", "edge_set_options", "region_options",
           "fix_options", "default_k", "draw", "panel"]

NO_FIX = "none"
SWEEPABLE = ("encoder", "decoder")  # the edge sets a k sweep can answer (knn / reversed_knn)
DEFAULT_SETTINGS = inspection.RegionSettings()


@dataclasses.dataclass(frozen=True)
class HangingView:
    """What the panel shows for one setting: the hanging nodes and their count in ``region``."""

    region: str
    count: int  # hanging nodes in the region
    region_nodes: int  # nodes of the swept node set in the region
    side: str  # "sources" or "targets"
    node: str  # the node set that can hang
    hanging: np.ndarray
    regions: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    title: str
    note: str = ""


def _view(hanging: np.ndarray, regions: np.ndarray, region: str, **fields) -> HangingView:
    counts = inspection.count_by_region(hanging, regions)
    wanted = inspection._region_set(region)
    return HangingView(region=region, count=sum(counts[r] for r in wanted),
                       region_nodes=int(np.isin(regions, wanted).sum()), hanging=hanging,
                       regions=regions, **fields)


def _fix_note(row: Mapping) -> str:
    setting = ", ".join(f"{k}={v}" for k, v in row["setting"].items()) if row["setting"] \
        else "not found"
    return (f"fix {row['name']} ({setting}): {row['encoder_edges']:,} encoder edges, "
            f"{row['edges_vs_global_k']:.2f} x global_k's; {row['note']}")


class GraphExplorer:
    """Hanging nodes of a graph config for any (k, trim, region, edge set, fix), cached."""

    def __init__(self, config: graphs.GraphConfig, ks: Sequence[int],
                 settings: inspection.RegionSettings = DEFAULT_SETTINGS,
                 grid_of=graphs.dataset_grid):
        self.config, self.ks, self.settings = config, sorted(int(k) for k in ks), settings
        self.grid_of = grid_of  # dataset name -> grid (tests hand in small grids)
        self._ranks: dict = {}
        self._fixes: dict = {}
        self._fix_views: dict = {}

    def ranks(self, trim: int, edge_set: str) -> inspection.HangingRanks:
        """The one-query sweep of ``edge_set`` at ``trim`` (computed once)."""
        key = (int(trim), edge_set)
        if key not in self._ranks:
            self._ranks[key] = inspection.hanging_ranks(self.config, self.ks, edge_set, trim,
                                                        self.settings, self.grid_of)
        return self._ranks[key]

    def fixes(self, trim: int, region: str) -> dict:
        """:func:`workbench.fixes.find_fixes` of the config trimmed by ``trim`` (computed once)."""
        key = (int(trim), region)
        if key not in self._fixes:
            self._fixes[key] = fixes.find_fixes(inspection.with_trim(self.config, trim), region,
                                                self.settings, grid_of=self.grid_of)
        return self._fixes[key]

    def view(self, k: int, trim: int, region: str, edge_set: str = "encoder",
             fix: str = NO_FIX) -> HangingView:
        """Hanging nodes at encoder/decoder ``k``; with a fix, the fixed encoder's instead."""
        if fix != NO_FIX:
            return self.fix_view(trim, region, fix)
        if not self.ks[0] <= k <= self.ks[-1]:
            raise WorkbenchError(f"k = {k} is outside the swept k range "
                                 f"{self.ks[0]}..{self.ks[-1]}; widen k_range")
        ranks = self.ranks(trim, edge_set)
        return _view(ranks.hanging(k), ranks.regions, region, side=ranks.side, node=ranks.node,
                     latitude=ranks.latitude, longitude=ranks.longitude,
                     title=f"{edge_set} k={k}, trim {trim}: hanging {ranks.node} nodes")

    def fix_view(self, trim: int, region: str, fix: str) -> HangingView:
        """The encoder of fix ``fix`` (its smallest setting for ``region``), built and counted;
        the data nodes a fix drops are gone, so none of them hangs."""
        key = (int(trim), region, fix)
        if key in self._fix_views:
            return self._fix_views[key]
        rows = self.fixes(trim, region)["fixes"]
        row = next((r for r in rows if r["name"] == fix), None)
        if row is None:
            raise WorkbenchError(f"unknown fix {fix!r}; use one of "
                                 f"{', '.join(r['name'] for r in rows)}")
        fixed = fixes.fixed_config(inspection.with_trim(self.config, trim), row)
        graph = graphs.build_graph(fixed, self.grid_of)
        hanging = inspection.hanging_mask(graph, "encoder", "sources")
        if row["drops"]:
            hanging = np.zeros_like(hanging)
        lat, lon = graphs.node_latlon(graph, "data")
        view = _view(hanging, inspection.node_regions(graph, "data", self.settings), region,
                     side="sources", node="data", latitude=lat, longitude=lon,
                     title=f"fix {fix}, trim {trim}: hanging data nodes", note=_fix_note(row))
        self._fix_views[key] = view
        return view


def edge_set_options(config: graphs.GraphConfig, edge_set: str) -> list[str]:
    """The encoder/decoder when a k sweep can answer them, ``edge_set`` (the parameter) first."""
    options = []
    for role in SWEEPABLE:
        try:
            inspection._swept_edges(config, role)
        except WorkbenchError:
            continue
        options.append(role)
    chosen = next((r for r in options
                   if graphs.EDGE_SETS[r] == graphs.edge_set_key(edge_set)), edge_set)
    return [chosen] + [r for r in options if r != chosen]


def region_options(graph, region: str,
                   settings: inspection.RegionSettings = DEFAULT_SETTINGS) -> list[str]:
    """``lam`` (where the graph has a LAM), ``all`` and every region holding a node of the
    graph, as :mod:`workbench.inspection` names them; ``region`` (the parameter) first."""
    present = set()
    for node in graph.node_types:
        present.update(inspection.node_regions(graph, node, settings))
    groups = [g for g, members in inspection.REGION_GROUPS.items() if present & set(members)]
    options = groups + [r for r in inspection.REGIONS if r in present]
    return [region] + [r for r in options if r != region]


def fix_options(explorer: GraphExplorer, trim: int, region: str) -> list[str]:
    """``none`` and the fixes :func:`workbench.fixes.find_fixes` searches, cheapest first;
    only ``none`` where the encoder is not a plain knn (nothing for the fixes to start from)."""
    if fixes.unfixable_encoder(explorer.config):
        return [NO_FIX]
    return [NO_FIX] + [r["name"] for r in explorer.fixes(trim, region)["fixes"]]


def default_k(config: graphs.GraphConfig, edge_set: str, ks: Sequence[int]) -> int:
    """The k the config builds ``edge_set`` with, or the nearest swept k."""
    role = next((r for r in SWEEPABLE if graphs.EDGE_SETS[r] == graphs.edge_set_key(edge_set)),
                None)
    k = getattr(getattr(config, role, None), "k", None) if role else None
    return min(ks, key=lambda v: abs(v - k)) if k else min(ks)


def draw(view: HangingView, extent: Sequence[float] | None = None):
    """The hanging-nodes map of a view (and a zoom around the LAM when ``extent``): a Figure."""
    import cartopy.crs as ccrs
    import matplotlib.pyplot as plt

    plotting.configure_cartopy()
    panels = 2 if extent is not None else 1
    fig = plt.figure(figsize=(6.5 * panels, 4.2), dpi=80)
    ax = fig.add_subplot(1, panels, 1, projection=ccrs.Robinson())
    plotting.hanging_map(view.latitude, view.longitude, view.hanging, view.regions, ax=ax,
                         title=view.title)
    if extent is not None:
        zoom = fig.add_subplot(1, 2, 2, projection=ccrs.PlateCarree())
        plotting.hanging_map(view.latitude, view.longitude, view.hanging, view.regions, ax=zoom,
                             extent=extent, title="around the LAM")
    fig.tight_layout()
    return fig


def _k_slider(ks: Sequence[int], value: int):
    import ipywidgets as widgets

    steps = set(np.diff(ks)) if len(ks) > 1 else {1}
    if len(steps) == 1:  # an even range: an IntSlider whose readout a person can type into
        return widgets.IntSlider(value=value, min=ks[0], max=ks[-1], step=int(steps.pop()),
                                 description="k", continuous_update=False)
    return widgets.SelectionSlider(options=list(ks), value=value, description="k",
                                   continuous_update=False)


def panel(config: graphs.GraphConfig, graph, ks: Sequence[int], trims: Sequence[int],
          region: str = "lam", edge_set: str = "encoder",
          settings: inspection.RegionSettings = DEFAULT_SETTINGS,
          slider_ks: Sequence[int] = (1, 4, 8, 16, 24, 32), grid_of=graphs.dataset_grid):
    """Live (JupyterLab): controls for k, trim, region, edge set and fix over a hanging count
    and map that every change recomputes. Batch: the report's slider of embedded frames of
    ``edge_set`` at the first trim for ``slider_ks``."""
    explorer = GraphExplorer(config, ks, settings, grid_of)
    if not live.is_live():
        ranks = explorer.ranks(trims[0], edge_set)
        return plotting.hanging_slider(ranks.latitude, ranks.longitude, ranks.free_at, slider_ks)
    return _live_panel(explorer, graph, trims, region, edge_set)


def _live_panel(explorer: GraphExplorer, graph, trims: Sequence[int], region: str,
                edge_set: str):
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    config, ks = explorer.config, explorer.ks
    edge_sets = edge_set_options(config, edge_set)
    k = _k_slider(ks, default_k(config, edge_sets[0], ks))
    trim = widgets.Dropdown(options=[(str(t), int(t)) for t in trims], description="trim")
    where = widgets.Dropdown(options=region_options(graph, region, explorer.settings),
                             description="region")
    edges = widgets.Dropdown(options=edge_sets, description="edge set")
    try:
        names = fix_options(explorer, trims[0], region)
    except WorkbenchError:  # the region holds no data node (a decoder sweep's hidden region)
        names = fix_options(explorer, trims[0], "all")
    fix = widgets.Dropdown(options=names, description="fix")
    shown, note, figure = widgets.HTML(), widgets.HTML(), widgets.Output()
    extent = inspection.lam_extent(graph)
    busy = [False]

    def refresh(_=None) -> None:
        if busy[0]:  # a change made here (edge set -> encoder for a fix) redraws once
            return
        busy[0] = True
        try:
            fixing = fix.value != NO_FIX
            if fixing and "encoder" in edge_sets:
                edges.value = "encoder"
            k.disabled = edges.disabled = fixing
            view = explorer.view(k.value, trim.value, where.value, edges.value, fix.value)
        except WorkbenchError as error:
            shown.value = ""
            note.value = f"<span style='color:#b00'>error: {html.escape(str(error))}</span>"
            figure.clear_output()
            return
        finally:
            busy[0] = False
        shown.value = live.value_html("hanging", view.count,
                                      f"hanging {view.node} nodes ({view.side}) in {view.region}:",
                                      f"of {view.region_nodes:,}")
        note.value = view.note
        with figure:
            figure.clear_output(wait=True)
            fig = draw(view, extent)
            display(fig)
            plt.close(fig)

    for control in (k, trim, where, edges, fix):
        control.observe(refresh, names="value")
    refresh()
    controls = widgets.HBox([k, trim, where, edges, fix], layout={"flex_flow": "row wrap"})
    return widgets.VBox([controls, shown, note, figure])
