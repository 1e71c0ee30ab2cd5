"""reports/index.html: every run with its parameters, status, duration and key figures.

Runs of a batch plan (``runs/<plan>/<entry>/`` with ``batch.json``) are grouped by plan and
step; a step with several entries gets a comparison table, one column per grid parameter
and per key figure; a step whose grid varies ``seed`` adds the spread across seeds (each
numeric key figure's mean, std, min and max per configuration) and, for key figures with a
95 % interval (notebook 04's boundary-band skill), each configuration's mean ± std beside each
run's interval (:func:`interval_table`). Graph-inspection sweeps add
their hanging counts per k and trim; skill
maps add the graphs of the run they scored. Reports are copied beside the index, so the
folder can be shared as is.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from .runs import read_json

MAX_FIGURE_COLUMNS = 14
MAX_K_COLUMNS = 16


def read_json_or_warn(path: Path) -> dict | None:
    """A JSON file's mapping ({} where it does not exist); None where it is malformed or
    half-written, with one warning line on stderr naming the file."""
    try:
        value = read_json(path)
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError included
        value = err
    if isinstance(value, dict):
        return value
    why = f"not valid JSON ({value})" if isinstance(value, Exception) else "not a JSON object"
    print(f"warning: skipping {path}: {why}", file=sys.stderr)
    return None


def collect_runs(runs_dir: str | Path = "runs") -> list[dict]:
    """Every notebook run under ``runs_dir`` (plan runs included), newest first.

    A run is a folder with run.json written for a notebook, or batch.json of a plan entry
    that has not ended yet (status ``running``). Training runs inside a notebook's run dir
    (their run.json has no ``notebook``) are not runs of their own. A run whose run.json or
    batch.json is malformed is skipped, a malformed summary.json left out, each with a
    warning on stderr.
    """
    runs = []
    root = Path(runs_dir)
    folders = {p.parent for p in root.rglob("run.json")} | {p.parent for p in root.rglob("batch.json")}
    for folder in sorted(folders):
        record = read_json_or_warn(folder / "run.json")
        batch = read_json_or_warn(folder / "batch.json")
        if record is None or batch is None or (not batch and "notebook" not in record):
            continue
        if batch and not record:
            record = {"status": "running", "started": batch.get("submitted", "")}
        record.setdefault("notebook", batch.get("step", folder.name))
        record["batch"] = batch
        record["summary"] = read_json_or_warn(folder / "summary.json") or {}
        record["run_dir"] = folder
        runs.append(record)
    return sorted(runs, key=lambda r: r.get("started", ""), reverse=True)


# --------------------------------------------------------------------------- cells


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return "" if value is None else str(value)


def _scalars(summary: Mapping) -> dict:
    figures = summary.get("key_figures", {})
    return {k: v for k, v in figures.items() if v is None or isinstance(v, bool | int | float | str)}


def _pairs(mapping: Mapping, limit: int | None = None) -> str:
    items = list(mapping.items())[:limit]
    return ", ".join(f"{k}={_fmt(v)}" for k, v in items)


def _link(run: Mapping, reports: Path, target: str) -> str:
    """Copy the run's report (and log) beside the index; a link to it, or the plain name."""
    name = html.escape(run.get("batch", {}).get("entry") or run["notebook"])
    source = run["run_dir"] / "report.html"
    parts = [name]
    if source.is_file():
        dest = reports / f"{target}.html"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        parts = [f'<a href="{html.escape(dest.relative_to(reports).as_posix())}">{name}</a>']
    log = run["run_dir"] / "log.txt"
    if log.is_file() and run.get("status") != "ok":
        dest = reports / f"{target}.log.txt"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, dest)
        parts.append(f'(<a href="{html.escape(dest.relative_to(reports).as_posix())}">log</a>)')
    return " ".join(parts)


def _status(run: Mapping) -> str:
    status = html.escape(run.get("status", "?"))
    return f"<span class='status {status}'>{status}</span>"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    head = "".join(f"<th>{h.replace('_', '_<wbr>')}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{css}'><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


# --------------------------------------------------------------------------- sweep tables


def hanging_table(runs: Sequence[Mapping]) -> tuple[list[str], list[list[str]]]:
    """Hanging nodes per k (columns) and trim (rows) of graph-inspection runs' sweeps."""
    rows: list[tuple[str, int, dict[int, int]]] = []
    ks: set[int] = set()
    for run in runs:
        sweep = run["summary"].get("sweep") or {}
        region = sweep.get("region", "all")
        label = _pairs(run.get("batch", {}).get("labels") or {}) or sweep.get("graph", "")
        by_trim: dict[int, dict[int, int]] = {}
        for row in sweep.get("rows", []):
            counts = row["hanging"]
            value = (counts.get("lam_interior", 0) + counts.get("lam_boundary", 0)
                     if region == "lam" else counts.get(region, counts.get("total", 0)))
            by_trim.setdefault(int(row["trim"]), {})[int(row["k"])] = int(value)
            ks.add(int(row["k"]))
        rows += [(label, trim, counts) for trim, counts in sorted(by_trim.items())]
    if not rows:
        return [], []
    ks_sorted = sorted(ks)
    safe = {min((k for k, v in c.items() if v == 0), default=None) for _, _, c in rows} - {None}
    if len(ks_sorted) > MAX_K_COLUMNS:
        step = max(1, len(ks_sorted) // (MAX_K_COLUMNS - len(safe)))
        ks_sorted = sorted(set(ks_sorted[::step]) | safe)
    header = ["graph", "trim", "smallest safe k"] + [f"k={k}" for k in ks_sorted]
    body = []
    for label, trim, counts in rows:
        first_safe = min((k for k, v in counts.items() if v == 0), default=None)
        cells = [f"<span class='{'zero' if counts.get(k) == 0 else 'nonzero'}'>"
                 f"{counts.get(k, '')}</span>" for k in ks_sorted]
        body.append([html.escape(label), str(trim), str(first_safe or "none")] + cells)
    return header, body


def seed_table(runs: Sequence[Mapping], seed: str = "seed"
               ) -> tuple[list[str], list[list[str]]]:
    """Runs of one step grouped by their grid labels but ``seed`` (one row per configuration):
    the number of seeds and, per numeric key figure, ``mean ± std [min, max]`` over the
    seeds' runs that have it (std with n - 1; ``(n=..)`` where fewer runs have it). Empty
    where no run has a ``seed`` label."""
    if not any(seed in (r["batch"].get("labels") or {}) for r in runs):
        return [], []
    groups: dict[str, list[Mapping]] = {}
    for run in runs:
        labels = {k: v for k, v in (run["batch"].get("labels") or {}).items() if k != seed}
        groups.setdefault(_pairs(labels) or "(no other label)", []).append(run)
    figures = list(dict.fromkeys(
        k for r in runs for k, v in _scalars(r["summary"]).items()
        if isinstance(v, int | float) and not isinstance(v, bool)))[:MAX_FIGURE_COLUMNS]
    body = []
    for label, members in groups.items():
        row = [html.escape(label), str(len(members))]
        for figure in figures:
            values = [float(v) for r in members
                      if isinstance(v := r["summary"].get("key_figures", {}).get(figure),
                                    int | float) and not isinstance(v, bool)
                      and math.isfinite(v)]
            row.append(_spread(values, len(members)))
        body.append(row)
    return ["configuration", "seeds"] + [html.escape(f) for f in figures], body


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard deviation (n - 1; 0 for one value) of a non-empty list."""
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0


def _spread(values: Sequence[float], runs: int) -> str:
    """``mean ± std [min, max]`` of ``values`` (one value: itself), ``(n=..)`` when fewer
    than ``runs``."""
    if not values:
        return ""
    n = len(values)
    mean, std = _mean_std(values)
    text = _fmt(mean)
    if n > 1:
        text += f" ± {_fmt(std)} [{_fmt(min(values))}, {_fmt(max(values))}]"
    return text + (f" (n={n})" if n < runs else "")


def _number(value) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def interval_table(runs: Sequence[Mapping], seed: str = "seed"
                   ) -> tuple[list[str], list[list[str]]]:
    """Key figures that carry a 95 % interval (``F`` with ``F_ci_low`` and ``F_ci_high``,
    e.g. notebook 04's boundary-band skill) across seeds: per figure, one row per
    configuration (grid labels but ``seed``) with the mean ± std over its seeds' runs (n - 1),
    the difference of its mean from the best configuration's, whether that difference
    exceeds the two configurations' spreads (``|Δ| > std + std of the best``), each run's
    value with its interval, and the difference from the best paired by seed
    (:func:`_paired`). Empty where no run has a ``seed`` label or no such figure."""
    if not any(seed in (r["batch"].get("labels") or {}) for r in runs):
        return [], []
    figures = list(dict.fromkeys(
        k for r in runs for k in _scalars(r["summary"])
        if f"{k}_ci_low" in r["summary"]["key_figures"]
        and f"{k}_ci_high" in r["summary"]["key_figures"]))
    body = []
    for figure in figures:
        groups: dict[str, list[tuple[str, list]]] = {}
        for run in runs:
            labels = dict(run["batch"].get("labels") or {})
            seed_value = labels.pop(seed, "")
            got = run["summary"].get("key_figures", {})
            cells = [got.get(figure), got.get(f"{figure}_ci_low"), got.get(f"{figure}_ci_high")]
            groups.setdefault(_pairs(labels) or "(no other label)", []).append(
                (str(seed_value), [_number(v) for v in cells]))
        stats = {label: _mean_std(vals) for label, members in groups.items()
                 if (vals := [c[0] for _, c in members if c[0] is not None])}
        best = max(stats, key=lambda label: stats[label][0], default=None)
        for label, members in groups.items():
            runs_text = "; ".join(
                f"{seed}={s}: {_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]" for s, (v, lo, hi) in members
                if v is not None)
            if label not in stats:
                body.append([html.escape(figure), html.escape(label), str(len(members)), "",
                             "", "", html.escape(runs_text), ""])
                continue
            mean, std = stats[label]
            delta = mean - stats[best][0]
            exceeds = ("best" if label == best else
                       "yes" if abs(delta) > std + stats[best][1] else "no")
            n = sum(c[0] is not None for _, c in members)
            paired = "best" if label == best else _paired(members, groups[best])
            body.append([html.escape(figure), html.escape(label), str(n),
                         f"{_fmt(mean)} ± {_fmt(std)}", _fmt(delta), exceeds,
                         html.escape(runs_text), paired])
    header = ["key figure", "configuration", "seeds", "mean ± std across seeds",
              "Δ mean vs best", "|Δ| > spreads", "each run: value [95 % interval]",
              "Δ vs best, paired by seed"]
    return (header, body) if body else ([], [])


def _paired(members: list, best: list) -> str:
    """This configuration minus the best one seed by seed (the same seed: the same initial
    weights and batches): ``mean ± std (n=..)`` of the differences, and ``same sign on
    every seed`` where n > 1 and none is 0 or of the other sign."""
    theirs = {seed: cells[0] for seed, cells in best if cells[0] is not None}
    diffs = [cells[0] - theirs[seed] for seed, cells in members
             if cells[0] is not None and seed in theirs]
    if not diffs:
        return ""
    mean, std = _mean_std(diffs)
    same = len(diffs) > 1 and (all(d > 0 for d in diffs) or all(d < 0 for d in diffs))
    return f"{_fmt(mean)} ± {_fmt(std)} (n={len(diffs)})" + (
        ", same sign on every seed" if same else "")


def _graphs_of(run: Mapping) -> str:
    """The graphs of the training run a skill-maps run scored (from its graphs.json)."""
    trained = run["summary"].get("run", {}).get("run_dir")
    graphs = (read_json_or_warn(Path(trained) / "graphs.json") or {}) if trained else {}
    return ", ".join(f"{d}: {g.get('graph')}" for d, g in graphs.items())


# --------------------------------------------------------------------------- page


def _step_section(step: str, runs: list[Mapping], reports: Path, plan: str) -> str:
    runs = sorted(runs, key=lambda r: r["batch"].get("entry", ""))
    labels = list(dict.fromkeys(k for r in runs for k in (r["batch"].get("labels") or {})))
    notebook = html.escape(runs[0]["notebook"])
    many = len(runs) > 1
    figures = list(dict.fromkeys(k for r in runs for k in _scalars(r["summary"])))
    figures = figures[:MAX_FIGURE_COLUMNS]
    skill = runs[0]["notebook"].startswith("04")
    header = ["run", "status", "seconds"] + [html.escape(k) for k in labels]
    header += ["graphs"] if skill else []
    header += [html.escape(f) for f in figures] if many else ["key figures"]
    header += ["parameters", "error"]
    rows = []
    for run in runs:
        row = [_link(run, reports, f"{plan}/{run['batch']['entry']}"), _status(run),
               _fmt(run.get("duration_s"))]
        row += [html.escape(_fmt((run["batch"].get("labels") or {}).get(k))) for k in labels]
        row += [html.escape(_graphs_of(run))] if skill else []
        values = _scalars(run["summary"])
        row += ([html.escape(_fmt(values.get(f))) for f in figures] if many
                else [html.escape(_pairs(values, 10))])
        row += [html.escape(_pairs(run.get("params") or {})),
                html.escape(run.get("error") or "")]
        rows.append(row)
    title = f"<h3>step {html.escape(step)} <small>({notebook}, {len(runs)} run"
    title += f"{'s' if many else ''}{', comparison' if many else ''})</small></h3>"
    parts = [title, _table(header, rows, "comparison" if many else "")]
    head, body = seed_table(runs)
    if body:
        parts += ["<h4>across seeds: mean ± std [min, max] per configuration</h4>",
                  _table(head, body, "seeds")]
    head, body = interval_table(runs)
    if body:
        parts += ["<h4>across seeds, with each run's 95 % interval (e.g. the boundary band's "
                  "skill: is a difference between configurations larger than the spread "
                  "across seeds, and does it keep its sign seed by seed?)</h4>",
                  _table(head, body, "intervals")]
    if runs[0]["notebook"].startswith("01"):
        head, body = hanging_table(runs)
        if body:
            parts += ["<h4>hanging nodes per k and trim</h4>", _table(head, body, "hanging")]
    return "\n".join(parts)


def _plan_section(plan: str, runs: list[Mapping], reports: Path) -> str:
    steps: dict[str, list] = {}
    for run in sorted(runs, key=lambda r: r["batch"].get("submitted", "")):
        steps.setdefault(run["batch"].get("step", "?"), []).append(run)
    counts = {s: sum(r.get("status") == s for r in runs) for s in ("ok", "failed", "running")}
    source = html.escape(runs[0]["batch"].get("plan_file", ""))
    head = (f"<h2 id='plan-{html.escape(plan)}'>plan {html.escape(plan)}</h2><p>{source}: "
            f"{counts['ok']} ok, {counts['failed']} failed, {counts['running']} running</p>")
    return head + "\n".join(_step_section(s, r, reports, plan) for s, r in steps.items())


def write_index(runs_dir: str | Path = "runs", reports_dir: str | Path = "reports") -> Path:
    """Copy each run's report into ``reports_dir`` and write ``index.html`` linking them."""
    reports = Path(reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(runs_dir)
    plans: dict[str, list] = {}
    single = []
    for run in runs:
        (plans.setdefault(run["batch"]["plan"], []) if run["batch"] else single).append(run)
    sections = [_plan_section(name, plan_runs, reports) for name, plan_runs in plans.items()]
    if single:
        rows = [[_link(run, reports, run["run_dir"].name), _status(run),
                 html.escape(run.get("started", "")), _fmt(run.get("duration_s")),
                 html.escape(_pairs(run.get("params") or {}) or "defaults"),
                 html.escape(_pairs(_scalars(run["summary"]), 8)),
                 html.escape(run.get("error") or "")] for run in single]
        sections.append("<h2>single runs</h2>" + _table(
            ["notebook", "status", "started", "seconds", "parameters", "key figures", "error"],
            rows))
    page = INDEX_TEMPLATE.format(
        generated=dt.datetime.now().isoformat(timespec="seconds"), runs=len(runs),
        body="\n".join(sections) or "<p>No runs yet: <code>workbench batch demo</code>.</p>")
    target = reports / "index.html"
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(page)
    os.replace(tmp, target)
    return target


INDEX_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>workbench reports</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
td, th {{ border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top;
  font-size: 0.9em; }}
th {{ background: #f3f3f3; max-width: 9em; }}
td {{ max-width: 22em; overflow-wrap: break-word; }}
.status.ok {{ color: #17692e; }} .status.failed {{ color: #b00020; font-weight: bold; }}
.status.running {{ color: #8a6d00; }}
table.hanging .zero {{ color: #17692e; font-weight: bold; }}
table.hanging .nonzero {{ color: #b00020; }}
small {{ color: #666; font-weight: normal; }}
</style></head>
<body><h1>workbench reports</h1><p>{runs} runs; generated {generated}.</p>
{body}
</body></html>
"""
