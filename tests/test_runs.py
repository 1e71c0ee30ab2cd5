"""Notebook runs: parameters checked, papermill into run dirs, offline HTML, the index."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import yaml
from browser import check_page, chromium_available
from helpers import tiny_notebook

from workbench import catalog, cli, runs
from workbench.errors import WorkbenchError


def run_via_cli(tmp_path, notebook: str, *params: str):
    """``workbench run NOTEBOOK -p ...`` into tmp_path; returns the run dir and its summary."""
    pairs = [arg for i in range(0, len(params), 2) for arg in ("-p", params[i], params[i + 1])]
    code = cli.main(["run", notebook, *pairs, "--runs-dir", str(tmp_path / "runs"),
                     "--reports-dir", str(tmp_path / "reports")])
    assert code == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir, json.loads((run_dir / "summary.json").read_text())


def assert_renders_offline(html, bokeh_plots: int, images: int, widgets: int = 0) -> None:
    """Under 20 MB; in chromium no outside request or error, and the plots are drawn."""
    assert html.stat().st_size < 20e6
    reason = chromium_available()
    if reason:
        pytest.skip(reason)
    result = check_page(html)
    assert result["external_requests"] == [] and result["failed_requests"] == []
    assert result["console_errors"] == [] and result["page_errors"] == []
    assert result["bokeh_plots"] >= bokeh_plots and result["images"] >= images
    assert result["widgets"] >= widgets


def test_notebooks_have_parameters_cell_and_no_outputs():
    notebooks = runs.list_notebooks()
    assert [p.stem for p in notebooks][:1] == ["00_catalog_tour"]
    for path in notebooks:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert "parameters" in code[0]["metadata"].get("tags", []), path
        assert not any(c.get("outputs") for c in code), f"{path} is stored with outputs"
        assert nb["metadata"]["kernelspec"]["name"] == runs.KERNEL_NAME


@pytest.mark.slow
def test_catalog_tour_run_and_report(tmp_path):
    """The real path: papermill runs notebook 00, the report renders offline in chromium."""
    run_dir, summary = run_via_cli(tmp_path, "00_catalog_tour", "variable", "z_500",
                                   "time_index", "2")
    reports = tmp_path / "reports"
    for name in ("00_catalog_tour.ipynb", "params.yaml", "report.html", "summary.json", "run.json"):
        assert (run_dir / name).is_file(), name
    assert yaml.safe_load((run_dir / "params.yaml").read_text()) == {
        "variable": "z_500", "time_index": 2}
    assert json.loads((run_dir / "run.json").read_text())["status"] == "ok"
    assert set(summary["datasets"]) == {"global", "conus", "europe"}
    for name, info in summary["datasets"].items():  # numbers against the data itself
        ds = catalog.open_dataset(name)
        values = ds["z_500"].isel(time=2).values
        assert info["mapped"]["mean"] == pytest.approx(float(np.mean(values)), rel=1e-6)
        assert info["grid_points"] == ds.sizes["grid"]
        assert info["missing_fraction"] == 0.0
    assert summary["key_figures"]["grid_points"] == 10512 + 8330 + 7440

    index = (reports / "index.html").read_text()
    assert f"{run_dir.name}.html" in index and (reports / f"{run_dir.name}.html").is_file()
    # one interactive map per domain; the globe and three static maps; the dataset browser
    assert_renders_offline(run_dir / "report.html", bokeh_plots=3, images=4, widgets=1)
    index_result = check_page(reports / "index.html", settle_s=1)
    assert index_result["external_requests"] == [] and index_result["console_errors"] == []


@pytest.mark.slow
def test_graph_inspection_run_and_report(tmp_path):
    """Notebook 01 through papermill; its smallest safe k checked by rebuilding the encoder."""
    import dataclasses

    from workbench import graphs, inspection

    run_dir, summary = run_via_cli(tmp_path, "01_graph_inspection", "k_range", "30:40",
                                   "trims", "[0, 6]", "slider_ks", "[30, 40]")
    figures = summary["key_figures"]
    config = graphs.load_config("demo")
    for trim in (0, 6):
        k = figures[f"min_k_trim_{trim}"]
        assert 30 < k <= 40
        for kk, expect_hanging in ((k - 1, True), (k, False)):
            cfg = dataclasses.replace(inspection.with_trim(config, trim),
                                      encoder=graphs.EdgeConfig(kind="knn", k=kk))
            graph = graphs.build_graph(cfg)
            lam = graphs.node_values(graph["data"], "cutout_mask").astype(bool)
            hanging = inspection.hanging_mask(graph, "encoder", "sources")
            assert bool((hanging & lam).any()) == expect_hanging, (trim, kk)
    built = inspection.inspect_graph(graphs.build_graph(config))
    assert figures["hanging_data_to_hidden_sources"] == (
        built["edge_sets"]["data->hidden"]["hanging_sources"]["total"])
    assert_renders_offline(run_dir / "report.html", bokeh_plots=1, images=5)


@pytest.mark.slow
def test_million_node_graph_report_stays_small(tmp_path):
    """1,038,240 data nodes: maps are rasterized, the report stays under 20 MB and renders."""
    run_dir, summary = run_via_cli(tmp_path, "01_graph_inspection", "config", "global-0p25",
                                   "k_range", "8:40:8", "trims", "[0]", "region", "all",
                                   "slider_ks", "[8, 40]")
    figures = summary["key_figures"]
    assert figures["data_nodes"] == 721 * 1440 and figures["hidden_nodes"] == 40962
    assert_renders_offline(run_dir / "report.html", bokeh_plots=1, images=4)


@pytest.mark.slow
def test_domain_sampling_run_and_report(tmp_path):
    """Notebook 02 through papermill: its domain shares, table and bin counts against counts
    made here independently (the sampler rerun with the same seed, np.histogram of the index)."""
    import pandas as pd

    from workbench import binnorm, sampling

    run_dir, summary = run_via_cli(tmp_path, "02_domain_sampling", "n_batches", "300",
                                   "weights", "[3, 1]", "browse_samples", "2")
    figures = summary["key_figures"]
    config = sampling.load_sampling_config("demo")
    names = [d.name for d in config.domains]
    assert list(figures)[:4] == [f"{kind}_share_{n}" for n in names for kind in ("requested", "drawn")]

    module = sampling.MultiDomainDataModule(config)
    module.setup()
    sampler = sampling.MultiDomainBatchSampler(
        [d.samples("train") for d in module.domains], config.batch_size, weights=[3, 1],
        batches_per_epoch=300, seed=config.seed)
    drawn = np.array([batch[0][0] for batch in sampler])
    diffs = []
    for i, (name, requested) in enumerate(zip(names, (0.75, 0.25), strict=True)):
        share = float(np.mean(drawn == i))
        assert figures[f"requested_share_{name}"] == pytest.approx(requested)
        assert figures[f"drawn_share_{name}"] == pytest.approx(share)
        diffs.append(abs(share - requested))
    assert figures["max_abs_share_diff"] == pytest.approx(max(diffs))
    assert figures["batches"] == 300

    for row in summary["domains"]:  # samples per split from the dates themselves
        ds = catalog.open_dataset(row["dataset"])
        assert row["grid_points"] == ds.sizes["grid"]
        for split, (start, end) in config.splits.items():
            times = ds["time"].values
            steps = int(((times >= np.datetime64(start)) & (times <= np.datetime64(end))).sum())
            assert row[f"{split}_samples"] == steps - (config.input_steps + config.rollout) + 1

    files = summary["index"]["index_files"]
    tiles = pd.read_csv(files["tiling"], float_precision="round_trip")
    samples = pd.read_csv(files["sampling"], float_precision="round_trip")
    edges = np.asarray(summary["bin_edges"])
    # conus-tp bins tile-total tp into 10 linear bins (the first holds the zeros)
    np.testing.assert_array_equal(edges, binnorm.make_bin_edges(tiles["aggregate"], 10, "linear"))
    assert summary["bin_counts_before"] == np.histogram(tiles["aggregate"], edges)[0].tolist()
    assert summary["bin_counts_after"] == np.histogram(samples["aggregate"], edges)[0].tolist()
    assert figures["tiles_total"] == len(tiles) + figures["dropped"]
    assert figures["samples"] == len(samples) == sum(summary["bin_counts_after"])
    # the share plot, the histograms, two tile maps and the browser's map; the browser widget
    assert_renders_offline(run_dir / "report.html", bokeh_plots=0, images=5, widgets=1)


# --------------------------------------------------------------------------- cell failures


async def wait_for_reply(wake: bool) -> float:
    """Seconds a pending asyncio poll on a DEALER waits for a reply that arrives while the
    loop is busy and is followed by a send through a blocking shadow of the socket, which is
    how jupyter_client's Session.send sends nbclient's Output-widget comm_msg."""
    import asyncio

    import zmq
    import zmq.asyncio

    from workbench.engine import wake_pending_poll

    ctx = zmq.asyncio.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    router.bind("inproc://shell")
    dealer.connect("inproc://shell")
    try:
        await dealer.send_multipart([b"execute_request"])
        ident, _ = await router.recv_multipart()
        started = time.monotonic()
        poll = asyncio.ensure_future(dealer.poll(timeout=2000))
        await asyncio.sleep(0.02)
        zmq.Socket.shadow(router.underlying).send_multipart([ident, b"execute_reply"])
        time.sleep(0.01)  # the loop busy with IOPub messages; zmq throttles commands to ~1 ms
        zmq.Socket.shadow(dealer.underlying).send_multipart([b"comm_msg"])
        if wake:
            wake_pending_poll(dealer)
        assert await poll == zmq.POLLIN  # the reply is there either way
        return time.monotonic() - started
    finally:
        dealer.close(0)
        router.close(0)
        ctx.term()


@pytest.mark.timeout(30)
def test_a_shell_send_swallows_the_reply_wake_up_and_the_engine_restores_it():
    """The cause of the widget-cell stall, on a bare socket pair: without the wake the poll
    sleeps until its 2 s timeout although the reply came after 0.02 s."""
    import asyncio

    assert asyncio.run(wait_for_reply(wake=False)) >= 1.9
    assert asyncio.run(wait_for_reply(wake=True)) < 0.5


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_widget_cells_run_without_waiting_for_the_cell_timeout(tmp_path):
    """The stall's regression test: interact and an Output widget that prints, 5 runs in a
    row; before the engine's wake, 1 in 3 to 10 runs sat in a widget cell until the timeout
    (and then called the run ok)."""
    import nbformat

    path = tiny_notebook(
        tmp_path / "widgets.ipynb", "n = 20",
        "import ipywidgets as widgets\nfrom IPython.display import display",
        "widgets.interact(lambda k: print('k is', k), k=widgets.IntSlider(value=2, max=n));",
        "out = widgets.Output()\ndisplay(out)\nwith out:\n    for i in range(n):\n"
        "        display(f'line {i}')",
    )
    for attempt in range(5):
        result = runs.run_notebook(path, {}, runs_dir=tmp_path / "runs", run_id=f"run{attempt}",
                                   progress=False, cell_timeout_s=60)
        assert result.status == "ok", result.error
        nb = nbformat.read(result.run_dir / "widgets.ipynb", as_version=4)
        slowest = max(cell.metadata.papermill.duration for cell in nb.cells)
        assert slowest < 10, f"run {attempt}: a cell took {slowest:.0f} s of its 60 s timeout"
        assert result.duration_s < 40, f"run {attempt} took {result.duration_s:.0f} s"
    # the widgets still work offline: their state holds what the kernel printed into them
    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    outputs = [m["state"]["outputs"] for m in state.values() if m["model_name"] == "OutputModel"]
    texts = ["".join(o.get("text", "")) + o.get("data", {}).get("text/plain", "")
             for outs in outputs for o in outs]
    assert "k is 2\n" in texts
    assert [t for t in texts if t.startswith("'line")] == [f"'line {i}'" for i in range(20)]
    assert (result.run_dir / "report.html").is_file()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_cell_past_its_timeout_fails_the_run(tmp_path, monkeypatch, capsys):
    import nbformat

    path = tiny_notebook(tmp_path / "sleepy.ipynb", "seconds = 600",
                         "print('before the sleep')", "import time\ntime.sleep(seconds)",
                         "print('never')")
    monkeypatch.setenv("WORKBENCH_CELL_TIMEOUT", "5")
    code = cli.main(["run", str(path), "--runs-dir", str(tmp_path / "runs"), "--no-index",
                     "--no-progress"])
    expected = ("CellTimeoutError: cell 3 (import time ...) ran past the 5 s cell timeout "
                "(WORKBENCH_CELL_TIMEOUT)")
    assert code == 1 and expected in capsys.readouterr().err
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed" and record["error"] == expected
    assert 5 <= record["duration_s"] < 60  # the kernel is killed, not waited for
    # the partial notebook and its report are kept, the sleeping cell marked failed
    before, sleepy, never = nbformat.read(run_dir / "sleepy.ipynb", as_version=4).cells[1:]
    assert before.outputs[0].text == "before the sleep\n"
    assert sleepy.metadata.papermill.status == "failed"
    assert sleepy.outputs[-1].ename == "CellTimeoutError"
    assert never.outputs == [] and never.metadata.papermill.status == "pending"
    report = (run_dir / "report.html").read_text()
    assert "before the sleep" in report and "ran past the 5 s cell timeout" in report


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_kernel_that_dies_mid_cell_fails_the_run(tmp_path):
    path = tiny_notebook(tmp_path / "doomed.ipynb", "code = 9",
                         "import os\nos.kill(os.getpid(), code)", "print('never')")
    result = runs.run_notebook(path, {}, runs_dir=tmp_path / "runs", progress=False,
                               cell_timeout_s=600)
    assert result.status == "failed"
    assert result.error == ("DeadKernelError: the kernel died while running cell 2 (import os "
                            "...) (killed by SIGKILL: out of memory?)")
    assert result.duration_s < 60  # seen within seconds, not at the cell timeout
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["status"] == "failed" and record["error"] == result.error
    assert "the kernel died while running cell 2" in (result.run_dir / "report.html").read_text()


def test_cell_timeout_in_whole_seconds(monkeypatch):
    """nbclient takes whole seconds and reads 0 as 'no timeout': 0.5 s must not become 0."""
    assert runs.cell_timeout(0.5) == 1 and runs.cell_timeout(90) == 90
    monkeypatch.setenv("WORKBENCH_CELL_TIMEOUT", "2.2")
    assert runs.cell_timeout() == 3
    for bad in ("abc", "0", "-5", "inf"):
        monkeypatch.setenv("WORKBENCH_CELL_TIMEOUT", bad)
        with pytest.raises(WorkbenchError, match="give seconds > 0"):
            runs.cell_timeout()
