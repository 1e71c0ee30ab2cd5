"""The ``workbench`` command: thin over the library modules.

Bad input prints one line ``error: ...`` naming the problem and the fix, exit code 2.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import WorkbenchError


class _Parser(argparse.ArgumentParser):
    """argparse with the workbench's one-line errors (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _whole(minimum: int):
    """An argparse type: a whole number >= ``minimum``."""
    def parse(value: str) -> int:
        if not value.lstrip("-").isdigit() or int(value) < minimum:
            raise argparse.ArgumentTypeError(f"takes a whole number >= {minimum}, got {value!r}")
        return int(value)
    parse.__name__ = "whole number"
    return parse


def _whole_list(value: str) -> list[int]:
    """An argparse type: a comma list of whole numbers >= 0 (``0,5,10``)."""
    parts = value.split(",")
    if not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"takes whole numbers >= 0 separated by commas, got "
                                         f"{value!r}")
    return [int(p) for p in parts]


def _distance(value: str) -> float:
    try:
        km = float(value)
    except ValueError:
        km = -1.0
    if not km >= 0 or km == float("inf"):
        raise argparse.ArgumentTypeError(f"takes a distance in km >= 0, got {value!r}")
    return km


def _devices(value: str) -> int | str:
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"--devices takes a whole number >= 1 or 'auto', "
                                         f"got {value!r}")
    return int(value)


# what to do about a file system error a user can fix, by errno
OS_FIXES = {
    errno.ENOSPC: "free space there or point it (WORKBENCH_CACHE, --cache, --runs-dir) elsewhere",
    errno.EDQUOT: "free space there or point it (WORKBENCH_CACHE, --cache, --runs-dir) elsewhere",
    errno.EACCES: "make it writable or choose another folder",
    errno.EPERM: "make it writable or choose another folder",
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.ENOTDIR: "a file stands where a folder is expected: move it or choose another path",
    errno.EISDIR: "a folder stands where a file is expected: choose another path",
}


def _catalog_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--catalog", action="append", default=[], metavar="DIR",
        help="extra catalog folder (repeatable; added to $WORKBENCH_CATALOG for this command "
             "and what it starts: training workers, notebook kernels, batch entries)",
    )


def _common(parser: argparse.ArgumentParser) -> None:
    _catalog_option(parser)
    parser.add_argument("--cache", metavar="DIR", help="cache folder (default $WORKBENCH_CACHE)")


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))


# --------------------------------------------------------------------------- data


def cmd_data_list(args) -> int:
    from .catalog import load_catalog

    entries = load_catalog()
    if args.json:
        _print_json([e.summary() for e in entries.values()])
        return 0
    width = max(len(n) for n in entries)
    for entry in entries.values():
        where = entry.source.kind if entry.source.kind == "generator" else entry.source.location
        print(f"{entry.name:<{width}}  {entry.domain:<8} {entry.grid.get('resolution', ''):>9}  "
              f"{entry.time_step:>4}  {where}")
    return 0


def cmd_data_show(args) -> int:
    from .catalog import describe, get_entry, open_dataset

    entry = get_entry(args.name)
    info = describe(open_dataset(entry, cache=args.cache))
    info["entry"] = entry.summary()
    if args.json:
        _print_json(info)
        return 0
    print(f"{entry.name} ({entry.domain}): {entry.description}")
    print(f"  dims: {info['dims']}")
    shape = info["grid_shape"]
    print(f"  grid: {info['grid_points']} points" + (f" ({shape[0]} x {shape[1]})" if shape else ""))
    if "period" in info:
        p = info["period"]
        print(f"  period: {p['start']} .. {p['end']} ({p['steps']} steps of {p['time_step']})")
    print(f"  missing: {info['missing_fraction']:.2%}")
    for name, var in info["variables"].items():
        print(f"    {name:<12} {var['units']:<10} {'x'.join(var['dims']):<12} "
              f"missing {var['missing_fraction']:.2%}")
    return 0


def cmd_data_prepare(args) -> int:
    from .catalog import get_entry, load_catalog, prepare

    if args.names:
        entries = [get_entry(n) for n in args.names]
    else:
        entries = [e for e in load_catalog().values()
                   if e.source.kind == "generator" and e.name in ("global", "conus", "europe")]
    for entry in entries:
        path = prepare(entry, args.cache, progress=True)
        print(f"{entry.name}: {path}")
    return 0


def cmd_data_stats(args) -> int:
    from dataclasses import asdict

    from .catalog import get_entry, open_dataset
    from .statistics import load_or_compute

    entry = get_entry(args.name)
    ds = open_dataset(entry, cache=args.cache)
    stats = load_or_compute(ds, entry.name, args.variables or None, args.start, args.end,
                            args.cache)
    if args.json:
        _print_json({"dataset": entry.name, "start": args.start, "end": args.end,
                     "variables": {k: asdict(v) for k, v in stats.items()}})
        return 0
    print(f"{entry.name}: statistics {args.start or 'start'} .. {args.end or 'end'}")
    print(f"  {'variable':<12} {'mean':>12} {'std':>12} {'min':>12} {'max':>12} {'diff std':>12}")
    for name, s in stats.items():
        diff = f"{s.diff_std:12.5g}" if s.diff_std is not None else f"{'-':>12}"
        print(f"  {name:<12} {s.mean:12.5g} {s.std:12.5g} {s.min:12.5g} {s.max:12.5g} {diff}")
    return 0


def cmd_data_export(args) -> int:
    from dataclasses import asdict

    from .export import export_dataset

    done = export_dataset(args.name, args.format, args.out, start=args.start, end=args.end,
                          statistics_start=args.statistics_start,
                          statistics_end=args.statistics_end, force=args.force, cache=args.cache)
    if args.json:
        _print_json(asdict(done))
        return 0
    print(f"{done.path}: {done.dataset} as {done.format}, {done.times} times {done.start} .. "
          f"{done.end} x {len(done.variables)} variables x {done.grid_points} points, "
          f"{len(done.missing_dates)} missing dates"
          + (f"; statistics {done.statistics[0]} .. {done.statistics[1]}"
             if done.statistics else ""))
    return 0


def cmd_data_index(args) -> int:
    from .pipeline import index_summary, load_pipeline

    summary = index_summary(load_pipeline(args.config).run())
    if args.json:
        _print_json(summary)
        return 0
    for key, value in summary.items():
        print(f"{key}: {value}")
    return 0


# --------------------------------------------------------------------------- runs


def _catalog_parameter(params: dict) -> dict:
    """``params`` with a ``catalog`` list checked (folders that exist, searched by this
    process too) and made absolute (kernels run in their run dirs)."""
    if isinstance(params.get("catalog"), list):
        from .catalog import use_catalog

        if not all(isinstance(p, str) for p in params["catalog"]):
            raise WorkbenchError(f"parameter catalog takes folder paths, got "
                                 f"{params['catalog']!r}; e.g. -p catalog '[/data/my-catalog]'")
        use_catalog(params["catalog"])
        params["catalog"] = [str(Path(p).expanduser().resolve()) for p in params["catalog"]]
    return params


def cmd_run(args) -> int:
    import contextlib

    from .index import write_index
    from .locks import holding_run_dir
    from .parameters import parse_parameters
    from .runs import run_notebook

    params = _catalog_parameter(parse_parameters(args.param, args.param_file, args.notebook))
    if args.log_output:  # cell outputs into the log as they come (batch jobs)
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    runs_dir, run_id, held = args.runs_dir, None, contextlib.nullcontext()
    if args.run_dir:
        runs_dir, run_id = str(Path(args.run_dir).resolve().parent), Path(args.run_dir).name
        held = holding_run_dir(Path(args.run_dir).resolve())  # refuses a dir in use
    with held:
        result = run_notebook(args.notebook, params, runs_dir=runs_dir, run_id=run_id,
                              progress=not args.no_progress, log_output=args.log_output)
    if not args.no_index:
        write_index(args.runs_dir, args.reports_dir)
    print(f"{result.status}: {result.run_dir} ({result.duration_s:.0f} s)")
    if result.error:
        print(f"error in notebook: {result.error}", file=sys.stderr)
    return 0 if result.status == "ok" else 1


def cmd_batch(args) -> int:
    import signal

    from .batch import load_plan, parse_plan_parameters
    from .index import write_index
    from .scheduler import LocalExecutor, run_plan
    from .slurm import SlurmExecutor

    pairs, files = getattr(args, "param", []), getattr(args, "param_file", [])
    params = parse_plan_parameters(args.plan, pairs, files) if pairs or files else {}
    plan = load_plan(args.plan, _catalog_parameter(params))
    if args.dry_run:
        for entry in plan.entries:
            needs = f" <- {', '.join(entry.needs)}" if entry.needs else ""
            params = ", ".join(f"{k}={v}" for k, v in entry.params.items()) or "defaults"
            print(f"{entry.id:<40} {entry.notebook.stem:<20} {params}{needs}")
        return 0
    executor = SlurmExecutor(plan.name) if args.executor == "slurm" else LocalExecutor()
    print(f"plan {plan.name}: {len(plan.entries)} runs on {executor.name}, "
          f"at most {args.max_parallel} at once, into {Path(args.runs_dir) / plan.name}",
          flush=True)

    def exit_on_sigterm(signum, frame) -> None:  # as Ctrl-C: entries cancelled, then exit
        raise SystemExit(128 + signum)

    # SIGINT too: a shell that starts the batch in the background (nohup ... &) hands it
    # SIGINT ignored, and Python then never raises KeyboardInterrupt for `kill -INT`
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, exit_on_sigterm),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    try:
        outcomes = run_plan(plan, executor, args.runs_dir, max_parallel=args.max_parallel,
                            retry=args.retry, progress=not args.no_progress,
                            on_end=lambda: write_index(args.runs_dir, args.reports_dir))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    index = write_index(args.runs_dir, args.reports_dir)
    counts = {s: sum(o.status == s for o in outcomes)
              for s in ("ok", "done", "failed", "kept", "blocked")}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n) + f"; reports: {index}")
    return 0 if all(o.succeeded for o in outcomes) else 1


def cmd_demo(args) -> int:
    args.plan, args.executor, args.retry, args.dry_run = "demo", "local", True, False
    return cmd_batch(args)


def cmd_train(args) -> int:
    from .training import fit

    if args.config is None and args.resume is None:
        raise WorkbenchError("train: name a config (a configs/training preset or YAML) or "
                             "--resume RUN_DIR")
    overrides = {k: v for k, v in (("accelerator", args.accelerator), ("devices", args.devices),
                                   ("strategy", args.strategy), ("num_nodes", args.num_nodes))
                 if v is not None}
    run_dir = fit(args.config, max_steps=args.max_steps, resume=args.resume,
                  run_dir=args.run_dir, cache=args.cache, progress=not args.no_progress,
                  **overrides)
    if int(os.environ.get("LOCAL_RANK", 0)) or int(os.environ.get("SLURM_PROCID", 0)):
        return 0  # the other processes of a DDP run: rank 0 reports
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    if args.json:
        _print_json({"run_dir": str(run_dir), **info})
    elif info:
        print(f"{run_dir}: {info['status']} after {info['steps']} steps, "
              f"{info['parameters']:,} parameters, {info['samples_per_s'] or 0:.1f} samples/s")
    return 0


def cmd_evaluate(args) -> int:
    from . import forecast_files as ff
    from .evaluation import evaluate, interior, run_config, scores, scoring_note, truth_for

    if args.forecast:  # forecasts made elsewhere, scored against --truth
        if args.run_dir or args.domain or not args.truth:
            raise WorkbenchError("evaluate --forecast FILE scores a file against --truth "
                                 "DATASET: give --truth, and no run dir or --domain")
        forecast, truth = ff.external_forecast(args.forecast, args.truth,
                                               ff.parse_variables(args.variables), args.cache)
        train = ff.climatology_period(truth, args.train_period, strict=True)
        path, domain = ", ".join(args.forecast), args.truth
    else:
        if not args.run_dir or not args.domain:
            raise WorkbenchError("evaluate: give RUN_DIR --domain D (a run's forecasts) or "
                                 "--forecast FILE --truth DATASET (a file made elsewhere)")
        path = evaluate(args.run_dir, args.domain, args.split, args.steps, args.members,
                        args.graph, cache=args.cache, progress=not args.json,
                        normalise=args.normalise, fmt=args.format)
        forecast, domain = ff.read_forecast(path), args.domain
        truth = truth_for(forecast, args.cache)
        train = args.train_period or run_config(args.run_dir).sampling["splits"]["train"]
    table = scores(forecast, truth, tuple(train))
    note = scoring_note(forecast)
    if args.json:
        _print_json({"forecasts": str(path), "domain": domain, "train_period": list(train),
                     "scoring": note, "scores": table.to_dict("records")})
        return 0
    print(f"forecasts: {path}\nscored: {note['note']}\nclimatology from {train[0]} to "
          f"{train[1]}" + (f"\nnormalised with {note['normalisation_note']}"
                           if note["normalisation_note"] else ""))
    rows = interior(table)  # the forced ring's rows are in --json
    rmse = rows[rows.metric == "rmse"].pivot_table(
        index=["variable", "lead_hours"], columns="forecast", values="value")
    print(rmse.to_string(float_format=lambda v: f"{v:.4g}"))
    return 0


def cmd_forecast(args) -> int:
    from .forecasting import forecast_file

    path = forecast_file(args.checkpoint, args.domain, args.start, args.steps, args.out,
                         args.members, args.graph, args.cache, args.normalise)
    print(path)
    return 0


def cmd_params(args) -> int:
    from .parameters import notebook_parameters

    params = notebook_parameters(args.notebook)
    if args.json:
        _print_json(params)
        return 0
    for name, p in params.items():
        print(f"{name:<20} {p['type']:<14} {p['default']:<30} {p['help']}")
    return 0


def cmd_report(args) -> int:
    from .index import write_index

    print(write_index(args.runs_dir, args.reports_dir))
    return 0


def cmd_setup(args) -> int:
    from .html import ensure_js_assets
    from .runs import ensure_kernel

    print(f"kernel: {ensure_kernel()}")
    print(f"report JS: {ensure_js_assets(force=args.force)}")
    return 0


# --------------------------------------------------------------------------- graphs


def cmd_graph_build(args) -> int:
    from .graphs import save_graph
    from .inspection import inspect_graph
    from .recipes import build_any

    graph = build_any(args.config)  # a workbench graph config or an anemoi-graphs recipe
    path = save_graph(graph, args.out)
    report = inspect_graph(graph)
    encoder = report["edge_sets"].get("data->hidden")
    if set(report["nodes"]) != {"data", "hidden"} or encoder is None:
        nodes = ", ".join(f"{name} {n}" for name, n in report["nodes"].items())
        edges = ", ".join(f"{name} {e['edges']}" for name, e in report["edge_sets"].items())
        print(f"{path}: graph {graph.graph_id} ({graph.name}), nodes {nodes}; edges {edges}")
        return 0
    print(f"{path}: graph {graph.graph_id} ({graph.name}), data {report['nodes']['data']}, "
          f"hidden {report['nodes']['hidden']} nodes; hanging encoder sources "
          f"{encoder['hanging_sources']['total']}")
    return 0


def cmd_graph_inspect(args) -> int:
    from .inspection import RegionSettings, inspect_graph
    from .recipes import load_or_build

    report = inspect_graph(load_or_build(args.graph),
                           RegionSettings(args.band_cells, args.near_km))
    if args.json:
        _print_json(report)
        return 0
    print(f"graph {report['graph_id']} ({report['name']}): nodes {report['nodes']}")
    for name, edges in report["edge_sets"].items():
        hs, ht = edges["hanging_sources"], edges["hanging_targets"]
        length = edges["edge_length_km"]
        print(f"  {name:<16} {edges['edges']:>9} edges  hanging sources {hs['total']:>6} "
              f"targets {ht['total']:>6}  length km {length['min']:.1f}..{length['max']:.1f}")
        for side, counts in (("sources", hs), ("targets", ht)):
            detail = ", ".join(f"{r} {n}" for r, n in counts.items() if r != "total" and n)
            if detail:
                print(f"    hanging {side}: {detail}")
    return 0


def cmd_graph_sweep(args) -> int:
    from .graphs import load_config
    from .inspection import RegionSettings, parse_k_range, sweep, sweep_table
    from .recipes import read_recipe, sweep_recipe

    trims = args.trim or [0]
    if read_recipe(args.config) is not None:  # an anemoi-graphs recipe: no LAM trimming
        if trims != [0]:
            raise WorkbenchError("--trim applies to workbench graph configs, not to an "
                                 "anemoi-graphs recipe (its data nodes are given)")
        result = sweep_recipe(args.config, parse_k_range(args.k), args.edges, args.region,
                              RegionSettings(args.band_cells, args.near_km))
    else:
        result = sweep(load_config(args.config), parse_k_range(args.k), trims, args.edges,
                       args.region, RegionSettings(args.band_cells, args.near_km),
                       progress=not args.json)
    if args.json:
        _print_json(result)
        return 0
    table = sweep_table(result)
    print(table.to_string(index=False))
    for trim, k in result["min_k_without_hanging"].items():
        found = k if k is not None else f"none up to {table['k'].max()}"
        print(f"trim {trim}: smallest k without hanging {result['side']} in {args.region}: {found}")
    return 0


def cmd_graph_export_recipe(args) -> int:
    from .recipe_export import export_recipe

    path = export_recipe(args.config, args.out)
    print(f"{path}: anemoi-graphs recipe, data nodes in {path.with_suffix('.npz')}; build it with "
          f"`anemoi-graphs create {path.name} GRAPH.pt` in {path.parent}")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="workbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="the data catalog").add_subparsers(dest="data", required=True)
    p = data.add_parser("list", help="list catalog entries")
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=cmd_data_list)
    p = data.add_parser("show", help="dims, variables, period, grid size, missing fraction")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=cmd_data_show)
    p = data.add_parser("stats", help="normalisation statistics (cached per dataset and period)")
    p.add_argument("name")
    p.add_argument("--start", help="first date of the period (default: the data's)")
    p.add_argument("--end", help="last date of the period (default: the data's)")
    p.add_argument("--variables", nargs="*", help="default: every variable")
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=cmd_data_stats)
    p = data.add_parser("index", help="run a pipeline's tiling and sampling, write CSV indexes")
    p.add_argument("config", help="configs/pipelines/NAME.yaml or a preset name (conus-tp)")
    p.add_argument("--json", action="store_true")
    _catalog_option(p)
    p.set_defaults(func=cmd_data_index)
    p = data.add_parser("export", help="write a dataset in anemoi-datasets' layout or as CF "
                                       "netCDF/zarr")
    p.add_argument("name")
    p.add_argument("--format", required=True, help="anemoi, netcdf or zarr")
    p.add_argument("--out", required=True, help="the file or store to write (anemoi: NAME.zarr)")
    p.add_argument("--start", help="first date exported (default: the data's)")
    p.add_argument("--end", help="last date exported (default: the data's)")
    p.add_argument("--statistics-start", help="anemoi: first date of the statistics (training) "
                                              "period (default: --start)")
    p.add_argument("--statistics-end", help="anemoi: last date of the statistics period "
                                            "(default: --end)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=cmd_data_export)
    p = data.add_parser("prepare", help="generate embedded datasets into the cache")
    p.add_argument("names", nargs="*", help="datasets (default: global conus europe)")
    _common(p)
    p.set_defaults(func=cmd_data_prepare)

    for name, func, text in [
        ("run", cmd_run, "execute a notebook with papermill into runs/<run_id>/"),
        ("batch", cmd_batch, "run a plan (configs/batch): notebooks, grids, dependencies"),
        ("demo", cmd_demo, "run the demo plan (every notebook on the embedded default)"),
        ("report", cmd_report, "rebuild reports/index.html from runs/"),
    ]:
        p = sub.add_parser(name, help=text)
        if name == "run":
            p.add_argument("notebook", help="name (00_catalog_tour) or path of a notebook")
        if name in ("run", "batch"):
            what = "notebook" if name == "run" else "plan"
            p.add_argument("-p", "--param", nargs=2, action="append", default=[],
                           metavar=("NAME", "VALUE"),
                           help=f"{what} parameter (value parsed as YAML)")
            p.add_argument("-f", "--param-file", action="append", default=[], metavar="YAML",
                           help=f"{what} parameters NAME: VALUE")
        if name == "run":
            p.add_argument("--run-dir", help="run into this folder (default runs/<run_id>)")
            p.add_argument("--no-index", action="store_true", help="do not rewrite the index")
            p.add_argument("--log-output", action="store_true", help="cell outputs to stdout")
        if name == "batch":
            p.add_argument("plan", help="configs/batch/NAME.yaml or a preset (byod, demo, seed004)")
            p.add_argument("--executor", choices=["local", "slurm"], default="local")
            p.add_argument("--retry", action="store_true", help="run failed entries again")
            p.add_argument("--dry-run", action="store_true", help="list the entries, run none")
        if name in ("batch", "demo"):
            p.add_argument("--max-parallel", type=_whole(1), default=1, metavar="N",
                           help="runs at once (default 1; on SLURM: jobs in the queue)")
        if name in ("run", "batch", "demo"):
            p.add_argument("--no-progress", action="store_true", help="no progress bars")
            _catalog_option(p)
        p.add_argument("--runs-dir", default="runs")
        p.add_argument("--reports-dir", default="reports")
        p.set_defaults(func=func)

    graph = sub.add_parser("graph", help="build and inspect graphs").add_subparsers(
        dest="graph", required=True)
    p = graph.add_parser("build", help="build a graph from a config, preset or anemoi-graphs "
                                       "recipe into a .pt")
    p.add_argument("config", help="configs/graphs/NAME.yaml, a preset name (demo, mmgt, ...) "
                                  "or an anemoi-graphs recipe YAML")
    p.add_argument("--out", required=True)
    _catalog_option(p)
    p.set_defaults(func=cmd_graph_build)
    p = graph.add_parser("export-recipe", help="write a graph config as an anemoi-graphs recipe")
    p.add_argument("config", help="configs/graphs/NAME.yaml or a preset name (demo, mmgt, ...)")
    p.add_argument("--out", required=True, help="RECIPE.yaml (data nodes: RECIPE.npz beside it)")
    _catalog_option(p)
    p.set_defaults(func=cmd_graph_export_recipe)
    for name, func, text in [("inspect", cmd_graph_inspect, "hanging nodes, degrees, lengths"),
                             ("sweep", cmd_graph_sweep, "hanging counts for a range of k")]:
        p = graph.add_parser(name, help=text)
        if name == "inspect":
            p.add_argument("graph", help="a graph .pt (workbench's or anemoi-graphs'), an "
                                         "anemoi-graphs recipe YAML, a graph config or preset")
        else:
            p.add_argument("config")
            p.add_argument("--k", default="1:32", help="START:STOP[:STEP] or a comma list")
            p.add_argument("--trim", type=_whole_list, metavar="N[,N...]",
                           help="LAM cells trimmed per side, comma list (e.g. 0,5,10,15)")
            p.add_argument("--region", default="lam", help="lam, all, or one region")
            p.add_argument("--edges", default="encoder", help="encoder, decoder (a recipe: "
                                                               "also SRC->DST)")
        p.add_argument("--band-cells", type=_whole(0), default=10, help="LAM boundary band width")
        p.add_argument("--near-km", type=_distance, default=500.0, help="'near_lam' distance")
        p.add_argument("--json", action="store_true")
        _catalog_option(p)
        p.set_defaults(func=func)

    p = sub.add_parser("train", help="train a model (configs/training) into runs/<run_id>/")
    p.add_argument("config", nargs="?", help="configs/training/NAME.yaml or a preset (demo, full)")
    p.add_argument("--max-steps", type=_whole(1), help="stop after N optimizer steps in all")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--run-dir", help="where to write the run (default runs/train-<name>-...)")
    p.add_argument("--accelerator", help="cpu, gpu or auto (default: the config's)")
    p.add_argument("--devices", type=_devices,
                   help="devices per node (DDP when > 1)")
    p.add_argument("--strategy", help="auto, ddp, ... (default: the config's)")
    p.add_argument("--num-nodes", type=_whole(1), help="nodes (under SLURM: srun's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print run.json")
    _common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="roll a trained run out on a domain and score it")
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR|CKPT",
                   help="a training run dir (runs/train-...) or a checkpoint file")
    p.add_argument("--domain", help="a domain of the run or a catalog dataset")
    p.add_argument("--split", default="test", help="train, val or test (default test)")
    p.add_argument("--steps", type=_whole(1), help="lead steps (default: the run's val_rollout)")
    p.add_argument("--members", type=_whole(1), default=1, help="ensemble members (noise models)")
    p.add_argument("--graph", help="graph for a domain the run did not train on")
    p.add_argument("--normalise", choices=["training", "own"], default="training",
                   help="an unseen domain's statistics: the training domains' (default) or "
                        "its own")
    p.add_argument("--format", choices=["zarr", "netcdf"], default="zarr",
                   help="the forecast file written under RUN_DIR/forecasts (CF, default zarr)")
    p.add_argument("--forecast", nargs="+", metavar="FILE",
                   help="score forecast files made elsewhere (netCDF/zarr: the workbench's, "
                        "a gridded CF or anemoi-inference's output) against --truth")
    p.add_argument("--truth", help="with --forecast: the catalog dataset that is the truth")
    p.add_argument("--variables", nargs="+", metavar="FILE_NAME=NAME",
                   help="with --forecast: the truth's name of a file's variable (2t=t2m)")
    p.add_argument("--train-period", nargs=2, metavar=("START", "END"),
                   help="the climatology baseline's period (default: the run's train split; "
                        "with --forecast the truth's first 70 %%)")
    p.add_argument("--json", action="store_true", help="print the score table as JSON")
    _common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("forecast", help="one forecast from a checkpoint into a .zarr or .nc")
    p.add_argument("checkpoint", help="a checkpoint file (it needs no run dir) or a run dir")
    p.add_argument("--domain", required=True, help="a domain of the run or a catalog dataset")
    p.add_argument("--start", required=True, help="the initial time (the last input step)")
    p.add_argument("--steps", type=_whole(1), required=True, help="lead steps")
    p.add_argument("--out", required=True, help="the forecast file: F.zarr or F.nc")
    p.add_argument("--members", type=_whole(1), default=1, help="ensemble members (noise models)")
    p.add_argument("--graph", help="the graph (.pt, YAML, preset): checked against the "
                                   "checkpoint's; needed for an unseen domain without a preset")
    p.add_argument("--normalise", choices=["training", "own"], default="training",
                   help="an unseen domain's statistics: the training domains' or its own")
    _common(p)
    p.set_defaults(func=cmd_forecast)

    p = sub.add_parser("params", help="a notebook's parameters, types and defaults")
    p.add_argument("notebook")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("setup", help="register the kernel and fetch the report JS (npm pack)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_setup)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID` prints where a stuck command is
        faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    args = build_parser().parse_args(argv)
    saved = os.environ.get("WORKBENCH_CATALOG")
    try:
        if getattr(args, "catalog", None):  # every dataset this command opens, in any process
            from .catalog import use_catalog

            use_catalog(args.catalog)
        return args.func(args)
    except WorkbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `workbench data show x | head`: the reader left, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as err:
        if err.errno not in OS_FIXES:
            raise
        where = f" {err.filename}" if err.filename else ""
        print(f"error: {err.strerror}:{where}; {OS_FIXES[err.errno]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:  # a caller in this process (a test, a notebook) keeps its own catalog
        if saved is None:
            os.environ.pop("WORKBENCH_CATALOG", None)
        else:
            os.environ["WORKBENCH_CATALOG"] = saved


if __name__ == "__main__":
    sys.exit(main())
