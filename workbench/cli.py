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

from .cli_args import Parser, catalog_option, common, devices, port_number, print_json, whole
from .cli_data import add_data_commands
from .cli_graph import add_graph_commands
from .errors import WorkbenchError

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
    from .parameters import parse_parameters, paths_from
    from .runs import run_notebook

    params = _catalog_parameter(parse_parameters(args.param, args.param_file, args.notebook))
    params = paths_from(params, Path.cwd())  # the kernel runs in its run dir
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
        print_json({"run_dir": str(run_dir), **info})
    elif info:
        print(f"{run_dir}: {info['status']} after {info['steps']} steps, "
              f"{info['parameters']:,} parameters, {info['samples_per_s'] or 0:.1f} samples/s")
    return 0


def cmd_evaluate(args) -> int:
    from . import forecast_files as ff
    from .evaluation import (
        evaluate,
        interior,
        plain_value,
        run_config,
        scores,
        scoring_note,
        truth_for,
    )

    if args.forecast:  # forecasts made elsewhere, scored against --truth
        if args.run_dir or args.domain or not args.truth:
            raise WorkbenchError("evaluate --forecast FILE scores a file against --truth "
                                 "DATASET: give --truth, and no run dir or --domain")
        run_only = [option for option, value in (
            ("--split", args.split), ("--steps", args.steps), ("--members", args.members),
            ("--graph", args.graph), ("--normalise", args.normalise), ("--format", args.format),
        ) if value is not None]
        if run_only:
            raise WorkbenchError(f"evaluate --forecast scores the files as they are: "
                                 f"{', '.join(run_only)} apply to a run's forecasts; leave "
                                 f"{'it' if len(run_only) == 1 else 'them'} out")
        forecast, truth = ff.external_forecast(args.forecast, args.truth,
                                               ff.parse_variables(args.variables), args.cache)
        train = ff.climatology_period(truth, args.train_period, strict=True)
        path, domain = ", ".join(args.forecast), args.truth
    else:
        if not args.run_dir or not args.domain:
            raise WorkbenchError("evaluate: give RUN_DIR --domain D (a run's forecasts) or "
                                 "--forecast FILE --truth DATASET (a file made elsewhere)")
        if args.truth or args.variables:
            raise WorkbenchError("evaluate: --truth and --variables go with --forecast FILE; "
                                 "a run's forecasts are scored against its own dataset")
        if run_config(args.run_dir).task != "forecast":  # bert, interpolation: masked steps
            from .evaluation_masked import cli_report

            report = cli_report(args)
            print_json(report) if args.json else print(report)
            return 0
        path = evaluate(args.run_dir, args.domain, args.split or "test", args.steps,
                        args.members or 1, args.graph, cache=args.cache,
                        progress=not args.json, normalise=args.normalise or "training",
                        fmt=args.format or "zarr")
        forecast, domain = ff.read_forecast(path), args.domain
        truth = truth_for(forecast, args.cache)
        train = args.train_period or run_config(args.run_dir).sampling["splits"]["train"]
    table = scores(forecast, truth, tuple(train))
    note = scoring_note(forecast)
    if args.json:  # the interval columns on the skill rows only; NaN (no interval) as null
        records = [{k: plain_value(v) for k, v in row.items()
                    if k not in ("ci_low", "ci_high", "significant")
                    or row["metric"].startswith("skill_vs_")} for row in table.to_dict("records")]
        print_json({"forecasts": str(path), "domain": domain, "train_period": list(train),
                     "scoring": note, "scores": records})
        return 0
    print(f"forecasts: {path}\nscored: {note['note']}\nclimatology from {train[0]} to "
          f"{train[1]}" + (f"\nnormalised with {note['normalisation_note']}"
                           if note["normalisation_note"] else ""))
    rows = interior(table)  # the forced ring's rows are in --json
    rmse = rows[rows.metric == "rmse"].pivot_table(
        index=["variable", "lead_hours"], columns="forecast", values="value")
    print(rmse.to_string(float_format=lambda v: f"{v:.4g}"))
    skill = rows[rows.metric.str.startswith("skill_vs_")]
    cells = [f"{v:.3g} [{lo:.3g}, {hi:.3g}]{'*' if sig else ''}" for v, lo, hi, sig in
             zip(skill.value, skill.ci_low, skill.ci_high, skill.significant, strict=True)]
    print("\nskill with its 95 % interval (block bootstrap over initial times; * excludes 0)")
    print(skill.assign(cell=cells).pivot(index=["variable", "lead_hours"], columns="metric",
                                         values="cell").to_string())
    return 0


def cmd_compare(args) -> int:
    from .comparison import compare_runs
    from .evaluation import plain_value

    table = compare_runs(args.run_a, args.run_b, args.domain, args.split, args.steps,
                         args.reference, cache=args.cache, progress=not args.json)
    if args.json:
        print_json({"run_a": str(args.run_a), "run_b": str(args.run_b), "domain": args.domain,
                    "split": args.split, "reference": args.reference,
                    "rows": [{k: plain_value(v) for k, v in row.items()}
                             for row in table.to_dict("records")]})
        return 0
    print(f"A: {args.run_a}\nB: {args.run_b}\nskill against {args.reference} on {args.domain} "
          f"({args.split}); A - B with its 95 % interval (block bootstrap over initial times; "
          "* excludes 0)")
    cells = [f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}]{'*' if sig else ''}" for d, lo, hi, sig in
             zip(table.difference, table.ci_low, table.ci_high, table.significant, strict=True)]
    shown = table.assign(**{"A - B": cells}).set_index(["variable", "lead_hours"])
    print(shown[["skill_a", "skill_b", "A - B"]].to_string(float_format=lambda v: f"{v:.3g}"))
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
        print_json(params)
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


def cmd_lab(args) -> int:
    from .lab import start_lab

    start_lab(args.root, args.port, args.ip)
    return 0  # not reached: the process becomes jupyter lab


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="workbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    add_data_commands(sub)

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
            p.add_argument("--max-parallel", type=whole(1), default=1, metavar="N",
                           help="runs at once (default 1; on SLURM: jobs in the queue)")
        if name in ("run", "batch", "demo"):
            p.add_argument("--no-progress", action="store_true", help="no progress bars")
            catalog_option(p)
        p.add_argument("--runs-dir", default="runs")
        p.add_argument("--reports-dir", default="reports")
        p.set_defaults(func=func)
    add_graph_commands(sub)

    p = sub.add_parser("train", help="train a model (configs/training) into runs/<run_id>/")
    p.add_argument("config", nargs="?", help="configs/training/NAME.yaml or a preset (demo, full)")
    p.add_argument("--max-steps", type=whole(1), help="stop after N optimizer steps in all")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--run-dir", help="where to write the run (default runs/train-<name>-...)")
    p.add_argument("--accelerator", help="cpu, gpu or auto (default: the config's)")
    p.add_argument("--devices", type=devices,
                   help="devices per node (DDP when > 1)")
    p.add_argument("--strategy", help="auto, ddp, ... (default: the config's)")
    p.add_argument("--num-nodes", type=whole(1), help="nodes (under SLURM: srun's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print run.json")
    common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="roll a trained run out on a domain and score it")
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR|CKPT",
                   help="a training run dir (runs/train-...) or a checkpoint file")
    p.add_argument("--domain", help="a domain of the run or a catalog dataset")
    p.add_argument("--split", help="train, val or test (default test)")
    p.add_argument("--steps", type=whole(1), help="lead steps (default: the run's val_rollout)")
    p.add_argument("--members", type=whole(1), help="ensemble members (noise models; default 1)")
    p.add_argument("--graph", help="graph for a domain the run did not train on")
    p.add_argument("--normalise", choices=["training", "own"],
                   help="an unseen domain's statistics: the training domains' (default) or "
                        "its own")
    p.add_argument("--format", choices=["zarr", "netcdf"],
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
    common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="run A against run B on one domain, with 95 %% intervals")
    p.add_argument("run_a", metavar="RUN_A", help="a training run dir")
    p.add_argument("run_b", metavar="RUN_B", help="another training run dir")
    p.add_argument("--domain", required=True, help="a domain both runs forecast")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--steps", type=whole(1), help="lead steps (default: run A's val_rollout)")
    p.add_argument("--reference", default="persistence", choices=["persistence", "climatology"],
                   help="the skill scores' reference forecast (persistence)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    common(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("forecast", help="one forecast from a checkpoint into a .zarr or .nc")
    p.add_argument("checkpoint", help="a checkpoint file (it needs no run dir) or a run dir")
    p.add_argument("--domain", required=True, help="a domain of the run or a catalog dataset")
    p.add_argument("--start", required=True, help="the initial time (the last input step)")
    p.add_argument("--steps", type=whole(1), required=True, help="lead steps")
    p.add_argument("--out", required=True, help="the forecast file: F.zarr or F.nc")
    p.add_argument("--members", type=whole(1), default=1, help="ensemble members (noise models)")
    p.add_argument("--graph", help="the graph (.pt, YAML, preset): checked against the "
                                   "checkpoint's; needed for an unseen domain without a preset")
    p.add_argument("--normalise", choices=["training", "own"], default="training",
                   help="an unseen domain's statistics: the training domains' or its own")
    common(p)
    p.set_defaults(func=cmd_forecast)

    p = sub.add_parser("params", help="a notebook's parameters, types and defaults")
    p.add_argument("notebook")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("lab", help="JupyterLab on the notebooks (workbench kernel, offline)")
    p.add_argument("root", nargs="?", default="notebooks", help="folder to serve (notebooks)")
    p.add_argument("--port", type=port_number, default=8888)
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.set_defaults(func=cmd_lab)

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
