"""The ``workbench`` command: thin over the library modules.

Bad input prints one line ``error: ...`` naming the problem and the fix, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .errors import WorkbenchError


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--catalog", action="append", default=[], metavar="DIR",
        help="extra catalog folder (repeatable; also $WORKBENCH_CATALOG)",
    )
    parser.add_argument("--cache", metavar="DIR", help="cache folder (default $WORKBENCH_CACHE)")


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))


# --------------------------------------------------------------------------- data


def cmd_data_list(args) -> int:
    from .catalog import load_catalog

    entries = load_catalog(args.catalog)
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

    entry = get_entry(args.name, args.catalog)
    info = describe(open_dataset(entry, catalog=args.catalog, cache=args.cache))
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
        entries = [get_entry(n, args.catalog) for n in args.names]
    else:
        entries = [e for e in load_catalog(args.catalog).values()
                   if e.source.kind == "generator" and e.name in ("global", "conus", "europe")]
    for entry in entries:
        path = prepare(entry, args.cache, progress=True)
        print(f"{entry.name}: {path}")
    return 0


# --------------------------------------------------------------------------- runs


def cmd_run(args) -> int:
    from .runs import parse_parameters, run_notebook, write_index

    params = parse_parameters(args.param, args.param_file)
    result = run_notebook(args.notebook, params, runs_dir=args.runs_dir)
    write_index(args.runs_dir, args.reports_dir)
    print(f"{result.status}: {result.run_dir} ({result.duration_s:.0f} s)")
    if result.error:
        print(f"error in notebook: {result.error}", file=sys.stderr)
    return 0 if result.status == "ok" else 1


def cmd_demo(args) -> int:
    from .runs import list_notebooks, run_notebook, write_index

    failed = 0
    for notebook in list_notebooks():
        print(f"running {notebook.stem} ...", flush=True)
        result = run_notebook(notebook, {}, runs_dir=args.runs_dir)
        print(f"  {result.status}: {result.run_dir} ({result.duration_s:.0f} s)", flush=True)
        failed += result.status != "ok"
    index = write_index(args.runs_dir, args.reports_dir)
    print(f"reports: {index}")
    return 1 if failed else 0


def cmd_params(args) -> int:
    from .runs import notebook_parameters

    params = notebook_parameters(args.notebook)
    if args.json:
        _print_json(params)
        return 0
    for name, p in params.items():
        print(f"{name:<20} {p['type']:<8} {p['default']:<30} {p['help']}")
    return 0


def cmd_report(args) -> int:
    from .runs import write_index

    print(write_index(args.runs_dir, args.reports_dir))
    return 0


def cmd_setup(args) -> int:
    from .html import ensure_js_assets
    from .runs import ensure_kernel

    print(f"kernel: {ensure_kernel()}")
    print(f"report JS: {ensure_js_assets(force=args.force)}")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__.splitlines()[0])
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
    p = data.add_parser("prepare", help="generate embedded datasets into the cache")
    p.add_argument("names", nargs="*", help="datasets (default: global conus europe)")
    _common(p)
    p.set_defaults(func=cmd_data_prepare)

    for name, func, text in [
        ("run", cmd_run, "execute a notebook with papermill into runs/<run_id>/"),
        ("demo", cmd_demo, "run every notebook with its defaults and write reports/index.html"),
        ("report", cmd_report, "rebuild reports/index.html from runs/"),
    ]:
        p = sub.add_parser(name, help=text)
        if name == "run":
            p.add_argument("notebook", help="name (00_catalog_tour) or path of a notebook")
            p.add_argument("-p", "--param", nargs=2, action="append", default=[],
                           metavar=("NAME", "VALUE"), help="parameter (value parsed as YAML)")
            p.add_argument("-f", "--param-file", action="append", default=[], metavar="YAML")
        p.add_argument("--runs-dir", default="runs")
        p.add_argument("--reports-dir", default="reports")
        p.set_defaults(func=func)

    p = sub.add_parser("params", help="a notebook's parameters, types and defaults")
    p.add_argument("notebook")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("setup", help="register the kernel and fetch the report JS (npm pack)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_setup)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WorkbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
