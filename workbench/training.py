"""Training: one grid-agnostic model on several domains at once, as a Lightning run.

``fit(config)`` builds each domain's graph (checked against the domain's grid), the
multi-domain DataModule of the sampling config, the model and a :class:`Trainer`
LightningModule, then trains into ``runs/<run_id>/``:

- ``config.yaml`` / ``config.json``: the resolved training config (sampling included);
- ``graphs.json``: the graph id, name and size used for every domain;
- ``checkpoints/last.ckpt`` (and one every ``checkpoint_every`` steps): weights_only-safe,
  self-describing (variables, normalisers, graphs: :func:`checkpoints.describe_run`);
- ``metrics.csv``: per-domain training losses, validation losses per lead step for the
  model and for persistence (the merge of ``metrics/from-step<N>.csv``, one per fit call);
- ``run.json``: status, steps, parameter count, samples/s and the final validation table.

Tasks (seed 001): ``forecast`` (autoregressive rollout, LAM boundary nodes overwritten from
the truth at every step), ``bert`` (AtmoRep masking) and ``interpolation`` (middle steps
masked). Fine-tuning (seed 003): layer-wise learning rates, LoRA on the processor, a replay
buffer for rollout training and clipping of chosen variables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from . import finetune
from .checkpoints import (
    begin_segment,
    check_output_mode,
    default_run_dir,
    describe_run,
    load_checkpoint,
    load_weights,
    merge_metrics,
    model_state,
    read_run_config,
    restore_weights,
    resume_sampler,
)
from .domain_graphs import DomainGraph, domain_graph
from .errors import WorkbenchError
from .evaluation_inputs import training_statistics
from .finetune import ReplayBuffer, add_lora, clip_bounds, clip_predictions, layerwise_param_groups
from .losses import compute_loss
from .model import EncProcDec, GraphTensors
from .sampling import MultiDomainDataModule
from .tasks import bert_mask, interpolation_mask
from .training_config import (
    TrainingConfig,
    config_dict,
    load_training_config,
    lr_factor,
    model_config,
    sampling_config,
    training_config_from_dict,
)
from .training_setup import (
    CONFIG_TRAINER_OPTIONS,
    build_trainer,
    quiet_lightning,
    write_run_files,
    write_run_json,
)

# --------------------------------------------------------------------------- module


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
        listed = set(self.sampling.imputer.missing_channel)  # was-missing input channels
        self.missing_index = [i for i, name in enumerate(variables) if name in listed]
        self.rollout = config.sampling.get("rollout", 1)
        self._device_graphs: dict[tuple[int, str], GraphTensors] = {}
        ft = config.finetune
        self.clip = [clip_bounds(variables, ft.clip, n.normalise) if ft.clip else None
                     for n in normalisers]
        # tendency output: each domain's normaliser makes the model's output the next state
        # and the states the loss's tendencies (Normaliser.next_state / tendency)
        self.tendency = normalisers if config.normalisation.tendency else None
        self.replay = (ReplayBuffer(ft.replay_size, ft.replay_refresh)
                       if ft.replay_size and config.task == "forecast" else None)
        self._val_sums: torch.Tensor | None = None
        self._t_batch = None
        self.samples_per_s: list[float] = []
        self.artifact: dict | None = None  # what checkpoints carry to forecast on their own

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

    def domain_forward(self, state, forcings, statics, d: int, generator=None,
                 valid: torch.Tensor | None = None) -> torch.Tensor:
        """The model on one domain's graph; ``valid`` (bool, state's shape) gives the
        was-missing channels of the variables the imputer lists."""
        missing = None
        if self.missing_index:
            valid = torch.ones_like(state, dtype=torch.bool) if valid is None else valid
            missing = (~valid[:, :, self.missing_index]).to(state.dtype)
        if self.tendency is None:
            pred = self.model(state, forcings, statics, self.graph(d), generator, missing)
        else:
            pred = self.tendency[d].next_state(state[:, -1:], self.model.change(
                state, forcings, statics, self.graph(d), generator, missing))
        clip = self.clip[d]
        if clip is not None:
            lo, hi = (t.to(pred.device) for t in clip)
            pred = clip_predictions(pred, lo, hi)
        return pred

    def rollout_forecast(self, batch: dict, steps: int, members: int = 1,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """Autoregressive forecast [B, (M,) steps, V, G]; LAM boundary nodes from the truth.

        Points missing at the last input step keep their imputed value (and was-missing
        channel) in the state fed back at every step: the model reads them as it was
        trained to; the forecast returned holds its predictions there."""
        d = int(batch["domain_index"])
        x, forcings, statics = batch["x"], batch["forcings"], batch["statics"]
        valid = _mask(batch, "x_mask", x)
        if members > 1:
            x, forcings, valid = (t.repeat_interleave(members, 0) for t in (x, forcings, valid))
        boundary = self.graphs[d].boundary
        n_in = x.shape[1]
        preds, state = [], x
        for step in range(steps):
            pred = self.domain_forward(state, forcings[:, step:step + n_in + 1], statics, d,
                                 generator, valid)[:, 0]
            if boundary is not None:
                truth = batch["y"][:, step]
                if members > 1:
                    truth = truth.repeat_interleave(members, 0)
                pred = torch.where(boundary.to(pred.device), truth, pred)
            preds.append(pred)
            state, valid = _next_state(state, valid, pred)
        out = torch.stack(preds, 1)
        if members > 1:
            out = out.unflatten(0, (-1, members))
        return out

    def unforced(self, d: int, valid: torch.Tensor) -> torch.Tensor:
        """``valid`` (bool [..., G]) less domain ``d``'s LAM boundary ring, which a forecast
        takes from the truth (error 0 by construction): the points its loss and validation
        count, as ``evaluate`` scores only the interior."""
        boundary = self.graphs[d].boundary
        return valid if boundary is None else valid & ~boundary.to(valid.device)

    def _loss(self, pred, target, d: int, valid: torch.Tensor, last: torch.Tensor | None = None):
        """The configured losses over the points where ``valid`` (bool, target's shape: valid
        targets, and for masked tasks the masked tokens among them); with tendency output, on
        the tendencies from ``last`` [B, 1, V, G], the state the forecast started from."""
        if self.tendency is not None and last is not None:
            norm = self.tendency[d]
            pred = norm.tendency(last.unsqueeze(1) if pred.dim() == 5 else last, pred)
            target = norm.tendency(last, target)
        weights = self.graphs[d].area_weight.to(target.device)
        return compute_loss(pred, target, self.config.loss, weights, self.variables, valid)

    def _task_loss(self, batch: dict):
        cfg, d = self.config, int(batch["domain_index"])
        g = self._generator()
        if cfg.task == "forecast":
            if self.replay is not None:
                return self._replay_loss(batch, g)
            steps = self.train_rollout()
            pred = self.rollout_forecast(batch, steps, cfg.members, g)
            valid = self.unforced(d, _mask(batch, "y_mask", batch["y"])[:, :steps])
            return self._loss(pred, batch["y"][:, :steps], d, valid, batch["x"][:, -1:])
        window, inputs, mask = self._masked_window(batch, d, g)
        valid = self.window_valid(batch)
        forcings = batch["forcings"][:, :window.shape[1]]
        members = cfg.members
        if members > 1:
            inputs, forcings = (t.repeat_interleave(members, 0) for t in (inputs, forcings))
        pred = self.domain_forward(inputs, forcings, batch["statics"], d, g,
                             valid.repeat_interleave(members, 0) if members > 1 else valid)
        if members > 1:
            pred = pred.unflatten(0, (-1, members))
        return self._loss(pred, window, d, mask & valid)

    def train_rollout(self) -> int:
        """Forecast steps of this training step: the rollout schedule's, else sampling's."""
        schedule = self.config.rollout
        return self.rollout if schedule is None else schedule.at(self.current_epoch,
                                                                 self.global_step)

    def window_valid(self, batch: dict) -> torch.Tensor:
        """bool [B, T, V, G]: the valid values of the bert/interpolation window."""
        return torch.cat([_mask(batch, "x_mask", batch["x"]),
                          _mask(batch, "y_mask", batch["y"])[:, :self.rollout]], 1)

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
        """Aurora's rollout fine-tuning: train on a buffer sample and put its prediction back
        one step deeper (:meth:`ReplayBuffer.add_rollout`); a prediction as deep as
        ``max_rollout`` (or the sample's truth) allows is replaced by this batch, fresh."""
        buffer = self.replay

        def fresh() -> dict:
            return {"state": batch["x"], "forcings": batch["forcings"], "truth": batch["y"],
                    "statics": batch["statics"],
                    "state_valid": _mask(batch, "x_mask", batch["x"]),
                    "truth_valid": _mask(batch, "y_mask", batch["y"]),
                    "domain_index": torch.tensor(int(batch["domain_index"])),
                    finetune.ROLLOUT: torch.tensor(0)}

        if len(buffer) == 0 or buffer.needs_refresh(self.global_step):
            buffer.add(fresh())
        sample = buffer.draw()
        d, lead = int(sample["domain_index"]), int(sample.pop("lead", sample[finetune.ROLLOUT]))
        n_in = sample["state"].shape[1]
        state_valid = sample.get("state_valid", torch.ones_like(sample["state"], dtype=torch.bool))
        truth_valid = sample.get("truth_valid", torch.ones_like(sample["truth"], dtype=torch.bool))
        one = {"x": sample["state"], "forcings": sample["forcings"][:, lead:lead + n_in + 1],
               "y": sample["truth"][:, lead:lead + 1], "statics": sample["statics"],
               "x_mask": state_valid, "domain_index": d}
        pred = self.rollout_forecast(one, 1, 1, g)
        state, state_valid = _next_state(sample["state"], state_valid, pred.detach()[:, 0])
        buffer.add_rollout({**sample, "state": state, "state_valid": state_valid,
                            finetune.ROLLOUT: torch.tensor(lead + 1)},
                           min(self.config.finetune.max_rollout, sample["truth"].shape[1]), fresh)
        return self._loss(pred, one["y"], d, self.unforced(d, truth_valid[:, lead:lead + 1]),
                          one["x"][:, -1:])

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
        if self.config.rollout is not None:
            self.log("train/rollout", float(self.train_rollout()), batch_size=batch_size)
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
        # per domain and lead step: the area-weighted squared errors of the model and of the
        # baseline summed over the valid points, and the sum of their area weights
        shape = (3, len(self.graphs), self.val_steps)
        self._val_sums = torch.zeros(shape, dtype=torch.float64, device=self.device)

    def validation_step(self, batch: dict, batch_idx: int):
        """Area-weighted MSE per lead step of the forecast and of persistence; for masked
        tasks, of the reconstruction and of the mean on the masked tokens. Only valid targets
        count (for persistence, those whose last input was valid too; for forecasts, not the
        LAM boundary ring taken from the truth), the same points for the model and baseline."""
        d = int(batch["domain_index"])
        weights = self.graphs[d].area_weight.to(self.device)
        weights = weights / weights.mean()
        generator = self._generator(salt=batch_idx + 1)
        if self.config.task == "forecast":
            target = batch["y"][:, :self.val_steps]
            valid = self.unforced(d, _mask(batch, "y_mask", batch["y"])[:, :self.val_steps]
                                  & _mask(batch, "x_mask", batch["x"])[:, -1:])
            pred = self.rollout_forecast(batch, self.val_steps, self.config.members, generator)
            if self.config.members > 1:
                pred = pred.mean(1)
            errors = [(pred - target) ** 2, (batch["x"][:, -1:] - target) ** 2]
        else:
            errors, valid = self._masked_errors(batch, d, generator)
        w = torch.where(valid, weights, 0.0)  # [B, T, V, G]
        for row, error in enumerate(errors):  # summed over batch, variables and points
            self._val_sums[row, d] += (torch.where(valid, error, 0.0) * w).sum(
                dim=(0, 2, 3)).double()
        self._val_sums[2, d] += w.sum(dim=(0, 2, 3)).double()

    def _masked_errors(self, batch: dict, d: int, generator):
        """Squared errors of the reconstruction and of the mean (0, what masked tokens hold)
        over the window, summed over time into one step ([B, 1, V, G]), and where they count
        (bool [B, 1, V, G]: some masked, valid token there)."""
        window, inputs, mask = self._masked_window(batch, d, generator)
        valid = self.window_valid(batch)
        pred = self.domain_forward(inputs, batch["forcings"][:, :window.shape[1]], batch["statics"],
                             d, None, valid)
        counted = (mask & valid).float()
        count = counted.sum(1, keepdim=True)
        share = count.clamp(min=1.0)  # the mean over a point's counted tokens
        return ([((pred - window) ** 2 * counted).sum(1, keepdim=True) / share,
                 (window ** 2 * counted).sum(1, keepdim=True) / share], count > 0)

    def on_validation_epoch_end(self):
        sums = self.trainer.strategy.reduce(self._val_sums, reduce_op="sum")
        weight = sums[2]
        scored = weight > 0
        for d, graph in enumerate(self.graphs):
            for s in range(self.val_steps):
                if not scored[d, s]:  # no batch of this domain, or no valid target
                    continue
                self.log(f"val/mse_{graph.name}_step{s + 1}", float(sums[0, d, s] / weight[d, s]),
                         rank_zero_only=True)
                self.log(f"val/{self.baseline}_{graph.name}_step{s + 1}",
                         float(sums[1, d, s] / weight[d, s]), rank_zero_only=True)
        model = (sums[0][scored] / weight[scored]).mean() if bool(scored.any()) else math.nan
        self.log("val/mse", float(model), prog_bar=True, rank_zero_only=True)

    def configure_optimizers(self):
        opt = self.config.optimizer
        groups = layerwise_param_groups(self.model, self.config.finetune.layer_lrs, opt.lr,
                                        opt.weight_decay)
        for group in groups:
            group["params"] = list(group["params"])
        optimizer = torch.optim.AdamW(groups, lr=opt.lr, weight_decay=opt.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_factor(opt, self.config.max_steps))
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.artifact is None:  # described once a run (checkpoints.describe_run)
            self.artifact = describe_run(self)
        checkpoint["workbench"] = {
            "config": config_dict(self.config),
            "graphs": {g.name: g.graph_id for g in self.graphs},
            "replay": self.replay.state_dict() if self.replay is not None else None,
            "artifact": self.artifact,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("workbench") or {}
        if self.replay is not None and state.get("replay") is not None:
            self.replay.load_state_dict(state["replay"])


def _mask(batch: dict, key: str, like: torch.Tensor) -> torch.Tensor:
    """The batch's validity mask ``key`` (x_mask, y_mask), all True when it has none."""
    mask = batch.get(key)
    return torch.ones_like(like, dtype=torch.bool) if mask is None else mask


def _next_state(state: torch.Tensor, valid: torch.Tensor, pred: torch.Tensor):
    """The rollout's next input [B, T_in, V, G] and its validity after predicting ``pred``
    [B, V, G]: points missing at the last input step keep its imputed value and stay missing."""
    last = torch.where(valid[:, -1], pred, state[:, -1])
    return (torch.cat([state[:, 1:], last.unsqueeze(1)], 1),
            torch.cat([valid[:, 1:], valid[:, -1:]], 1))


def prepare_run(config: TrainingConfig, cache: str | Path | None = None):
    """Graphs, DataModule and LightningModule of a config (nothing written yet)."""
    sampling = sampling_config(config)
    graphs = [domain_graph(d.graph, d.name, d.dataset, config.boundary_cells, cache)
              for d in sampling.domains]
    shared = config.normalisation.statistics == "shared"  # every domain the pooled statistics
    stats = training_statistics(sampling, cache) if shared else None
    datamodule = MultiDomainDataModule(sampling, {g.name: g.graph_id for g in graphs}, cache, stats)
    datamodule.setup()
    normalisers = [d.normalisers["variables"] for d in datamodule.domains]
    module = Trainer(config, graphs, list(sampling.variables), normalisers)
    return graphs, datamodule, module


def fit(config: TrainingConfig | str | Path, max_steps: int | None = None,
        resume: str | Path | None = None, run_dir: str | Path | None = None,
        cache: str | Path | None = None, progress: bool = True,
        callbacks: tuple[pl.Callback, ...] = (), **trainer_kwargs) -> Path:
    """Train ``config`` into a run dir (new, given, or ``resume``'s) and return its path.

    ``max_steps`` and the Trainer options the config holds (accelerator, devices, num_nodes,
    strategy, precision) override the config and are saved with it; a new run dir's id covers
    them and any other Trainer option. ``callbacks`` run before the checkpoint callback, so a
    stop they ask for (``trainer.should_stop``) is checkpointed at that step; the run is then
    ``stopped`` in run.json, resumable to max_steps."""
    if resume is not None:
        run_dir = Path(resume)
        config = read_run_config(run_dir)
    elif not isinstance(config, TrainingConfig):
        config = load_training_config(config)
    overrides = {k: trainer_kwargs.pop(k) for k in CONFIG_TRAINER_OPTIONS if k in trainer_kwargs}
    if max_steps is not None:
        overrides["max_steps"] = max_steps
    if overrides:  # checked as the YAML is (max_steps 0 or devices "abc" refused)
        config = dataclasses.replace(training_config_from_dict(
            {**config_dict(config), **overrides}, f"{config.name} with overrides"),
            file=config.file)
    quiet_lightning()
    pl.seed_everything(config.seed, workers=True, verbose=False)
    graphs, datamodule, module = prepare_run(config, cache)
    ckpt_path, start = None, 0
    if config.init_from and resume is None:
        state = load_checkpoint(config.init_from)
        check_output_mode(state, config.normalisation.output, config.init_from)
        load_weights(module.model, model_state(state.get("state_dict", state)), config.init_from)
    if config.finetune.lora:
        add_lora(module.model, config.finetune.lora_rank, config.finetune.lora_alpha,
                 config.finetune.lora_include)
    if resume is not None:
        ckpt_path = Path(run_dir) / "checkpoints" / "last.ckpt"
        state = load_checkpoint(ckpt_path)
        load_weights(module.model, model_state(state["state_dict"]), str(ckpt_path))
        resume_sampler(datamodule, state)
        start = int(state["global_step"])
    fresh = run_dir is None
    run_dir = Path(run_dir) if run_dir else default_run_dir(config, trainer_kwargs)
    try:
        trainer = build_trainer(config, run_dir, start, progress, callbacks, **trainer_kwargs)
    except WorkbenchError:
        if fresh:  # nothing half-written: the empty dir made for this run goes again
            shutil.rmtree(run_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                run_dir.parent.rmdir()  # and the runs folder, where it was made for it
        raise
    if trainer.is_global_zero:
        write_run_files(config, graphs, module, run_dir)
        begin_segment(run_dir, start)
    status = "failed"
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        status = "finished" if trainer.global_step >= config.max_steps else "stopped"
    finally:
        if trainer.is_global_zero:
            merge_metrics(run_dir)
            write_run_json(run_dir, config, module, trainer, status)
    return run_dir


# --------------------------------------------------------------------------- trained runs


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
    truth, forecast and persistence [steps, V, G], with times, variables and coordinates;
    truth and persistence are NaN where the data is missing (maps show it as missing)."""
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
    truth = batch["y"][0, :steps].cpu().where(batch["y_mask"][0, :steps].cpu(), torch.nan)
    persistence = batch["x"][0, -1:].cpu().where(batch["x_mask"][0, -1:].cpu(), torch.nan)
    persistence = persistence.expand_as(truth)
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
