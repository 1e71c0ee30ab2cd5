"""Run against run across seeds: the questions of a study plan (seed 000's) answered with
each seed's 95 % interval and the spread across seeds.

``trained_runs(runs_dir)`` finds a plan's finished training runs (notebook 03 entries),
keyed by (config, seed). ``compare_across_seeds`` forecasts each (run, domain) once and, per
comparison ``{question, domain, a, b}`` and per seed both configs trained, scores A and B
against the reference on the points both predict (:func:`workbench.comparison.paired_errors`,
as ``workbench compare``): the skill of each (the mean over variables of the interior skill
``evaluate`` reports), their difference A - B per lead and its 95 % interval from ONE block
bootstrap over initial times shared by every variable, both runs and the reference
(:func:`workbench.intervals.mean_difference_interval`). ``seed_summary`` gives the mean ±
std across seeds and whether every seed agrees; ``notebook_summary`` notebook 05's key
figures.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import AfterValidator

from . import evaluation, intervals
from .comparison import PairedErrors, paired_errors
from .config import load_yaml, parse, typed
from .errors import WorkbenchError

__all__ = ["Comparison", "STUDY_COLUMNS", "SUMMARY_COLUMNS", "check_comparisons",
           "compare_across_seeds", "notebook_summary", "runs_table", "seed_summary",
           "trained_runs"]

TRAINING_NOTEBOOK = "03_training"


def _name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
        raise ValueError("a name of letters, digits and '_.-' (it goes into key-figure names)")
    return value


def _config(value: str) -> str:
    if not value.strip():
        raise ValueError("a config name as the plan gives it, e.g. seed000-global")
    return value


Name = Annotated[str, AfterValidator(_name)]
ConfigName = Annotated[str, AfterValidator(_config)]
STUDY_COLUMNS = ["question", "domain", "a", "b", "seed", "lead_hours", "skill_a", "skill_b",
                 "difference", "ci_low", "ci_high", "significant"]
SUMMARY_COLUMNS = ["question", "domain", "a", "b", "lead_hours", "mean", "std", "seeds",
                   "consistent", "exceeds_spread"]
_KEYS = ["question", "domain", "a", "b"]
REGIONS = ("all", "boundary_band")  # where the skills are compared


@typed
@dataclass(frozen=True)
class Comparison:
    """Run A against run B on one domain: does config ``a`` beat config ``b`` there?"""

    question: Name  # e.g. forgetting, transfer, generalisation
    domain: Name  # the domain both forecast (a training domain or an unseen one)
    a: ConfigName  # config names as the plan gives them
    b: ConfigName


# --------------------------------------------------------------------------- runs


def trained_runs(runs_dir: str | Path) -> dict[tuple[str, int], Path]:
    """The finished training runs of a plan's runs folder: each entry that ran notebook 03
    and whose ``train/run.json`` says finished, keyed by (config, seed): the config its
    params.yaml names (the training config's name where it names none; the params, not
    the batch labels, which a foreach entry partly inherits from its parent) and the seed the run trained with (its
    config.yaml: the grid's seed or a ``${STEP.params.seed}`` resolved). One error line where
    the folder has none or two entries trained the same config and seed."""
    root = Path(runs_dir).expanduser()
    if not root.is_dir():
        raise WorkbenchError(f"runs folder {root} does not exist: give a plan's runs folder, "
                             "e.g. runs/seed000")
    found: dict[tuple[str, int], Path] = {}
    for entry in sorted(p for p in root.iterdir() if p.is_dir()):
        train = entry / "train"
        if not (entry / f"{TRAINING_NOTEBOOK}.ipynb").is_file() or not _finished(train):
            continue
        config = evaluation.run_config(train)
        params = load_yaml(entry / "params.yaml") if (entry / "params.yaml").is_file() else {}
        key = (str((params or {}).get("config") or config.name), int(config.seed))
        if key in found:
            raise WorkbenchError(f"{found[key].parent.name} and {entry.name} in {root} both "
                                 f"trained {key[0]} with seed {key[1]}: remove one")
        found[key] = train.resolve()
    if not found:
        raise WorkbenchError(f"no finished training run in {root.resolve()} (an entry of "
                             f"notebook {TRAINING_NOTEBOOK} whose train/run.json says finished):"
                             " run the plan first (workbench batch seed000) or give its folder")
    return dict(sorted(found.items()))


def _finished(train: Path) -> bool:
    """``train`` is a finished training run (evaluation.find_run's test, on that folder)."""
    if not (train / "run.json").is_file():
        return False
    try:
        return evaluation.find_run(search=train) == train.resolve()
    except WorkbenchError:
        return False


def runs_table(runs: Mapping[tuple[str, int], Path]) -> pd.DataFrame:
    """The runs :func:`trained_runs` found: config, seed and run dir, one row each."""
    return pd.DataFrame([(c, s, str(p)) for (c, s), p in runs.items()],
                        columns=["config", "seed", "run_dir"]).set_index(["config", "seed"])


def check_comparisons(comparisons: Sequence, runs: Mapping[tuple[str, int], Path]
                      ) -> list[Comparison]:
    """``comparisons`` (mappings question, domain, a, b) checked: keys and types, configs
    with finished runs, a seed both trained and a domain the runs can forecast."""
    if not isinstance(comparisons, list | tuple) or not comparisons:
        raise WorkbenchError("comparisons must be a non-empty list of {question, domain, a, b}, "
                             'e.g. [{"question": "forgetting", "domain": "global", "a": '
                             '"seed000-finetune", "b": "seed000-global"}]')
    checked = [parse(Comparison, raw, f"comparisons[{i}]") for i, raw in enumerate(comparisons)]
    configs = sorted({c for c, _ in runs})
    for i, comp in enumerate(checked):
        for config in (comp.a, comp.b):
            if config not in configs:
                raise WorkbenchError(f"comparisons[{i}] ({comp.question} on {comp.domain}): no "
                                     f"finished run of config {config!r}; the runs folder has "
                                     f"{', '.join(configs)}")
        seeds = _seeds(comp, runs)
        if not seeds:
            raise WorkbenchError(f"comparisons[{i}]: {comp.a} and {comp.b} share no seed "
                                 f"({_seed_text(comp.a, runs)}; {_seed_text(comp.b, runs)}); "
                                 "compare configs trained with the same seeds")
        evaluation.domain_config(evaluation.run_config(runs[comp.a, seeds[0]]), comp.domain)
    return checked


def _seeds(comp: Comparison, runs: Mapping[tuple[str, int], Path]) -> list[int]:
    return sorted({s for c, s in runs if c == comp.a} & {s for c, s in runs if c == comp.b})


def _seed_text(config: str, runs: Mapping[tuple[str, int], Path]) -> str:
    return f"{config}: seeds {', '.join(str(s) for c, s in sorted(runs) if c == config)}"


# --------------------------------------------------------------------------- comparisons


def compare_across_seeds(runs: Mapping[tuple[str, int], Path] | str | Path,
                         comparisons: Sequence, split: str = "test", steps: int = 4,
                         reference: str = "persistence", cache: str | Path | None = None,
                         progress: Callable[[str], object] | None = print,
                         region: str = "all") -> pd.DataFrame:
    """Per comparison, seed and lead time (:data:`STUDY_COLUMNS`): the skill of A and of B
    against ``reference`` on ``domain`` (mean over variables), the difference A - B and its
    95 % interval, ``significant`` where it excludes 0. ``runs``: :func:`trained_runs`'
    mapping or a runs folder. Each (run, domain) is forecast once (``evaluation.evaluate``:
    ``steps`` lead steps from every initial time of ``split``), one domain after another so
    that only one domain's forecasts are held; ``progress`` gets one line per forecast.
    ``region``: ``all`` (the points both runs predict) or ``boundary_band`` (each run's own
    boundary band, :func:`workbench.boundary_band.difference_interval`; seed 004)."""
    if region not in REGIONS:
        raise WorkbenchError(f"region {region!r} is not one of {', '.join(REGIONS)}")
    runs = trained_runs(runs) if isinstance(runs, str | os.PathLike) else dict(runs)
    checked = check_comparisons(comparisons, runs)
    by_domain: dict[str, list[Comparison]] = {}
    for comp in checked:
        by_domain.setdefault(comp.domain, []).append(comp)
    needed = {d: list(dict.fromkeys((c, s) for comp in comps for s in _seeds(comp, runs)
                                    for c in (comp.a, comp.b)))
              for d, comps in by_domain.items()}
    total, done, rows = sum(map(len, needed.values())), 0, []
    for domain, comps in by_domain.items():
        files = {}
        for config, seed in needed[domain]:
            started = time.monotonic()
            files[config, seed] = evaluation.evaluate(runs[config, seed], domain, split, steps,
                                                      cache=cache, progress=False)
            done += 1
            if progress is not None:
                progress(f"forecast {done}/{total}: {config} seed {seed} on {domain} ({split}, "
                         f"{steps} steps) in {time.monotonic() - started:.0f} s")
        rows += _domain_rows(comps, files, runs, reference, cache, region)
    table = pd.DataFrame(rows, columns=STUDY_COLUMNS[:-1])
    table["significant"] = (table["ci_low"] > 0) | (table["ci_high"] < 0)
    return table


def _domain_rows(comps: list[Comparison], files: Mapping[tuple[str, int], Path],
                 runs: Mapping[tuple[str, int], Path], reference: str,
                 cache: str | Path | None, region: str = "all") -> list[tuple]:
    """The rows of one domain's comparisons, from its forecast files (two in memory at once)."""
    from .forecast_files import read_forecast

    rows, truths = [], {}
    for comp in comps:
        for seed in _seeds(comp, runs):
            fa, fb = read_forecast(files[comp.a, seed]), read_forecast(files[comp.b, seed])
            for fc in (fa, fb):  # one truth per dataset (a trimmed run forecasts its own)
                if fc.attrs["dataset"] not in truths:
                    truths[fc.attrs["dataset"]] = evaluation.truth_for(fc, cache)
            ya, yb = truths[fa.attrs["dataset"]], truths[fb.attrs["dataset"]]
            train = tuple(evaluation.run_config(runs[comp.a, seed]).sampling["splits"]["train"])
            if region == "boundary_band":
                values = _band_values(comp, fa, fb, ya, yb, train, reference)
            else:
                values = _pair_values(paired_errors(fa, fb, ya, train, reference))
            rows += [(comp.question, comp.domain, comp.a, comp.b, seed, *v) for v in values]
    return rows


def _band_values(comp: Comparison, fa, fb, ya, yb, train: tuple[str, str],
                 reference: str) -> list[tuple]:
    """Per lead: (hours, band skill A, band skill B, difference, low, high)."""
    from . import boundary_band

    a, b = (boundary_band.band_errors(fc, y, train, reference) for fc, y in ((fa, ya), (fb, yb)))
    if a is None or b is None:
        raise WorkbenchError(f"domain {comp.domain!r} has no boundary band in "
                             f"{comp.a if a is None else comp.b}'s forecast (a global grid): "
                             "compare it with region all")
    diff, low, high = boundary_band.difference_interval(a, b)
    skill_a, skill_b = (boundary_band.mean_skill(e.model, e.reference, e.counted)
                        for e in (a, b))
    return [tuple(float(x) for x in v) for v in zip(a.lead_hours, skill_a, skill_b, diff, low,
                                                      high, strict=True)]


def _pair_values(pair: PairedErrors) -> list[tuple]:
    """Per lead: (hours, skill A, skill B, difference, low, high), means over the variables."""
    names = list(pair.a.data_vars)
    per_variable = [pair.arrays(n) for n in names]  # (a, b, reference, where) of [init, lead]
    stacked = [np.stack([v[k] for v in per_variable], axis=1) for k in range(3)]
    where = None if pair.counted is None else np.stack([v[3] for v in per_variable], axis=1)
    diff, low, high = intervals.mean_difference_interval(*stacked, where, pair.block)
    skill_a, skill_b = (pair.skill(k)[names].to_array().mean("variable").values for k in "ab")
    return [tuple(float(x) for x in values) for values in
            zip(pair.lead_hours, np.atleast_1d(skill_a), np.atleast_1d(skill_b), diff, low, high,
                strict=True)]


# --------------------------------------------------------------------------- across seeds


def seed_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per comparison and lead (:data:`SUMMARY_COLUMNS`): the mean and std (n - 1; NaN for
    one seed) of the per-seed differences, the number of seeds, ``consistent`` (every seed's
    interval excludes 0 on the same side) and ``exceeds_spread`` (|mean| > std)."""
    marked = table.assign(above=table["ci_low"] > 0, below=table["ci_high"] < 0)
    out = marked.groupby([*_KEYS, "lead_hours"], sort=False).agg(
        mean=("difference", "mean"), std=("difference", "std"), seeds=("seed", "size"),
        above=("above", "all"), below=("below", "all")).reset_index()
    out["consistent"] = out.pop("above") | out.pop("below")
    out["exceeds_spread"] = out["mean"].abs() > out["std"]  # False where std is NaN
    return out[SUMMARY_COLUMNS]


def figure_names(summary: pd.DataFrame) -> dict[tuple[str, str, str, str], str]:
    """Key-figure stems per comparison: ``<question>_<domain>`` where that pair is unique,
    else ``<question>_<domain>_<a>_vs_<b>`` with the configs' common prefix dropped."""
    comps = list(dict.fromkeys(summary[_KEYS].itertuples(index=False, name=None)))
    counts = pd.Series([(q, d) for q, d, _, _ in comps]).value_counts()
    names = {}
    for q, d, a, b in comps:
        names[q, d, a, b] = f"{q}_{d}" if counts[(q, d)] == 1 else f"{q}_{d}_{_short(a, b)}"
    return names


def _short(a: str, b: str) -> str:
    """``a_vs_b`` without their common prefix up to a '-' or '_' (seed000-joint-all ->
    joint-all)."""
    common = os.path.commonprefix([a, b])
    cut = max(common.rfind("-"), common.rfind("_")) + 1
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{a[cut:]}_vs_{b[cut:]}")


def notebook_summary(table: pd.DataFrame, summary: pd.DataFrame,
                     runs: Mapping[tuple[str, int], Path], reference: str = "persistence",
                     split: str = "test", region: str = "all") -> dict:
    """Notebook 05's summary.json: key figures at the first and the last lead of every
    comparison (``<stem>_<h>h``: the mean difference A - B across seeds, then ``_std``,
    ``_seeds``, ``_consistent``, ``_exceeds_spread``; stems from :func:`figure_names`), the
    means first so the index shows them; the tables; the runs compared."""
    plain = evaluation.plain_value
    names = figure_names(summary)
    means, details = {}, {}
    for row in summary.itertuples(index=False):
        leads = summary.loc[(summary[_KEYS] == [row.question, row.domain, row.a, row.b]).all(
            axis=1), "lead_hours"]
        if row.lead_hours not in (leads.iloc[0], leads.iloc[-1]):
            continue
        key = f"{names[row.question, row.domain, row.a, row.b]}_{row.lead_hours:g}h"
        means[key] = plain(float(row.mean))
        details.update({f"{key}_std": plain(float(row.std)), f"{key}_seeds": int(row.seeds),
                        f"{key}_consistent": bool(row.consistent),
                        f"{key}_exceeds_spread": bool(row.exceeds_spread)})
    records = [{k: plain(v) for k, v in r.items()} for r in table.to_dict("records")]
    return {"key_figures": {**means, **details},
            "reference": reference, "split": split, "region": region,
            "comparisons": {name: dict(zip(["question", "domain", "a", "b"], key, strict=True))
                            for key, name in names.items()},
            "per_seed": records,
            "across_seeds": [{k: plain(v) for k, v in r.items()}
                             for r in summary.to_dict("records")],
            "runs": {f"{c} seed {s}": str(p) for (c, s), p in runs.items()}}
