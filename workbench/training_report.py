"""Notebook 03 (training): the config as a small table, a run's metrics.csv as tidy tables,
the final validation against persistence, the parameter table and the summary.json.

Lead step k is k times the run's time step (:func:`run_step_hours`: the step its sampling
config trains at, the config's ``time_step`` or its domains' catalog ``time_step``), so a
3-hourly dataset reports leads of 3, 6, 9 h.
"""

from __future__ import annotations

import json
from pathlib import Path

from .checkpoints import load_checkpoint, model_state, read_run_config
from .config import load_yaml
from .errors import WorkbenchError
from .sampling_config import common_step
from .times import hours, step_text
from .training_config import TrainingConfig, sampling_config


def run_step_hours(run_dir: str | Path) -> float:
    """Hours between a run's lead steps: the common step of its sampling config (from the
    run's config.yaml: its ``time_step``, else its domains' catalog ``time_step``)."""
    return hours(common_step(sampling_config(read_run_config(run_dir))))


def config_table(config: TrainingConfig):
    """The key settings of a training config as a one-column DataFrame (index: setting); one
    row per domain and per model setting, so no value is long enough to be cut short."""
    import pandas as pd

    sampling = config.sampling
    opt = config.optimizer
    step = common_step(sampling_config(config))
    rows: dict[str, object] = {"name": config.name, "task": config.task}
    for d in sampling.get("domains", []):
        rows[f"domain {d['name']}"] = (f"dataset {d.get('dataset', d['name'])}, graph "
                                       f"{d.get('graph')}, weight {d.get('weight', 1.0):g}")
    rows.update({
        "variables": ", ".join(sampling.get("variables", [])),
        "forcings": ", ".join(sampling.get("forcings", [])) or "-",
        "statics": ", ".join(sampling.get("statics", [])) or "-",
        "losses": ", ".join(config.loss.losses),
    })
    rows.update({f"model.{k}": v for k, v in config.model.items()})
    rows.update({
        "members": config.members,
        "max_steps": config.max_steps,
        "batch_size": sampling.get("batch_size"),
        "optimizer": f"AdamW lr={opt.lr:g}, {opt.schedule}, warmup {opt.warmup_steps}",
        "validation": (f"every {config.val_every} steps, {config.val_rollout} lead steps "
                       f"of {step_text(step)} ({config.val_rollout * hours(step):g} h)"),
        "seed": config.seed,
    })
    return pd.DataFrame({"value": [str(v) for v in rows.values()]},
                        index=pd.Index(list(rows), name="setting"))


def _metrics_path(run_dir: str | Path) -> Path:
    path = Path(run_dir)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.is_file():
        raise WorkbenchError(f"{path} does not exist: train first (the CSV logger writes "
                             "metrics.csv into the run dir)")
    return path


def _domain_order(run_dir: Path, found: list[str]) -> list[str]:
    """Domains in the run's order (graphs.json), else in the order they were found."""
    graphs_file = run_dir / "graphs.json"
    order = list(json.loads(graphs_file.read_text())) if graphs_file.is_file() else []
    return [d for d in order if d in found] + [d for d in found if d not in order]


def read_metrics(run_dir: str | Path, step_hours: float | None = None):
    """A run's metrics.csv (run dir or file) as two tidy DataFrames ``(train, val)``.

    ``train``: one row per training step and domain: ``step``, ``domain``, ``loss`` (the
    domain's training loss; the rows Lightning logs as NaN for the other domains are dropped)
    and, with several losses, one column per loss term. ``val``: one row per validation,
    domain and lead step: ``step``, ``domain``, ``lead_step``, ``lead_hours``, ``model_mse``,
    ``persistence_mse`` (normalised units, area-weighted). ``lead_hours`` is ``lead_step``
    times ``step_hours``, by default the run's own step (:func:`run_step_hours`).
    """
    import re

    import pandas as pd

    path = _metrics_path(run_dir)
    table = pd.read_csv(path, float_precision="round_trip")
    loss_columns = [c for c in table.columns if c.startswith("train/loss_")]
    val_columns = {c: re.match(r"^val/(mse|persistence|mean)_(.+)_step(\d+)$", c)
                   for c in table.columns}
    # masked tasks (bert, interpolation) log the mean as their baseline: the same column here
    val_columns = {c: (m.group(1).replace("mean", "persistence"), *m.groups()[1:])
                   for c, m in val_columns.items() if m}
    found = [c.removeprefix("train/loss_") for c in loss_columns]
    found += [d for _, d, _ in val_columns.values() if d not in found]
    domains = _domain_order(path.parent, found)

    parts = []
    for domain in domains:
        column = f"train/loss_{domain}"
        if column not in table:
            continue
        terms = {c: c[len("train/"):-len(domain) - 1] for c in table.columns
                 if c.startswith("train/") and c.endswith(f"_{domain}") and c != column
                 and c not in loss_columns}
        rows = table[["step", column, *terms]].dropna(subset=[column])
        rows = rows.rename(columns={column: "loss", **terms})
        parts.append(rows.assign(domain=domain))
    train = (pd.concat(parts, ignore_index=True) if parts else
             pd.DataFrame(columns=["step", "domain", "loss"]))
    train = train[["step", "domain", "loss", *[c for c in train.columns
                                               if c not in ("step", "domain", "loss")]]]
    train["step"] = train["step"].astype(int)
    train["loss"] = train["loss"].astype(float)

    records = []
    for column, (kind, domain, lead) in val_columns.items():
        rows = table[["step", column]].dropna(subset=[column])
        for step, value in zip(rows["step"], rows[column], strict=True):
            records.append((int(step), domain, int(lead), kind, float(value)))
    val = pd.DataFrame(records, columns=["step", "domain", "lead_step", "kind", "value"])
    val = (val.pivot_table(index=["step", "domain", "lead_step"], columns="kind",
                           values="value", aggfunc="last")
           .reindex(columns=["mse", "persistence"])
           .rename(columns={"mse": "model_mse", "persistence": "persistence_mse"})
           .reset_index())
    val.columns.name = None
    if step_hours is None and not val.empty:
        step_hours = run_step_hours(path.parent)
    val.insert(3, "lead_hours", val["lead_step"] * (step_hours or 0.0))
    ordered = []
    for frame, keys in ((train, ["domain", "step"]), (val, ["domain", "step", "lead_step"])):
        frame = frame.assign(domain=pd.Categorical(frame["domain"], categories=domains))
        frame = frame.sort_values(keys, ignore_index=True)
        ordered.append(frame.assign(domain=frame["domain"].astype(str)))
    return tuple(ordered)


def validation_table(run_dir: str | Path, step: int | None = None,
                     step_hours: float | None = None):
    """Each domain's final validation (or the one at ``step``) per lead step: ``domain``,
    ``lead_step``, ``lead_hours``, ``step``, ``model_mse``, ``persistence_mse`` and
    ``skill`` = 1 - model / persistence (normalised units, area-weighted)."""
    _, val = read_metrics(run_dir, step_hours)
    if val.empty:
        raise WorkbenchError(f"{run_dir}: metrics.csv holds no validation yet (validation runs "
                             "every val_every steps and at the end)")
    if step is None:
        last = val.groupby("domain", sort=False)["step"].transform("max")
        rows = val[val["step"] == last]
    else:
        rows = val[val["step"] == int(step)]
        if rows.empty:
            raise WorkbenchError(f"{run_dir}: no validation at step {step} (validated at "
                                 f"steps {sorted(val['step'].unique().tolist())})")
    rows = rows[["domain", "lead_step", "lead_hours", "step", "model_mse", "persistence_mse"]]
    rows = rows.assign(skill=1.0 - rows["model_mse"] / rows["persistence_mse"])
    return rows.reset_index(drop=True)


def run_info(run_dir: str | Path) -> dict:
    """A training run's run.json: status, steps, parameters, samples/s, graph ids."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise WorkbenchError(f"{run_dir} has no run.json: not a training run dir, or the run "
                             "was stopped before it finished")
    return json.loads(path.read_text())


def parameter_table(run_dir: str | Path):
    """Parameters per top-level model part (encoder, processor, ...) and their total, read from
    the run's ``checkpoints/last.ckpt`` (every tensor of the model's saved state)."""
    import pandas as pd

    state = load_checkpoint(Path(run_dir) / "checkpoints" / "last.ckpt")
    counts: dict[str, int] = {}
    for key, value in model_state(state.get("state_dict", state)).items():
        part = key.split(".")[0]
        counts[part] = counts.get(part, 0) + int(value.numel())
    total = sum(counts.values())
    table = pd.DataFrame({"parameters": list(counts.values())},
                         index=pd.Index(list(counts), name="part"))
    table["share"] = table["parameters"] / max(total, 1)
    table.loc["total"] = [total, 1.0]
    table["parameters"] = table["parameters"].astype(int)
    return table


def notebook_summary(run_dir: str | Path, step_hours: float | None = None) -> dict:
    """summary.json of notebook 03: final validation MSE of the model and of persistence at
    the first and last lead step per domain, skill, whether the model beats persistence at
    every lead step, parameters, samples/s, steps and graph ids (``key_figures`` first); the
    hours of one lead step (``lead_step_hours``)."""
    run_dir = Path(run_dir)
    step_hours = run_step_hours(run_dir) if step_hours is None else step_hours
    table = validation_table(run_dir, step_hours=step_hours)
    info = run_info(run_dir)
    train, _ = read_metrics(run_dir, step_hours)
    domains = list(dict.fromkeys(table["domain"]))
    first, last = int(table["lead_step"].min()), int(table["lead_step"].max())

    def at(domain: str, lead: int, column: str) -> float:
        rows = table[(table["domain"] == domain) & (table["lead_step"] == lead)]
        return float(rows[column].iloc[0])

    key_figures: dict = {}
    for column, label in (("model_mse", "val_mse"), ("persistence_mse", "persistence_mse"),
                          ("skill", "skill")):
        for domain in domains:
            for lead in dict.fromkeys((first, last)):
                key_figures[f"{label}_{domain}_step{lead}"] = at(domain, lead, column)
    for domain in domains:
        rows = table[table["domain"] == domain]
        key_figures[f"beats_persistence_{domain}"] = bool(
            (rows["model_mse"] < rows["persistence_mse"]).all())
    key_figures.update({
        "parameters": int(info.get("parameters") or 0),
        "samples_per_s": (float(info["samples_per_s"]) if info.get("samples_per_s") is not None
                          else None),
        "steps": int(info.get("steps") or 0),
    })
    for domain, graph_id in (info.get("graphs") or {}).items():
        key_figures[f"graph_id_{domain}"] = graph_id
    final_loss = {domain: float(rows["loss"].tail(20).mean())
                  for domain, rows in train.groupby("domain", sort=False)}
    config = None
    saved = run_dir / "config.yaml"
    if saved.is_file():
        config = load_yaml(saved)
    return {
        "key_figures": key_figures,
        "validation": [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                       for row in table.to_dict("records")],
        "train_loss_last20": final_loss,
        "lead_step_hours": step_hours,
        "run": info,
        "config": config,
    }
