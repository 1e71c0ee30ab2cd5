"""``workbench data ...``: list, show, stats, index, export and prepare catalog datasets."""

from __future__ import annotations

import argparse

from .cli_args import catalog_option, common, print_json


def cmd_data_list(args) -> int:
    from .catalog import load_catalog

    entries = load_catalog()
    if args.json:
        print_json([e.summary() for e in entries.values()])
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
        print_json(info)
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
    from .dask_cluster import dask_cluster
    from .statistics import load_or_compute

    entry = get_entry(args.name)
    ds = open_dataset(entry, cache=args.cache)
    with dask_cluster(args.dask, args.slurm_plan):
        stats = load_or_compute(ds, entry.name, args.variables or None, args.start, args.end,
                                args.cache)
    if args.json:
        print_json({"dataset": entry.name, "start": args.start, "end": args.end,
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
        print_json(asdict(done))
        return 0
    print(f"{done.path}: {done.dataset} as {done.format}, {done.times} times {done.start} .. "
          f"{done.end} x {len(done.variables)} variables x {done.grid_points} points, "
          f"{len(done.missing_dates)} missing dates"
          + (f"; statistics {done.statistics[0]} .. {done.statistics[1]}"
             if done.statistics else ""))
    return 0


def cmd_data_index(args) -> int:
    from .dask_cluster import dask_cluster
    from .pipeline import index_summary, load_pipeline

    pipeline = load_pipeline(args.config)
    with dask_cluster(args.dask, args.slurm_plan):
        summary = index_summary(pipeline.run())
    if args.json:
        print_json(summary)
        return 0
    for key, value in summary.items():
        print(f"{key}: {value}")
    return 0


def dask_spec(value: str):
    """An argparse type: ``--dask``'s value as a checked DaskSpec."""
    from .dask_cluster import parse_spec
    from .errors import WorkbenchError

    try:
        return parse_spec(value)
    except WorkbenchError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--dask ")) from None


def dask_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dask", type=dask_spec, metavar="SPEC",
                        help="run on a dask.distributed cluster: local[:WORKERS[:MEMORY]] "
                             "(e.g. local:2:1GB), tcp://HOST:PORT (a running scheduler) or "
                             "slurm[:JOBS] (dask-jobqueue; default: dask's threads here)")
    parser.add_argument("--slurm-plan", metavar="PLAN",
                        help="with --dask slurm: the batch plan whose slurm: settings each "
                             "worker's job asks for (default: the plans' defaults)")


def add_data_commands(sub) -> None:
    """The ``data`` subcommands, added to the top-level subparsers ``sub``."""
    data = sub.add_parser("data", help="the data catalog").add_subparsers(dest="data", required=True)
    p = data.add_parser("list", help="list catalog entries")
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=cmd_data_list)
    p = data.add_parser("show", help="dims, variables, period, grid size, missing fraction")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=cmd_data_show)
    p = data.add_parser("stats", help="normalisation statistics (cached per dataset and period)")
    p.add_argument("name")
    p.add_argument("--start", help="first date of the period (default: the data's)")
    p.add_argument("--end", help="last date of the period (default: the data's)")
    p.add_argument("--variables", nargs="*", help="default: every variable")
    p.add_argument("--json", action="store_true")
    dask_options(p)
    common(p)
    p.set_defaults(func=cmd_data_stats)
    p = data.add_parser("index", help="run a pipeline's tiling and sampling, write CSV indexes")
    p.add_argument("config", help="configs/pipelines/NAME.yaml or a preset name (conus-tp)")
    p.add_argument("--json", action="store_true")
    dask_options(p)
    catalog_option(p)
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
    common(p)
    p.set_defaults(func=cmd_data_export)
    p = data.add_parser("prepare", help="generate embedded datasets into the cache")
    p.add_argument("names", nargs="*", help="datasets (default: global conus europe)")
    common(p)
    p.set_defaults(func=cmd_data_prepare)
