"""The scaffolding of a training run: the Lightning ``pl.Trainer`` a training config asks for
and the files ``training.fit`` writes beside it (config, graphs, catalog, run.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytorch_lightning as pl

from .checkpoints import CATALOG_FILE, LastCheckpoint, catalog_folders, run_loggers, write_atomic
from .config import dump_yaml
from .diagnostics import DomainGradNorms
from .domain_graphs import DomainGraph
from .errors import WorkbenchError
from .training_config import TrainingConfig, config_dict

if TYPE_CHECKING:
    from .training import Trainer

# Trainer options a training config holds: given to fit, they override the config's
CONFIG_TRAINER_OPTIONS = ("accelerator", "devices", "num_nodes", "strategy", "precision")


def quiet_lightning() -> None:
    """Hide Lightning notices that do not apply here (validation is reduced by hand)."""
    import logging
    import warnings

    for message in (".*sync_dist=True.*", ".*LeafSpec.*", ".*exists and is not empty.*",
                    ".*does not have many workers.*", ".*not resumable.*"):
        warnings.filterwarnings("ignore", message=message)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage())


def build_trainer(config: TrainingConfig, run_dir: Path, start: int, progress: bool,
             callbacks: tuple[pl.Callback, ...] = (), **kwargs) -> pl.Trainer:
    checkpoints = LastCheckpoint(run_dir / "checkpoints", config.checkpoint_every)
    options = dict(
        max_steps=config.max_steps, accelerator=config.accelerator, devices=config.devices,
        num_nodes=config.num_nodes, strategy=config.strategy, precision=config.precision,
        logger=run_loggers(config, run_dir, start), callbacks=[*callbacks, *(
            [DomainGradNorms()] if config.log_grad_norms else []), checkpoints],
        val_check_interval=None, check_val_every_n_epoch=None,
        limit_val_batches=config.val_batches if config.val_batches else 1.0,
        gradient_clip_val=config.optimizer.grad_clip or None, use_distributed_sampler=False,
        enable_progress_bar=progress, log_every_n_steps=1, deterministic=False,
        num_sanity_val_steps=0, enable_model_summary=True, default_root_dir=run_dir,
        enable_checkpointing=False)
    options["val_check_interval"] = min(config.val_every, config.max_steps)
    options.update(kwargs)
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    try:
        return pl.Trainer(**options)
    except (MisconfigurationException, ValueError, ImportError, RuntimeError) as err:
        chosen = ", ".join(f"{k}={options[k]!r}" for k in CONFIG_TRAINER_OPTIONS)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WorkbenchError(f"Lightning cannot train with {chosen}: {reason} (choose what this "
                             "machine has, e.g. --accelerator cpu --devices 1)") from None


def write_run_files(config: TrainingConfig, graphs: list[DomainGraph], module: Trainer,
                     run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = config_dict(config)
    write_atomic(run_dir / "config.yaml", dump_yaml(resolved))
    write_atomic(run_dir / "config.json", json.dumps(resolved, indent=1))
    write_atomic(run_dir / "graphs.json", json.dumps(
        {g.name: {"graph_id": g.graph_id, "graph": g.graph_name, "data_nodes": g.tensors.n_data,
                  "hidden_nodes": g.n_hidden} for g in graphs}, indent=1))
    write_atomic(run_dir / CATALOG_FILE, json.dumps(catalog_folders()))


def write_run_json(run_dir: Path, config: TrainingConfig, module: Trainer, trainer: pl.Trainer,
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
    write_atomic(run_dir / "run.json", json.dumps(info, indent=1))
