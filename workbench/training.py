"""Training: one grid-agnostic model on several domains at once, as a Lightning run.

``fit(config)`` builds each domain's graph (checked against the domain's grid), the
multi-domain DataModule of the sampling config, the model and a :class:`Trainer`
LightningModule, then trains into ``runs/<run_id>/``:

- ``config.yaml`` / ``config.json``: the resolved training config (sampling included);
- ``graphs.json``: the graph id, name and size used for every domain;
- ``checkpoints/last.ckpt`` (and one every ``checkpoint_every`` steps): weights_only-safe;
- ``metrics.csv``: per-domain training losses, validation losses per lead step for the
  model and for persistence;
- ``run.json``: status, steps, parameter count, samples/s and the final validation table.

Tasks (seed 001): ``forecast`` (autoregressive rollout, LAM boundary nodes overwritten from
the truth at every step), ``bert`` (AtmoRep masking) and ``interpolation`` (middle steps
masked). Fine-tuning (seed 003): layer-wise learning rates, LoRA on the processor, a replay
buffer for rollout training and clipping of chosen variables.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import yaml

from . import catalog, grids
from .config import check_keys, resolve_config
from .errors import WorkbenchError
from .finetune import (
    FineTuneConfig,
    ReplayBuffer,
    add_lora,
    clip_bounds,
    clip_predictions,
    finetune_config_from_dict,
    layerwise_param_groups,
)
from .losses import LossConfig, compute_loss, loss_config_from_dict
from .model import EncProcDec, GraphTensors, ModelConfig, graph_tensors, model_config_from_dict
from .sampling import MultiDomainDataModule, SamplingConfig, sampling_config_from_dict
from .tasks import MaskingConfig, bert_mask, interpolation_mask, masking_config_from_dict

TASKS = ("forecast", "bert", "interpolation")
LOGGERS = ("csv", "tensorboard", "mlflow")
MODEL_KEYS = ("processor", "hidden_dim", "processor_layers", "heads", "mlp_ratio",
              "noise_channels", "length_scale_km", "checkpointing")


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class OptimizerConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "cosine"  # cosine (to min_lr_ratio * lr at max_steps) | constant
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # gradient norm clipping (0: off)


@dataclass(frozen=True)
class TrainingConfig:
    name: str
    sampling: Mapping  # a sampling config (mapping), resolved from a preset or path
    model: Mapping = field(default_factory=dict)  # ModelConfig keys except the data sizes
    task: str = "forecast"
    members: int = 1  # ensemble members per sample (needs model.noise_channels > 0)
    loss: LossConfig = field(default_factory=LossConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    finetune: FineTuneConfig = field(default_factory=FineTuneConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    max_steps: int = 200
    val_rollout: int = 4  # validation lead steps (4 x 6 h = 24 h)
    val_every: int = 100  # validate every N training steps (and at the end)
    val_batches: int | None = None  # per validation (None: the whole split)
    checkpoint_every: int = 100
    boundary_cells: int = 2  # LAM rows/columns overwritten from the truth at each step
    init_from: str | None = None  # a checkpoint whose weights start this run (fine-tuning)
    logger: str = "csv"
    seed: int = 0
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    runs_dir: str = "runs"
    file: Path | None = field(default=None, compare=False)


def _sampling_mapping(raw) -> dict:
    """A sampling config as a plain mapping: a preset name, a YAML path or a mapping with an
    optional ``preset`` key whose other keys override the preset's."""
    if isinstance(raw, str):
        raw = {"preset": raw}
    if not isinstance(raw, Mapping):
        raise WorkbenchError("training config: `sampling` must be a preset name, a path or a "
                             "mapping")
    raw = dict(raw)
    preset = raw.pop("preset", None)
    base = yaml.safe_load(resolve_config(preset, "sampling").read_text()) if preset else {}
    return {**base, **raw}


def training_config_from_dict(raw: Mapping, where: str = "training config") -> TrainingConfig:
    """Validate a plain mapping (YAML) into a TrainingConfig; errors name the key and fix."""
    raw = dict(check_keys(raw, TrainingConfig, where, required=("name", "sampling")))
    raw["sampling"] = _sampling_mapping(raw["sampling"])
    sampling_config_from_dict(raw["sampling"], f"{where} (sampling)")  # validates
    check_keys(raw.get("model") or {}, MODEL_KEYS, f"{where} (model)")
    raw["model"] = dict(raw.get("model") or {})
    raw["loss"] = loss_config_from_dict(raw.get("loss"))
    raw["masking"] = masking_config_from_dict(raw.get("masking") or {})
    raw["finetune"] = finetune_config_from_dict(raw.get("finetune") or {})
    raw["optimizer"] = OptimizerConfig(**check_keys(raw.get("optimizer") or {}, OptimizerConfig,
                                                    f"{where} (optimizer)"))
    config = TrainingConfig(**raw)
    _validate(config)
    return config


def _validate(config: TrainingConfig) -> None:
    if config.task not in TASKS:
        raise WorkbenchError(f"training: task {config.task!r}; use one of {', '.join(TASKS)}")
    if config.logger not in LOGGERS:
        raise WorkbenchError(f"training: logger {config.logger!r}; use one of {', '.join(LOGGERS)}")
    if config.members < 1:
        raise WorkbenchError(f"training: members must be >= 1, got {config.members}")
    if config.members > 1 and not config.model.get("noise_channels"):
        raise WorkbenchError("training: members > 1 needs model.noise_channels > 0 (members "
                             "differ by the noise injected into the processor)")
    ensemble_losses = {"crps", "stats"} & set(config.loss.losses)
    if ensemble_losses and config.members < 2:
        raise WorkbenchError(f"training: losses {sorted(ensemble_losses)} need members >= 2")
    if config.optimizer.schedule not in ("cosine", "constant"):
        raise WorkbenchError(f"optimizer: schedule {config.optimizer.schedule!r}; use cosine "
                             "or constant")
    if config.max_steps < 1 or config.val_rollout < 1:
        raise WorkbenchError("training: max_steps and val_rollout must be >= 1")
    if config.task == "interpolation" and config.sampling.get("rollout", 1) < 2:
        raise WorkbenchError("training: interpolation needs sampling.rollout >= 2 (the "
                             "middle steps of the window are masked)")


def load_training_config(path: str | Path) -> TrainingConfig:
    """A training YAML (configs/training/*.yaml or a preset name)."""
    path = resolve_config(path, "training")
    config = training_config_from_dict(yaml.safe_load(path.read_text()), str(path))
    return dataclasses.replace(config, file=path)


def apply_overrides(config: TrainingConfig, max_steps: int | None = None,
                    domains: list[str] | None = None, task: str | None = None,
                    losses: list[str] | None = None) -> TrainingConfig:
    """The config with a notebook's or command line's overrides (None/empty: keep)."""
    raw = config_dict(config)
    if max_steps:
        raw["max_steps"] = int(max_steps)
    if domains:
        known = [d["name"] for d in raw["sampling"]["domains"]]
        unknown = [d for d in domains if d not in known]
        if unknown:
            raise WorkbenchError(f"domains {unknown} are not in the sampling config "
                                 f"(domains: {known})")
        raw["sampling"]["domains"] = [d for d in raw["sampling"]["domains"]
                                      if d["name"] in domains]
    if task:
        raw["task"] = task
    if losses:
        raw["loss"]["losses"] = list(losses)
    out = training_config_from_dict(raw, f"{config.name} with overrides")
    return dataclasses.replace(out, file=config.file)


def config_dict(config: TrainingConfig) -> dict:
    """The resolved config as plain values (YAML/JSON, checkpoints)."""
    out = dataclasses.asdict(config)
    out.pop("file", None)
    out["loss"]["losses"] = list(config.loss.losses)
    return json.loads(json.dumps(out, default=list))


def sampling_config(config: TrainingConfig) -> SamplingConfig:
    """The run's sampling config: enough rollout steps for training and validation."""
    sampling = sampling_config_from_dict(config.sampling, "training config (sampling)")
    needed = sampling.rollout
    if config.task == "forecast":
        needed = max(needed, config.val_rollout,
                     config.finetune.max_rollout if config.finetune.replay_size else 1)
    return dataclasses.replace(sampling, rollout=needed)


def model_config(config: TrainingConfig, sampling: SamplingConfig) -> ModelConfig:
    """The model's config: the training config's ``model`` plus the data's channel counts."""
    raw = dict(config.model)
    steps = sampling.input_steps
    if config.task != "forecast":  # the whole window in and out
        steps = sampling.input_steps + config.sampling.get("rollout", 1)
    raw.update(n_variables=len(sampling.variables), n_forcings=len(sampling.forcings),
               n_statics=len(sampling.statics), input_steps=steps,
               output_steps=1 if config.task == "forecast" else steps)
    return model_config_from_dict(raw)


# --------------------------------------------------------------------------- graphs


@dataclass
class DomainGraph:
    """A domain's graph and what training reads from it."""

    name: str
    graph_id: str
    graph_name: str
    tensors: GraphTensors
    area_weight: torch.Tensor  # [G]
    boundary: torch.Tensor | None  # bool [G]: LAM nodes forced from the truth, None: global
    patch_id: torch.Tensor  # [G] nearest hidden node (BERT tokens)
    n_hidden: int


def _graph_for(spec: str | None, domain: str, cache: str | Path | None):
    from .graphs import build_graph, load_config, load_graph, save_graph

    if spec is None:
        raise WorkbenchError(f"domain {domain!r} names no graph: set `graph:` in the sampling "
                             "config (a graph preset, YAML or .pt)")
    if str(spec).endswith(".pt"):
        return load_graph(spec)
    path = resolve_config(spec, "graphs")
    key = hashlib.sha1(path.read_bytes()).hexdigest()[:10]
    cached = catalog.cache_dir(cache) / "graphs" / f"{path.stem}-{key}.pt"
    if cached.is_file():
        return load_graph(cached)
    graph = build_graph(load_config(path))
    save_graph(graph, cached)
    return graph


def check_graph_matches(graph, grid: grids.Grid, domain: str, tol_deg: float = 1e-3) -> None:
    """The graph's data nodes must be the dataset's grid points, in order."""
    from .graphs import node_latlon

    lat, lon = node_latlon(graph, "data")
    name = getattr(graph, "name", "graph")
    if lat.size != grid.size:
        raise WorkbenchError(f"graph {name!r} has {lat.size} data nodes but domain {domain!r} "
                             f"has {grid.size} grid points: build the graph on this dataset")
    dlon = np.abs((lon - grid.longitude + 180.0) % 360.0 - 180.0) * np.cos(np.deg2rad(lat))
    off = np.maximum(np.abs(lat - grid.latitude), dlon)
    if off.max() > tol_deg:
        raise WorkbenchError(f"graph {name!r}: data node {int(off.argmax())} is {off.max():.3g} "
                             f"deg from grid point of domain {domain!r}: build the graph on "
                             "this dataset")


def domain_graph(spec: str | None, domain: str, dataset: str, boundary_cells: int,
                 cache: str | Path | None = None) -> DomainGraph:
    """Load or build a domain's graph, check it against the grid, derive masks and weights."""
    graph = _graph_for(spec, domain, cache)
    grid = catalog.entry_grid(catalog.get_entry(dataset))
    check_graph_matches(graph, grid, domain)
    boundary = None
    if grid.kind != "regular_latlon" and grid.shape is not None and boundary_cells > 0:
        boundary = torch.from_numpy(grids.boundary_distance_cells(grid) < boundary_cells)
    from .graphs import EDGE_SETS

    dec = graph[EDGE_SETS["decoder"]]
    nearest = torch.full((grid.size,), -1, dtype=torch.long)
    order = torch.argsort(dec.edge_length_km, descending=True)  # shortest written last
    nearest[dec.edge_index[1, order]] = dec.edge_index[0, order]
    area = graph["data"].area_weight.float() if "area_weight" in graph["data"] else torch.ones(
        grid.size)
    return DomainGraph(domain, str(graph.graph_id), str(getattr(graph, "name", spec)),
                       graph_tensors(graph), area, boundary, nearest,
                       int(graph["hidden"].num_nodes))


# --------------------------------------------------------------------------- module


def _lr_lambda(opt: OptimizerConfig, max_steps: int):
    def factor(step: int) -> float:
        if opt.warmup_steps and step < opt.warmup_steps:
            return (step + 1) / opt.warmup_steps
        if opt.schedule == "constant":
            return 1.0
        span = max(1, max_steps - opt.warmup_steps)
        progress = min(1.0, (step - opt.warmup_steps) / span)
        return opt.min_lr_ratio + (1 - opt.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


class Trainer(pl.LightningModule):
    """The LightningModule: one model, every domain's graph, the configured task and losses."""

    def __init__(self, config: TrainingConfig, graphs: list[DomainGraph],
                 variables: list[str], normalisers: list):
        super().__init__()
        self.config = config
        self.sampling = sampling_config(config)
        self.model = EncProcDec(model_config(config, self.sampling))
        self.graphs = graphs
        self.variables = variables
        self.rollout = config.sampling.get("rollout", 1)
        self._device_graphs: dict[tuple[int, str], GraphTensors] = {}
        ft = config.finetune
        self.clip = [clip_bounds(variables, ft.clip, n.normalise) if ft.clip else None
                     for n in normalisers]
        self.replay = (ReplayBuffer(ft.replay_size, ft.replay_refresh)
                       if ft.replay_size and config.task == "forecast" else None)
        self._val_sums: torch.Tensor | None = None
        self._t_batch = None
        self.samples_per_s: list[float] = []

    # graphs and steps ------------------------------------------------------------------

    def graph(self, index: int) -> GraphTensors:
        key = (index, str(self.device))
        if key not in self._device_graphs:
            self._device_graphs[key] = GraphTensors(
                *(t.to(self.device) if isinstance(t, torch.Tensor) else
                  tuple(x.to(self.device) for x in t) for t in self.graphs[index].tensors))
        return self._device_graphs[key]

    def _generator(self, salt: int = 0) -> torch.Generator:
        """Per-step randomness (masks, noise) from the seed and step: resumes reproduce it."""
        g = torch.Generator(device=self.device)
        g.manual_seed(int(self.config.seed) * 1_000_003 + int(self.global_step) * 7919 + salt)
        return g

    def _forward(self, state, forcings, statics, d: int, generator=None) -> torch.Tensor:
        pred = self.model(state, forcings, statics, self.graph(d), generator)
        clip = self.clip[d]
        if clip is not None:
            lo, hi = (t.to(pred.device) for t in clip)
            pred = clip_predictions(pred, lo, hi)
        return pred

    def rollout_forecast(self, batch: dict, steps: int, members: int = 1,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """Autoregressive forecast [B, (M,) steps, V, G]; LAM boundary nodes from the truth."""
        d = int(batch["domain_index"])
        x, forcings, statics = batch["x"], batch["forcings"], batch["statics"]
        if members > 1:
            x = x.repeat_interleave(members, 0)
            forcings = forcings.repeat_interleave(members, 0)
        boundary = self.graphs[d].boundary
        n_in = x.shape[1]
        preds, state = [], x
        for step in range(steps):
            pred = self._forward(state, forcings[:, step:step + n_in + 1], statics, d,
                                 generator)[:, 0]
            if boundary is not None:
                truth = batch["y"][:, step]
                if members > 1:
                    truth = truth.repeat_interleave(members, 0)
                pred = torch.where(boundary.to(pred.device), truth, pred)
            preds.append(pred)
            state = torch.cat([state[:, 1:], pred.unsqueeze(1)], 1)
        out = torch.stack(preds, 1)
        if members > 1:
            out = out.unflatten(0, (-1, members))
        return out

    def _loss(self, pred, target, d: int, mask=None):
        weights = self.graphs[d].area_weight.to(target.device)
        if mask is not None:  # masked tokens only (BERT): unmasked errors set to zero
            full = mask if pred.dim() == target.dim() else mask.unsqueeze(1)
            pred = torch.where(full, pred, target.unsqueeze(1) if pred.dim() > target.dim()
                               else target)
        total, terms = compute_loss(pred, target, self.config.loss, weights, self.variables)
        if mask is not None:
            fraction = mask.float().mean().clamp(min=1e-6)
            total, terms = total / fraction, {k: v / fraction for k, v in terms.items()}
        return total, terms

    def _task_loss(self, batch: dict):
        cfg, d = self.config, int(batch["domain_index"])
        g = self._generator()
        if cfg.task == "forecast":
            if self.replay is not None:
                return self._replay_loss(batch, g)
            pred = self.rollout_forecast(batch, self.rollout, cfg.members, g)
            target = batch["y"][:, :self.rollout]
            return self._loss(pred, target, d)
        window, inputs, mask = self._masked_window(batch, d, g)
        forcings = batch["forcings"][:, :window.shape[1]]
        if cfg.members > 1:
            inputs = inputs.repeat_interleave(cfg.members, 0)
            forcings = forcings.repeat_interleave(cfg.members, 0)
        pred = self._forward(inputs, forcings, batch["statics"], d, g)
        if cfg.members > 1:
            pred = pred.unflatten(0, (-1, cfg.members))
        return self._loss(pred, window, d, mask)

    def _masked_window(self, batch: dict, d: int, generator: torch.Generator):
        """(window, masked inputs, mask) of the bert and interpolation tasks, [B, T, V, G]."""
        window = torch.cat([batch["x"], batch["y"][:, :self.rollout]], 1)
        if self.config.task == "bert":
            patches = self.graphs[d].patch_id.to(window.device)
            inputs, mask = bert_mask(window, self.config.masking, generator, patches)
            return window, inputs, mask
        mask = interpolation_mask(tuple(window.shape), n_middle=self.rollout - 1)
        mask = mask.to(window.device)
        return window, torch.where(mask, torch.zeros_like(window), window), mask

    def _replay_loss(self, batch: dict, g: torch.Generator):
        """Aurora's rollout fine-tuning: train on a buffer sample, put the prediction back."""
        buffer = self.replay
        if len(buffer) == 0 or buffer.needs_refresh(self.global_step):
            buffer.add({"state": batch["x"], "forcings": batch["forcings"], "truth": batch["y"],
                        "statics": batch["statics"],
                        "domain_index": torch.tensor(int(batch["domain_index"])),
                        "lead": torch.tensor(0)})
        sample = buffer.draw()
        d, lead = int(sample["domain_index"]), int(sample["lead"])
        n_in = sample["state"].shape[1]
        one = {"x": sample["state"], "forcings": sample["forcings"][:, lead:lead + n_in + 1],
               "y": sample["truth"][:, lead:lead + 1], "statics": sample["statics"],
               "domain_index": d}
        pred = self.rollout_forecast(one, 1, 1, g)
        if lead + 1 < min(self.config.finetune.max_rollout, sample["truth"].shape[1]):
            state = torch.cat([sample["state"][:, 1:], pred.detach()], 1)
            buffer.add({**sample, "state": state, "lead": torch.tensor(lead + 1)})
        return self._loss(pred, one["y"], d)

    # lightning hooks -------------------------------------------------------------------

    def training_step(self, batch: dict, batch_idx: int):
        loss, terms = self._task_loss(batch)
        domain = batch["domain"]
        d = int(batch["domain_index"])
        total = loss * float(batch["loss_weight"])
        if not torch.isfinite(total):
            times = np.asarray(batch["times"][:, 0].cpu()).astype("datetime64[ns]")
            raise WorkbenchError(
                f"loss is {total.item()} at step {self.global_step}, domain {domain!r}, batch "
                f"{batch_idx} (first times {[str(t)[:16] for t in times[:4]]}); lower the "
                "learning rate or check these inputs for NaNs")
        batch_size = batch["x"].shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=batch_size)
        for other in self.graphs:  # every key every step (NaN for other domains): no stale rows
            mine = other.name == domain
            self.log(f"train/loss_{other.name}", loss if mine else math.nan,
                     batch_size=batch_size)
            for name, value in terms.items():
                if len(terms) > 1:
                    self.log(f"train/{name}_{other.name}", value if mine else math.nan,
                             batch_size=batch_size)
        self.log("train/domain_index", float(d), batch_size=batch_size)
        return total

    def on_train_batch_start(self, batch, batch_idx):
        self._t_batch = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self._t_batch is not None:
            rate = batch["x"].shape[0] / max(time.perf_counter() - self._t_batch, 1e-9)
            self.samples_per_s.append(rate)
            self.log("train/samples_per_s", rate, batch_size=batch["x"].shape[0])

    @property
    def val_steps(self) -> int:
        return self.config.val_rollout if self.config.task == "forecast" else 1

    @property
    def baseline(self) -> str:
        """The reference of validation: persistence (forecast) or the mean (masked tasks)."""
        return "persistence" if self.config.task == "forecast" else "mean"

    def on_validation_epoch_start(self):
        shape = (3, len(self.graphs), self.val_steps)
        self._val_sums = torch.zeros(shape, dtype=torch.float64, device=self.device)

    def validation_step(self, batch: dict, batch_idx: int):
        """Area-weighted MSE per lead step of the forecast and of persistence; for masked
        tasks, of the reconstruction and of the mean on the masked tokens."""
        d = int(batch["domain_index"])
        weights = self.graphs[d].area_weight.to(self.device)
        weights = weights / weights.mean()
        generator = self._generator(salt=batch_idx + 1)
        if self.config.task == "forecast":
            target = batch["y"][:, :self.val_steps]
            pred = self.rollout_forecast(batch, self.val_steps, self.config.members, generator)
            if self.config.members > 1:
                pred = pred.mean(1)
            errors = [(pred - target) ** 2, (batch["x"][:, -1:] - target) ** 2]
        else:
            errors = self._masked_errors(batch, d, generator)
        for row, error in enumerate(errors):  # area-weighted mean per step, summed over batch
            self._val_sums[row, d] += (error * weights).mean(dim=(2, 3)).sum(0).double()
        self._val_sums[2, d] += batch["x"].shape[0]

    def _masked_errors(self, batch: dict, d: int, generator):
        """Squared errors on the masked tokens, averaged over time per variable and node
        ([B, 1, V, G]): of the reconstruction and of the mean (0, what masked tokens hold)."""
        window, inputs, mask = self._masked_window(batch, d, generator)
        pred = self.model(inputs, batch["forcings"][:, :window.shape[1]], batch["statics"],
                          self.graph(d))
        share = mask.float().mean(1, keepdim=True).clamp(min=1e-6)  # per variable and node
        masked = mask.float()
        return [((pred - window) ** 2 * masked).mean(1, keepdim=True) / share,
                (window ** 2 * masked).mean(1, keepdim=True) / share]

    def on_validation_epoch_end(self):
        sums = self.trainer.strategy.reduce(self._val_sums, reduce_op="sum")
        counts = sums[2].clamp(min=1)
        for d, graph in enumerate(self.graphs):
            if sums[2, d, 0] == 0:
                continue
            for s in range(self.val_steps):
                self.log(f"val/mse_{graph.name}_step{s + 1}", float(sums[0, d, s] / counts[d, s]),
                         rank_zero_only=True)
                self.log(f"val/{self.baseline}_{graph.name}_step{s + 1}",
                         float(sums[1, d, s] / counts[d, s]), rank_zero_only=True)
        model = (sums[0] / counts).mean()
        self.log("val/mse", float(model), prog_bar=True, rank_zero_only=True)

    def configure_optimizers(self):
        opt = self.config.optimizer
        groups = layerwise_param_groups(self.model, self.config.finetune.layer_lrs, opt.lr,
                                        opt.weight_decay)
        for group in groups:
            group["params"] = list(group["params"])
        optimizer = torch.optim.AdamW(groups, lr=opt.lr, weight_decay=opt.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _lr_lambda(opt, self.config.max_steps))
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["workbench"] = {
            "config": config_dict(self.config),
            "graphs": {g.name: g.graph_id for g in self.graphs},
            "replay": self.replay.state_dict() if self.replay is not None else None,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("workbench") or {}
        if self.replay is not None and state.get("replay") is not None:
            self.replay.load_state_dict(state["replay"])


# --------------------------------------------------------------------------- runs


def new_run_id(config: TrainingConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    digest = hashlib.sha1(json.dumps(config_dict(config), sort_keys=True).encode()).hexdigest()
    return f"train-{config.name}-{stamp}-{digest[:6]}"


def _default_run_dir(config: TrainingConfig) -> Path:
    """runs/<run_id>, one for all processes of a run: DDP children inherit it through the
    environment; SLURM tasks share the job id."""
    inherited = os.environ.get("WORKBENCH_TRAIN_RUN_DIR")
    if inherited and ("LOCAL_RANK" in os.environ or "SLURM_PROCID" in os.environ):
        return Path(inherited)
    job = os.environ.get("SLURM_JOB_ID")
    run_id = f"train-{config.name}-slurm{job}" if job else new_run_id(config)
    run_dir = Path(config.runs_dir) / run_id
    os.environ["WORKBENCH_TRAIN_RUN_DIR"] = str(run_dir)
    return run_dir


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    """A Lightning checkpoint loaded with weights_only=True (no arbitrary pickles)."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"checkpoint {path} does not exist: train first or name a run dir "
                             "with checkpoints/last.ckpt")
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - unpickling refusals and corruption alike
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise WorkbenchError(f"{path} is not a checkpoint this workbench loads safely "
                             f"({first[:160]})") from None


def load_weights(model: torch.nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Load a state dict; a model of another shape is a one-line error naming a tensor."""
    own = model.state_dict()
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            raise WorkbenchError(f"{where}: {key} has shape {tuple(value.shape)} but this model "
                                 f"needs {tuple(own[key].shape)}: the checkpoint comes from a "
                                 "model of another shape (check model and sampling settings)")
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise WorkbenchError(f"{where}: parameters differ (missing {missing[:3]}, unexpected "
                             f"{unexpected[:3]}): the checkpoint comes from another model")
    model.load_state_dict(state)


def _logger(config: TrainingConfig, run_dir: Path):
    from pytorch_lightning import loggers

    package = config.logger  # tensorboard or mlflow (csv is always on: see _loggers)
    try:
        __import__(package)
    except ImportError:
        raise WorkbenchError(f"logger {config.logger!r} needs the {package} package: pip install "
                             f"{package} (or `pip install -e .[tracking]`), or use logger: "
                             "csv") from None
    # metrics.csv is always written too: notebooks and reports read it
    if config.logger == "tensorboard":
        return loggers.TensorBoardLogger(run_dir, name="tensorboard", version="")
    return loggers.MLFlowLogger(experiment_name=config.name,
                                tracking_uri=os.environ.get("MLFLOW_TRACKING_URI",
                                                            f"file:{run_dir.resolve() / 'mlruns'}"))


def _loggers(config: TrainingConfig, run_dir: Path) -> list:
    """The CSV logger always (metrics.csv), plus TensorBoard or MLflow when configured."""
    from pytorch_lightning import loggers

    csv = loggers.CSVLogger(run_dir, name="", version="")
    return [csv] if config.logger == "csv" else [csv, _logger(config, run_dir)]


def prepare_run(config: TrainingConfig, cache: str | Path | None = None):
    """Graphs, DataModule and LightningModule of a config (nothing written yet)."""
    sampling = sampling_config(config)
    graphs = [domain_graph(d.graph, d.name, d.dataset, config.boundary_cells, cache)
              for d in sampling.domains]
    datamodule = MultiDomainDataModule(sampling, {g.name: g.graph_id for g in graphs}, cache)
    datamodule.setup()
    normalisers = [d.normalisers["variables"] for d in datamodule.domains]
    module = Trainer(config, graphs, list(sampling.variables), normalisers)
    return graphs, datamodule, module


def fit(config: TrainingConfig | str | Path, max_steps: int | None = None,
        resume: str | Path | None = None, run_dir: str | Path | None = None,
        cache: str | Path | None = None, progress: bool = True, **trainer_kwargs) -> Path:
    """Train ``config`` into a run dir (new, given, or ``resume``'s) and return its path."""
    if resume is not None:
        run_dir = Path(resume)
        config = read_run_config(run_dir)
    elif not isinstance(config, TrainingConfig):
        config = load_training_config(config)
    if max_steps is not None:
        config = dataclasses.replace(config, max_steps=int(max_steps))
    _quiet_lightning()
    pl.seed_everything(config.seed, workers=True, verbose=False)
    graphs, datamodule, module = prepare_run(config, cache)
    ckpt_path = None
    if config.init_from and resume is None:
        state = load_checkpoint(config.init_from)
        load_weights(module.model, _model_state(state.get("state_dict", state)), config.init_from)
    if config.finetune.lora:
        add_lora(module.model, config.finetune.lora_rank, config.finetune.lora_alpha,
                 config.finetune.lora_include)
    if resume is not None:
        ckpt_path = Path(run_dir) / "checkpoints" / "last.ckpt"
        state = load_checkpoint(ckpt_path)
        load_weights(module.model, _model_state(state["state_dict"]), str(ckpt_path))
        _resume_sampler(datamodule, state)
    run_dir = Path(run_dir) if run_dir else _default_run_dir(config)
    trainer = _trainer(config, run_dir, progress, **trainer_kwargs)
    if trainer.is_global_zero:
        _write_run_files(config, graphs, module, run_dir)
    previous = _set_aside_metrics(run_dir) if resume is not None else None
    status = "failed"
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        status = "finished"
    finally:
        if trainer.is_global_zero:
            if previous is not None:
                _merge_metrics(run_dir, previous, int(state["global_step"]))
            _write_run_json(run_dir, config, module, trainer, status)
    return run_dir


def _quiet_lightning() -> None:
    """Hide Lightning notices that do not apply here (validation is reduced by hand)."""
    import logging
    import warnings

    for message in (".*sync_dist=True.*", ".*LeafSpec.*", ".*exists and is not empty.*",
                    ".*does not have many workers.*", ".*not resumable.*"):
        warnings.filterwarnings("ignore", message=message)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage())


def _set_aside_metrics(run_dir: Path) -> Path | None:
    """Lightning's CSV logger starts metrics.csv afresh: keep the rows of the first part."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    aside = run_dir / "metrics.before-resume.csv"
    os.replace(path, aside)
    return aside


def _merge_metrics(run_dir: Path, previous: Path, resumed_at: int) -> None:
    import pandas as pd

    path = run_dir / "metrics.csv"
    old = pd.read_csv(previous)
    old = old[old["step"] < resumed_at]
    new = pd.read_csv(path) if path.is_file() else old.iloc[:0]
    merged = pd.concat([old, new], ignore_index=True)
    tmp = path.with_name(".metrics.csv.tmp")
    merged.to_csv(tmp, index=False)
    os.replace(tmp, path)
    previous.unlink()


def _model_state(state_dict: Mapping[str, torch.Tensor]) -> dict:
    return {k.removeprefix("model."): v for k, v in state_dict.items() if k.startswith("model.")}


def _resume_sampler(datamodule: MultiDomainDataModule, state: dict) -> None:
    """Mid-epoch resume: skip the batches of the current epoch the checkpoint has seen."""
    loop = state.get("loops", {}).get("fit_loop", {})
    progress = loop.get("epoch_loop.batch_progress", {})
    done = 0 if progress.get("is_last_batch") else progress.get("current", {}).get("processed", 0)
    epoch = loop.get("epoch_progress", {}).get("current", {}).get("completed", 0)
    datamodule.resume = (int(epoch), int(done))


class LastCheckpoint(pl.Callback):
    """Writes checkpoints/last.ckpt atomically every ``every`` steps and at the last step.

    Saved from inside the training loop (after the optimizer step), so the loop state it
    holds is the one a resumed run continues from."""

    def __init__(self, directory: Path, every: int, keep_numbered: int = 2):
        self.directory, self.every, self.keep_numbered = Path(directory), every, keep_numbered

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % self.every and step < trainer.max_steps:
            return
        target = self.directory / "last.ckpt"
        tmp = self.directory / f".last.ckpt.tmp-{os.getpid()}"
        trainer.save_checkpoint(tmp, weights_only=False)  # collective under DDP; rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, target)
            if self.keep_numbered and step % self.every == 0:
                numbered = self.directory / f"step{step}.ckpt"
                numbered.unlink(missing_ok=True)
                os.link(target, numbered)
                old = sorted(self.directory.glob("step*.ckpt"),
                             key=lambda p: int(p.stem.removeprefix("step")))
                for path in old[:-self.keep_numbered]:
                    path.unlink(missing_ok=True)


def _trainer(config: TrainingConfig, run_dir: Path, progress: bool, **kwargs) -> pl.Trainer:
    checkpoints = LastCheckpoint(run_dir / "checkpoints", config.checkpoint_every)
    options = dict(
        max_steps=config.max_steps, accelerator=config.accelerator, devices=config.devices,
        num_nodes=config.num_nodes, strategy=config.strategy, precision=config.precision,
        logger=_loggers(config, run_dir), callbacks=[checkpoints],
        val_check_interval=None, check_val_every_n_epoch=None,
        limit_val_batches=config.val_batches if config.val_batches else 1.0,
        gradient_clip_val=config.optimizer.grad_clip or None, use_distributed_sampler=False,
        enable_progress_bar=progress, log_every_n_steps=1, deterministic=False,
        num_sanity_val_steps=0, enable_model_summary=True, default_root_dir=run_dir,
        enable_checkpointing=False)
    options["val_check_interval"] = min(config.val_every, config.max_steps)
    options.update(kwargs)
    return pl.Trainer(**options)


def _write_run_files(config: TrainingConfig, graphs: list[DomainGraph], module: Trainer,
                     run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = config_dict(config)
    _write_atomic(run_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    _write_atomic(run_dir / "config.json", json.dumps(resolved, indent=1))
    _write_atomic(run_dir / "graphs.json", json.dumps(
        {g.name: {"graph_id": g.graph_id, "graph": g.graph_name, "data_nodes": g.tensors.n_data,
                  "hidden_nodes": g.n_hidden} for g in graphs}, indent=1))


def _write_run_json(run_dir: Path, config: TrainingConfig, module: Trainer, trainer: pl.Trainer,
                    status: str) -> None:
    from .model import parameter_count

    rates = module.samples_per_s[5:] or module.samples_per_s
    info = {"kind": "training", "name": config.name, "status": status,
            "steps": int(trainer.global_step), "parameters": parameter_count(module.model),
            "trainable_parameters": parameter_count(module.model, trainable_only=True),
            "samples_per_s": float(np.median(rates)) if rates else None,
            "graphs": {g.name: g.graph_id for g in module.graphs},
            "world_size": int(trainer.world_size), "num_nodes": int(trainer.num_nodes),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID")}
    _write_atomic(run_dir / "run.json", json.dumps(info, indent=1))


# --------------------------------------------------------------------------- trained runs


def read_run_config(run_dir: str | Path) -> TrainingConfig:
    """The resolved config a run dir was trained with (its config.yaml)."""
    saved = Path(run_dir) / "config.yaml"
    if not saved.is_file():
        raise WorkbenchError(f"{run_dir} is not a training run dir (no config.yaml): train "
                             "first with `workbench train`")
    return training_config_from_dict(yaml.safe_load(saved.read_text()), str(saved))


def restore_weights(model: torch.nn.Module, config: TrainingConfig, run_dir: str | Path) -> None:
    """Put a run's last checkpoint into a freshly built model (LoRA adapters added first)."""
    if config.finetune.lora:
        add_lora(model, config.finetune.lora_rank, config.finetune.lora_alpha,
                 config.finetune.lora_include)
    ckpt = Path(run_dir) / "checkpoints" / "last.ckpt"
    load_weights(model, _model_state(load_checkpoint(ckpt)["state_dict"]), str(ckpt))


def load_run(run_dir: str | Path, cache: str | Path | None = None):
    """(config, module, datamodule) of a run dir, the module holding its last checkpoint."""
    config = read_run_config(run_dir)
    _, datamodule, module = prepare_run(config, cache)
    restore_weights(module.model, config, run_dir)
    return config, module.eval(), datamodule


@torch.no_grad()
def forecast_sample(module: Trainer, datamodule: MultiDomainDataModule, domain: str,
                    split: str = "val", index: int = 0, steps: int | None = None) -> dict:
    """One forecast from the ``index``-th window of ``split`` in physical units:
    truth, forecast and persistence [steps, V, G], with times, variables and coordinates."""
    names = [d.name for d in datamodule.domains]
    if domain not in names:
        raise WorkbenchError(f"domain {domain!r} is not in this run (domains: {names})")
    d = names.index(domain)
    data = datamodule.domains[d]
    starts = data.samples(split)
    t0 = int(starts[min(index, len(starts) - 1)])
    item = datamodule.dataset[(d, t0)]
    batch = datamodule.dataset.collate([item])
    steps = min(steps or module.config.val_rollout, batch["y"].shape[1])
    batch = {k: v.to(module.device) if isinstance(v, torch.Tensor) else v
             for k, v in batch.items()}
    pred = module.rollout_forecast(batch, steps, module.config.members)
    if module.config.members > 1:
        pred = pred.mean(1)
    norm = data.normalisers["variables"]
    truth = batch["y"][0, :steps].cpu()
    persistence = batch["x"][0, -1:].cpu().expand_as(truth)
    n_in = batch["x"].shape[1]
    ds = data.ds
    return {"domain": domain, "variables": list(data.variables),
            "init_time": data.times[t0 + n_in - 1],
            "valid_times": data.times[t0 + n_in:t0 + n_in + steps],
            "truth": norm.denormalise(truth).numpy(),
            "forecast": norm.denormalise(pred[0].cpu()).numpy(),
            "persistence": norm.denormalise(persistence).numpy(),
            "latitude": ds["latitude"].values, "longitude": ds["longitude"].values,
            "grid_shape": ds.attrs.get("grid_shape")}


# ---- notebook 03
# Notebook 03 (training): the config as a small table, a run's metrics.csv as tidy tables,
# the final validation against persistence, the parameter table and the summary.json.

STEP_HOURS = 6.0  # the demo datasets' time step: lead step k is k x 6 h


def config_table(config: TrainingConfig):
    """The key settings of a training config as a one-column DataFrame (index: setting); one
    row per domain and per model setting, so no value is long enough to be cut short."""
    import pandas as pd

    sampling = config.sampling
    opt = config.optimizer
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
                       f"({config.val_rollout * STEP_HOURS:g} h)"),
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


def read_metrics(run_dir: str | Path, step_hours: float = STEP_HOURS):
    """A run's metrics.csv (run dir or file) as two tidy DataFrames ``(train, val)``.

    ``train``: one row per training step and domain: ``step``, ``domain``, ``loss`` (the
    domain's training loss; the rows Lightning logs as NaN for the other domains are dropped)
    and, with several losses, one column per loss term. ``val``: one row per validation,
    domain and lead step: ``step``, ``domain``, ``lead_step``, ``lead_hours``, ``model_mse``,
    ``persistence_mse`` (normalised units, area-weighted).
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
    val.insert(3, "lead_hours", val["lead_step"] * step_hours)
    ordered = []
    for frame, keys in ((train, ["domain", "step"]), (val, ["domain", "step", "lead_step"])):
        frame = frame.assign(domain=pd.Categorical(frame["domain"], categories=domains))
        frame = frame.sort_values(keys, ignore_index=True)
        ordered.append(frame.assign(domain=frame["domain"].astype(str)))
    return tuple(ordered)


def validation_table(run_dir: str | Path, step: int | None = None,
                     step_hours: float = STEP_HOURS):
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
    for key, value in _model_state(state.get("state_dict", state)).items():
        part = key.split(".")[0]
        counts[part] = counts.get(part, 0) + int(value.numel())
    total = sum(counts.values())
    table = pd.DataFrame({"parameters": list(counts.values())},
                         index=pd.Index(list(counts), name="part"))
    table["share"] = table["parameters"] / max(total, 1)
    table.loc["total"] = [total, 1.0]
    table["parameters"] = table["parameters"].astype(int)
    return table


def notebook_summary(run_dir: str | Path, step_hours: float = STEP_HOURS) -> dict:
    """summary.json of notebook 03: final validation MSE of the model and of persistence at
    the first and last lead step per domain, skill, whether the model beats persistence at
    every lead step, parameters, samples/s, steps and graph ids (``key_figures`` first)."""
    run_dir = Path(run_dir)
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
        config = yaml.safe_load(saved.read_text())
    return {
        "key_figures": key_figures,
        "validation": [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                       for row in table.to_dict("records")],
        "train_loss_last20": final_loss,
        "run": info,
        "config": config,
    }
