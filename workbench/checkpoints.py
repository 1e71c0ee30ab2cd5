"""Checkpoints and run-dir state: run ids and dirs, atomic writes, weights_only loading,
the ``last.ckpt`` callback, a resumed run's sampler position and its metrics.csv segments."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import pytorch_lightning as pl
import torch

from .errors import WorkbenchError
from .sampling import MultiDomainDataModule
from .training_config import TrainingConfig, config_dict


def new_run_id(config: TrainingConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    digest = hashlib.sha1(json.dumps(config_dict(config), sort_keys=True).encode()).hexdigest()
    return f"train-{config.name}-{stamp}-{digest[:6]}"


def default_run_dir(config: TrainingConfig) -> Path:
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


def write_atomic(path: Path, text: str) -> None:
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


def set_aside_metrics(run_dir: Path) -> Path | None:
    """Lightning's CSV logger starts metrics.csv afresh: keep the rows of the first part."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    aside = run_dir / "metrics.before-resume.csv"
    os.replace(path, aside)
    return aside


def merge_metrics(run_dir: Path, previous: Path, resumed_at: int) -> None:
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


def model_state(state_dict: Mapping[str, torch.Tensor]) -> dict:
    return {k.removeprefix("model."): v for k, v in state_dict.items() if k.startswith("model.")}


def resume_sampler(datamodule: MultiDomainDataModule, state: dict) -> None:
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
