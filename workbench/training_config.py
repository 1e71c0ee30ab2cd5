"""Training configs: the YAML a run trains from, validated into dataclasses.

``load_training_config`` reads a preset or YAML (its ``sampling`` a preset, path or mapping),
``apply_overrides`` applies a notebook's or command line's changes, ``config_dict`` gives the
resolved config back as plain values, ``sampling_config`` and ``model_config`` the configs of
the data and the model it implies.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import Field

from .config import (
    Flag,
    NonNegative,
    Positive,
    Rate,
    check_choice,
    check_keys,
    load_yaml,
    parse,
    resolve_config,
    typed,
)
from .errors import WorkbenchError
from .finetune import FineTuneConfig, finetune_config_from_dict
from .losses import LossConfig, loss_config_from_dict
from .model import ModelConfig, model_config_from_dict
from .sampling_config import SamplingConfig, input_channels, sampling_config_from_dict
from .tasks import MaskingConfig, masking_config_from_dict

TASKS = ("forecast", "bert", "interpolation")
OUTPUTS = ("state", "tendency")  # normalisation.output
STATISTICS = ("domain", "shared")  # normalisation.statistics
LOGGERS = ("csv", "tensorboard", "mlflow")
MODEL_KEYS = ("processor", "mapper", "hidden_dim", "processor_layers", "heads", "mlp_ratio",
              "noise_channels", "length_scale_km", "checkpointing",
              "attention_edges")


NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


@typed
@dataclass(frozen=True)
class OptimizerConfig:
    lr: NonNegativeFloat = 1e-3  # 0 freezes the weights (a persistence baseline run)
    weight_decay: NonNegativeFloat = 0.0
    warmup_steps: NonNegative = 0
    schedule: str = "cosine"  # cosine (to min_lr_ratio * lr at max_steps) | constant
    min_lr_ratio: Rate = 0.1
    grad_clip: NonNegativeFloat = 1.0  # gradient norm clipping (0: off)


def lr_factor(opt: OptimizerConfig, max_steps: int):
    """The learning rate's factor at each step: linear warm-up, then constant or cosine down
    to ``min_lr_ratio`` at ``max_steps`` (a LambdaLR function)."""
    def factor(step: int) -> float:
        if opt.warmup_steps and step < opt.warmup_steps:
            return (step + 1) / opt.warmup_steps
        if opt.schedule == "constant":
            return 1.0
        span = max(1, max_steps - opt.warmup_steps)
        progress = min(1.0, (step - opt.warmup_steps) / span)
        return opt.min_lr_ratio + (1 - opt.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


@typed
@dataclass(frozen=True)
class RolloutConfig:
    """anemoi's rollout schedule: forecast steps per training sample, ``start`` at first, one
    more every ``epoch_increment`` epochs or every ``step_increment`` steps, up to ``max``."""
    start: Positive = 1
    epoch_increment: NonNegative = 0
    step_increment: NonNegative = 0
    max: Positive = 1

    def at(self, epoch: int, step: int) -> int:
        """The rollout of a training step in ``epoch`` (both counted from 0)."""
        grown = (epoch // self.epoch_increment if self.epoch_increment
                 else step // self.step_increment if self.step_increment else 0)
        return min(self.max, self.start + grown)


@typed
@dataclass(frozen=True)
class NormalisationConfig:
    """What the model outputs and which statistics normalise each domain.

    ``output``: ``state``, the model's output added to the last input state is the next
    normalised state; ``tendency`` (anemoi's tendency models, GraphCast), the output is the
    next state's change from the last input state divided by the variable's ``diff_std``
    (std of one-step differences), and the loss is taken on those tendencies
    (:meth:`workbench.statistics.Normaliser.next_state`). ``statistics``: ``domain``, each
    domain's own over its train split; ``shared``, the training domains' pooled (weighted by
    grid points x train time steps: :func:`workbench.evaluation_inputs.training_statistics`)
    for every domain."""
    output: str = "state"
    statistics: str = "domain"

    @property
    def tendency(self) -> bool:
        return self.output == "tendency"


@typed
@dataclass(frozen=True)
class TrainingConfig:
    name: str
    sampling: Mapping  # a sampling config (mapping), resolved from a preset or path
    model: Mapping = field(default_factory=dict)  # ModelConfig keys except the data sizes
    task: str = "forecast"
    members: Positive = 1  # ensemble members per sample (needs model.noise_channels > 0)
    loss: LossConfig = field(default_factory=LossConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    finetune: FineTuneConfig = field(default_factory=FineTuneConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    rollout: RolloutConfig | None = None  # a schedule (None: sampling.rollout throughout)
    normalisation: NormalisationConfig = field(default_factory=NormalisationConfig)
    max_steps: Positive = 200
    val_rollout: Positive = 4  # validation lead steps (4 x 6 h = 24 h)
    val_every: Positive = 100  # validate every N training steps (and at the end)
    val_batches: Positive | None = None  # per validation (None: the whole split)
    checkpoint_every: Positive = 100
    log_grad_norms: Flag = False  # train/grad_norm_<domain>, update_norm_<domain> (diagnostics)
    boundary_cells: NonNegative = 2  # LAM rows/columns overwritten from the truth at each step
    init_from: str | None = None  # a checkpoint whose weights start this run (fine-tuning)
    logger: str = "csv"
    seed: NonNegative = 0
    accelerator: str = "auto"
    devices: Positive | str = 1  # per node: a count, "auto" or Lightning's device list
    num_nodes: Positive = 1
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
    base = load_yaml(resolve_config(preset, "sampling")) if preset else {}
    return {**base, **raw}


def training_config_from_dict(raw: Mapping, where: str = "training config") -> TrainingConfig:
    """Validate a plain mapping (YAML) into a TrainingConfig; errors name the key and fix."""
    raw = dict(check_keys(raw, TrainingConfig, where, required=("name", "sampling")))
    raw["sampling"] = _sampling_mapping(raw["sampling"])
    sampling_config_from_dict(raw["sampling"], f"{where} (sampling)")  # validates
    raw["model"] = dict(check_keys(raw.get("model") or {}, MODEL_KEYS, f"{where} (model)"))
    model_config_from_dict({"n_variables": 1, **raw["model"]}, f"{where} (model)")  # types
    raw["loss"] = loss_config_from_dict(raw.get("loss"), f"{where} (loss)")
    raw["masking"] = masking_config_from_dict(raw.get("masking") or {}, f"{where} (masking)")
    raw["finetune"] = finetune_config_from_dict(raw.get("finetune") or {}, f"{where} (finetune)")
    config = parse(TrainingConfig, raw, where)
    _validate(config)
    return config


def _validate(config: TrainingConfig) -> None:
    if config.task not in TASKS:
        raise WorkbenchError(f"training: task {config.task!r}; use one of {', '.join(TASKS)}")
    if config.logger not in LOGGERS:
        raise WorkbenchError(f"training: logger {config.logger!r}; use one of {', '.join(LOGGERS)}")
    if config.members > 1 and not config.model.get("noise_channels"):
        raise WorkbenchError("training: members > 1 needs model.noise_channels > 0 (members "
                             "differ by the noise injected into the processor)")
    ensemble_losses = {"crps", "stats"} & set(config.loss.losses)
    if ensemble_losses and config.members < 2:
        raise WorkbenchError(f"training: losses {sorted(ensemble_losses)} need members >= 2")
    if config.optimizer.schedule not in ("cosine", "constant"):
        raise WorkbenchError(f"optimizer: schedule {config.optimizer.schedule!r}; use cosine "
                             "or constant")
    schedule = config.rollout
    if schedule is not None:
        if config.task != "forecast":
            raise WorkbenchError(f"training: a rollout schedule applies to forecast training, "
                                 f"not {config.task}; remove `rollout`")
        if schedule.epoch_increment and schedule.step_increment:
            raise WorkbenchError("rollout: give epoch_increment or step_increment, not both")
        if schedule.max < schedule.start:
            raise WorkbenchError(f"rollout: max {schedule.max} is below start "
                                 f"{schedule.start}; raise max")
    norm = config.normalisation
    check_choice(norm.output, OUTPUTS, "normalisation.output")
    check_choice(norm.statistics, STATISTICS, "normalisation.statistics")
    if norm.tendency and config.task != "forecast":
        raise WorkbenchError(f"training: normalisation.output tendency applies to forecast "
                             f"training, not {config.task}; use output: state")
    if config.task == "interpolation" and config.sampling.get("rollout", 1) < 2:
        raise WorkbenchError("training: interpolation needs sampling.rollout >= 2 (the "
                             "middle steps of the window are masked)")


def load_training_config(path: str | Path) -> TrainingConfig:
    """A training YAML (configs/training/*.yaml or a preset name)."""
    path = resolve_config(path, "training")
    config = training_config_from_dict(load_yaml(path), str(path))
    return dataclasses.replace(config, file=path)


def apply_overrides(config: TrainingConfig, max_steps: int | None = None,
                    domains: list[str] | None = None, task: str | None = None,
                    losses: list[str] | None = None, seed: int | None = None,
                    init_from: str | None = None) -> TrainingConfig:
    """The config with a notebook's or command line's overrides (None/empty: keep; a
    ``seed`` of 0 is a seed; ``init_from`` a checkpoint or a training run dir, whose
    ``checkpoints/last.ckpt`` it means)."""
    raw = config_dict(config)
    if init_from:
        path = Path(init_from)
        path = path / "checkpoints" / "last.ckpt" if path.is_dir() else path
        if not path.is_file():
            raise WorkbenchError(f"init_from {init_from}: no checkpoint there (give a .ckpt file "
                                 "or a training run dir with checkpoints/last.ckpt)")
        raw["init_from"] = str(path)
    if max_steps:
        raw["max_steps"] = int(max_steps)
    if seed is not None:
        raw["seed"] = seed  # checked as the config's own seed (a whole number >= 0)
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
                     config.finetune.max_rollout if config.finetune.replay_size else 1,
                     config.rollout.max if config.rollout else 1)
    return dataclasses.replace(sampling, rollout=needed)


def model_config(config: TrainingConfig, sampling: SamplingConfig) -> ModelConfig:
    """The model's config: the training config's ``model`` plus the data's channel counts
    (the imputer's was-missing channels included: :func:`sampling_config.input_channels`)."""
    raw = dict(config.model)
    steps = sampling.input_steps
    if config.task != "forecast":  # the whole window in and out
        steps = sampling.input_steps + config.sampling.get("rollout", 1)
    channels = input_channels(sampling)  # was-missing channels included
    raw.update(n_variables=channels["variables"], n_missing=channels["missing"],
               n_forcings=channels["forcings"], n_statics=channels["statics"], input_steps=steps,
               output_steps=1 if config.task == "forecast" else steps)
    return model_config_from_dict(raw)
