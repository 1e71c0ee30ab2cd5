"""Inference and scores: roll a trained run out on any domain, score it against baselines.

``forecast(run_dir, domain)`` rolls the run's last checkpoint out from every initial time of a
split (the domain may be one the model never trained on: its graph comes from
``configs/graphs/demo-<domain>.yaml`` or ``graph=``) and returns physical-unit forecasts as
``xr.Dataset`` (init_time, lead_time, [member], grid); ``evaluate`` writes them to
``<run_dir>/forecasts/<domain>-<split>.zarr`` atomically. ``scores`` compares them with the
truth, persistence and a climatology of the training period (``skill``'s WB2 metrics).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from tqdm.auto import tqdm

from . import catalog, skill
from .config import resolve_config
from .errors import WorkbenchError
from .sampling import DomainConfig, DomainData, MultiDomainDataset
from .training import (
    Trainer,
    _model_state,
    add_lora,
    domain_graph,
    load_checkpoint,
    load_weights,
    sampling_config,
    training_config_from_dict,
)


def run_config(run_dir: str | Path):
    import yaml

    saved = Path(run_dir) / "config.yaml"
    if not saved.is_file():
        raise WorkbenchError(f"{run_dir} is not a training run dir (no config.yaml): train "
                             "first with `workbench train`")
    if not (Path(run_dir) / "checkpoints" / "last.ckpt").is_file():
        raise WorkbenchError(f"{run_dir} has no checkpoints/last.ckpt: the run has not saved "
                             "a checkpoint yet (train longer or resume it)")
    return training_config_from_dict(yaml.safe_load(saved.read_text()), str(saved))


def domain_config(config, domain: str, graph: str | None = None) -> DomainConfig:
    """The run's own domain config, or one for a catalog dataset it never trained on."""
    for d in config.sampling["domains"]:
        if d["name"] == domain:
            return DomainConfig(name=domain, dataset=d["dataset"], graph=graph or d.get("graph"))
    entry = catalog.get_entry(domain)  # an unknown name is a one-line catalog error
    if graph is None:
        try:
            resolve_config(f"demo-{domain}", "graphs")
        except WorkbenchError:
            raise WorkbenchError(f"domain {domain!r} is not one of this run's domains and has "
                                 f"no configs/graphs/demo-{domain}.yaml: pass --graph") from None
        graph = f"demo-{domain}"
    return DomainConfig(name=domain, dataset=entry.name, graph=graph)


def _module_for(config, run_dir: Path, domain: DomainConfig, data: DomainData,
                cache) -> Trainer:
    graph = domain_graph(domain.graph, domain.name, domain.dataset, config.boundary_cells, cache)
    module = Trainer(config, [graph], list(data.variables), [data.normalisers["variables"]])
    if config.finetune.lora:
        add_lora(module.model, config.finetune.lora_rank, config.finetune.lora_alpha,
                 config.finetune.lora_include)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    load_weights(module.model, _model_state(load_checkpoint(ckpt)["state_dict"]), str(ckpt))
    return module.eval()


@torch.no_grad()
def forecast(run_dir: str | Path, domain: str, split: str = "test", steps: int | None = None,
             members: int = 1, graph: str | None = None, batch_size: int = 4,
             cache: str | Path | None = None, progress: bool = True) -> xr.Dataset:
    """Forecasts from every initial time of ``split``: physical units, dims (init_time,
    lead_time, [member], grid). LAM boundary nodes come from the truth at every step."""
    import dataclasses

    run_dir = Path(run_dir)
    config = run_config(run_dir)
    if config.task != "forecast":
        raise WorkbenchError(f"run {run_dir.name} trained the {config.task!r} task; only "
                             "forecast runs roll out")
    if members > 1 and not config.model.get("noise_channels"):
        raise WorkbenchError("members > 1 needs a model trained with noise_channels > 0")
    steps = int(steps or config.val_rollout)
    dom = domain_config(config, domain, graph)
    sampling = dataclasses.replace(sampling_config(config), rollout=steps, domains=(dom,))
    data = DomainData(sampling, dom, None, cache)
    module = _module_for(config, run_dir, dom, data, cache)
    dataset = MultiDomainDataset([data])
    starts = data.samples(split)  # one-line error when the split is shorter than the window
    n_in = sampling.input_steps
    outputs = []
    chunks = range(0, len(starts), batch_size)
    for i in tqdm(chunks, desc=f"forecast {domain}", disable=not progress):
        batch = dataset.collate([dataset[(0, int(t))] for t in starts[i:i + batch_size]])
        pred = module.rollout_forecast(batch, steps, members)  # [B, (M,) steps, V, G]
        outputs.append(data.normalisers["variables"].denormalise(pred).numpy())
    values = np.concatenate(outputs)
    step = pd.Timedelta(data.times[1] - data.times[0])
    init = data.times[np.asarray(starts) + n_in - 1]
    dims = ["init_time", "member", "lead_time", "grid"] if members > 1 else [
        "init_time", "lead_time", "grid"]
    coords = {"init_time": init, "lead_time": pd.to_timedelta(np.arange(1, steps + 1) * step),
              "latitude": ("grid", data.ds["latitude"].values),
              "longitude": ("grid", data.ds["longitude"].values)}
    variables = {}
    for v, name in enumerate(data.variables):
        field = values[..., v, :]
        variables[name] = (dims, field.astype(np.float32))
    ds = xr.Dataset(variables, coords=coords)
    if members > 1:
        ds = ds.transpose("init_time", "lead_time", "member", "grid")
    ds.attrs.update({"domain": domain, "dataset": dom.dataset, "split": split,
                     "run": run_dir.name, "graph_id": module.graphs[0].graph_id,
                     "trained_on": ", ".join(d["name"] for d in config.sampling["domains"])})
    for key in ("grid_shape", "crs", "grid_kind"):
        if key in data.ds.attrs:
            ds.attrs[key] = data.ds.attrs[key]
    return ds


def forecast_path(run_dir: str | Path, domain: str, split: str) -> Path:
    return Path(run_dir) / "forecasts" / f"{domain}-{split}.zarr"


def evaluate(run_dir: str | Path, domain: str, split: str = "test", steps: int | None = None,
             members: int = 1, graph: str | None = None, cache: str | Path | None = None,
             progress: bool = True) -> Path:
    """:func:`forecast` written to ``<run_dir>/forecasts/<domain>-<split>.zarr`` atomically."""
    ds = forecast(run_dir, domain, split, steps, members, graph, cache=cache, progress=progress)
    target = forecast_path(run_dir, domain, split)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    ds.to_zarr(tmp, mode="w")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


# --------------------------------------------------------------------------- scores


def truth_for(forecast_ds: xr.Dataset, cache: str | Path | None = None) -> xr.Dataset:
    """The forecast's dataset (canonical layout), only its variables."""
    ds = catalog.open_dataset(forecast_ds.attrs["dataset"], cache=cache)
    return ds[list(forecast_ds.data_vars)]


def area_weights(ds: xr.Dataset) -> xr.DataArray:
    """Grid-cell areas of a canonical dataset's grid (latitude weights on regular grids)."""
    from . import grids

    return xr.DataArray(grids.area_weights(grids.grid_from_dataset(ds)), dims="grid")


def scores(forecast_ds: xr.Dataset, truth: xr.Dataset, train_period: tuple[str, str],
           weights: xr.DataArray | None = None) -> pd.DataFrame:
    """RMSE, MAE, bias and ACC of the model, persistence and climatology per variable and
    lead time, with skill scores (1 - MSE / MSE of the reference): a tidy DataFrame."""
    weights = area_weights(truth) if weights is None else weights
    model = forecast_ds.mean("member") if "member" in forecast_ds.dims else forecast_ds
    clim = skill.climatology(truth, *train_period)
    init, lead = model["init_time"].values, model["lead_time"].values
    forecasts = {"model": model,
                 "persistence": skill.persistence_forecast(truth, init, lead),
                 "climatology": skill.climatology_forecast(clim, init, lead)}
    rows = []
    mses = {}
    for name, fc in forecasts.items():
        fc = fc.assign_coords(latitude=truth["latitude"], longitude=truth["longitude"])
        mses[name] = skill.mse(fc, truth, weights)
        metric = {"rmse": np.sqrt(mses[name]), "mae": skill.mae(fc, truth, weights),
                  "bias": skill.bias(fc, truth, weights)}
        if name != "climatology":
            metric["acc"] = skill.acc(fc, truth, clim, weights)
        for key, ds in metric.items():
            rows += _tidy(ds, name, key)
    for ref in ("persistence", "climatology"):
        rows += _tidy(skill.skill_score(mses["model"], mses[ref]), "model", f"skill_vs_{ref}")
    if "member" in forecast_ds.dims:
        fc = forecast_ds.assign_coords(latitude=truth["latitude"], longitude=truth["longitude"])
        rows += _tidy(skill.crps(fc, truth, weights), "model", "crps")
        rows += _tidy(skill.spread_skill_ratio(fc, truth, weights), "model", "spread_skill")
    table = pd.DataFrame(rows, columns=["forecast", "metric", "variable", "lead_hours", "value"])
    return table


def _tidy(ds: xr.Dataset, forecast_name: str, metric: str) -> list[tuple]:
    hours = ds["lead_time"].values / np.timedelta64(1, "h")
    return [(forecast_name, metric, name, float(h), float(v))
            for name in ds.data_vars for h, v in zip(hours, np.atleast_1d(ds[name].values),
                                                     strict=True)]
