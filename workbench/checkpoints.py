"""Checkpoints and run-dir state: run ids and dirs, atomic writes, weights_only loading,
the ``last.ckpt`` callback, what a checkpoint carries to forecast on its own (its artifact),
a resumed run's loop and sampler position, and its metrics.

A run dir trains in segments, one per ``fit`` call (a resume starts a new one): each writes
its rows to ``metrics/from-step<N>.csv`` (N: the step it starts from) and ``metrics.csv`` is
their merge, every segment's rows before the step the next one resumed from.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import secrets
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only

from . import __version__, catalog
from .config import load_yaml, resolve_config
from .errors import WorkbenchError
from .finetune import add_lora
from .sampling import MultiDomainDataModule
from .times import calendar_name, iso, step_text
from .training_config import TrainingConfig, config_dict, model_config, training_config_from_dict

RUN_DIR_ENV = "WORKBENCH_TRAIN_RUN_DIR"  # the run dir a DDP process Lightning starts inherits
SEGMENTS = "metrics"  # run_dir/metrics/from-step<N>.csv: the rows of each fit call


# --------------------------------------------------------------------------- run dirs


def run_digest(config: TrainingConfig, options: Mapping | None = None) -> str:
    """Six hex digits of everything that changes a run: the resolved config (overrides
    included) and any other Trainer option."""
    spec = {"config": config_dict(config),
            "trainer": {k: repr(v) for k, v in sorted((options or {}).items())}}
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:6]


def create_run_dir(parent: Path, prefix: str, random_bytes: int = 3, tries: int = 1000) -> Path:
    """``parent/<prefix>-<random hex>``, created atomically (mkdir fails on an existing dir),
    with a new random part on every collision: two runs never share a dir."""
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(tries):
        path = parent / f"{prefix}-{secrets.token_hex(random_bytes)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise WorkbenchError(f"no free run dir {parent / prefix}-* after {tries} tries: clean up "
                         f"{parent} or pass --run-dir")


def default_run_dir(config: TrainingConfig, options: Mapping | None = None) -> Path:
    """A new ``runs/train-<name>-<time>-<digest>-<random>``, one for all processes of a run:
    the DDP processes Lightning starts inherit it through the environment; the tasks of one
    multi-task srun step share ``train-<name>-slurm<job>.<step>-<digest>``."""
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited and int(os.environ.get("LOCAL_RANK", "0")) > 0:
        return Path(inherited)
    prefix = f"train-{config.name}"
    digest = run_digest(config, options)
    step = os.environ.get("SLURM_STEP_ID")
    if step is not None and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        job = os.environ["SLURM_JOB_ID"]
        run_dir = Path(config.runs_dir) / f"{prefix}-slurm{job}.{step}-{digest}"
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = create_run_dir(Path(config.runs_dir), f"{prefix}-{stamp}-{digest}")
    os.environ[RUN_DIR_ENV] = str(run_dir)
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
        if not zipfile.is_zipfile(path):
            raise WorkbenchError(f"{path} is not a checkpoint (not the zip archive torch.save "
                                 "writes): name a .ckpt `workbench train` wrote, or its run "
                                 "dir") from None
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


def check_output_mode(state: Mapping, output: str, where: str) -> None:
    """One line where a checkpoint was trained with another ``normalisation.output`` than the
    config that starts from it: its weights would be read as the wrong quantity (a tendency
    as a state change). A bare state dict records no mode: nothing to check."""
    info = state.get("workbench")
    if not isinstance(info, Mapping):
        return
    saved = (info.get("config", {}).get("normalisation") or {}).get("output", "state")
    if saved != output:
        raise WorkbenchError(f"{where} was trained with normalisation.output {saved!r}, this "
                             f"config has {output!r}: set normalisation: {{output: {saved}}} "
                             "to start from it")


def model_state(state_dict: Mapping[str, torch.Tensor]) -> dict:
    return {k.removeprefix("model."): v for k, v in state_dict.items() if k.startswith("model.")}


CATALOG_FILE = "catalog.json"  # the catalog folders a run's datasets were found in


def read_run_config(run_dir: str | Path) -> TrainingConfig:
    """The resolved config a run dir was trained with (its config.yaml); the catalog folders
    it was trained with (its catalog.json) are searched again, so resuming or evaluating it
    finds its datasets without repeating --catalog."""
    from .catalog import use_catalog

    saved = Path(run_dir) / "config.yaml"
    if not saved.is_file():
        raise WorkbenchError(f"{run_dir} is not a training run dir (no config.yaml): train "
                             "first with `workbench train`")
    folders = Path(run_dir) / CATALOG_FILE
    if folders.is_file():
        use_catalog([d for d in json.loads(folders.read_text()) if Path(d).is_dir()])
    return training_config_from_dict(load_yaml(saved), str(saved))


def catalog_folders() -> list[str]:
    """The extra catalog folders searched now ($WORKBENCH_CATALOG, which --catalog and the
    notebooks' catalog parameter extend), for a run's catalog.json."""
    return [str(Path(p).resolve()) for p in os.environ.get("WORKBENCH_CATALOG", "").split(
        os.pathsep) if p]


def restore_weights(model: torch.nn.Module, config: TrainingConfig, run_dir: str | Path,
                    state: Mapping | None = None) -> None:
    """Put a run's last checkpoint (or the loaded checkpoint ``state``) into a freshly built
    model (LoRA adapters added first)."""
    if config.finetune.lora:
        add_lora(model, config.finetune.lora_rank, config.finetune.lora_alpha,
                 config.finetune.lora_include)
    ckpt = Path(run_dir) / "checkpoints" / "last.ckpt" if Path(run_dir).is_dir() else Path(run_dir)
    state = load_checkpoint(ckpt) if state is None else state
    load_weights(model, model_state(state["state_dict"]), str(ckpt))


# --------------------------------------------------------------------------- artifact

ARTIFACT_FORMAT = 1  # bump when what a checkpoint carries changes


def describe_run(module) -> dict | None:
    """What a checkpoint carries so that it forecasts on its own: ``checkpoint["workbench"]
    ["artifact"]``, plain values only (``torch.load(weights_only=True)`` reads it). None when
    ``module`` (a :class:`workbench.training.Trainer`) is not being fit with a DataModule.

    Keys: ``format``, ``workbench_version``, ``run`` (the run dir's name), ``task``,
    ``variables``, ``forcings``, ``statics``, ``input_steps``, ``time_step`` (the common step),
    ``imputer``, ``fixed_scaling``, ``model`` (the model config, channel counts included),
    ``catalog_folders`` and ``domains``: per domain its ``dataset``, ``catalog_entry`` (the
    entry's summary: where the data is), ``n_grid``, ``grid_shape``, ``calendar``,
    ``computed_forcings``, ``graph`` (:func:`graph_record`), ``statistics`` (per variable,
    what its normalisers were built from), ``normalisers`` (per group, ``Normaliser.state``),
    ``train_period`` and ``train_values`` (grid points x train time steps: the weight of its
    statistics when pooled for an unseen domain)."""
    datamodule = getattr(module.trainer, "datamodule", None)
    if datamodule is None or not getattr(datamodule, "domains", None):
        return None
    sampling, graphs = module.sampling, {g.name: g for g in module.graphs}
    domains = {}
    for data in datamodule.domains:
        lo, hi = data.splits.get("train", (0, -1))
        shape = data.ds.attrs.get("grid_shape")
        domains[data.name] = {
            "dataset": data.domain.dataset,
            "catalog_entry": catalog.get_entry(data.domain.dataset).summary(),
            "n_grid": int(data.n_grid),
            "grid_shape": None if shape is None else [int(n) for n in shape],
            "calendar": calendar_name(data.times),
            "computed_forcings": list(data.computed),
            "graph": graph_record(data.domain.graph, graphs[data.name]),
            "statistics": {k: dataclasses.asdict(v) for k, v in data.stats.items()},
            "normalisers": {group: n.state() for group, n in data.normalisers.items()},
            "train_period": [iso(data.times[lo]), iso(data.times[hi])] if hi >= lo else None,
            "train_values": int(data.n_grid * (hi - lo + 1)),
        }
    return {
        "format": ARTIFACT_FORMAT, "workbench_version": __version__,
        "run": Path(module.trainer.default_root_dir).name, "task": module.config.task,
        "variables": list(sampling.variables), "forcings": list(sampling.forcings),
        "statics": list(sampling.statics), "input_steps": int(sampling.input_steps),
        "time_step": step_text(datamodule.domains[0].step),
        "imputer": _plain(dataclasses.asdict(sampling.imputer)),
        "fixed_scaling": {k: dataclasses.asdict(v) for k, v in sampling.fixed_scaling.items()},
        "model": _plain(dataclasses.asdict(model_config(module.config, sampling))),
        "catalog_folders": catalog_folders(), "domains": domains}


def _plain(value):
    """Tuples as lists: the JSON types a weights_only load reads back."""
    return json.loads(json.dumps(value, default=list))


def graph_record(spec: str | None, graph) -> dict:
    """A domain's graph as a checkpoint records it: the spec it was trained with, its name,
    id (the content hash of its nodes and edges) and sizes, and either the graph config's
    YAML text (``config_yaml``, rebuilt from it) or the .pt file's absolute path and sha256
    (``file``, ``file_sha256``)."""
    record = {"spec": str(spec), "name": graph.graph_name, "graph_id": graph.graph_id,
              "data_nodes": int(graph.tensors.n_data), "hidden_nodes": int(graph.n_hidden),
              "config_yaml": None, "file": None, "file_sha256": None}
    if str(spec).endswith(".pt"):
        record["file"] = str(Path(spec).resolve())
        record["file_sha256"] = file_sha256(spec)
    else:
        record["config_yaml"] = resolve_config(spec, "graphs").read_bytes().decode("utf-8")
    return record


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_artifact(state, where: str) -> dict | None:
    """The artifact (:func:`describe_run`) of a loaded checkpoint; None for a checkpoint from
    before artifacts (its run dir supplies the rest). One line for a file that is no
    workbench checkpoint, or one a newer workbench wrote."""
    info = state.get("workbench") if isinstance(state, Mapping) else None
    if not isinstance(info, Mapping) or "config" not in info or "state_dict" not in state:
        raise WorkbenchError(f"{where} is not a workbench checkpoint (it holds no weights and "
                             "training config): name a checkpoint `workbench train` wrote, or "
                             "its run dir")
    artifact = info.get("artifact")
    if artifact is not None and artifact.get("format", 0) > ARTIFACT_FORMAT:
        raise WorkbenchError(f"{where} was written by workbench {artifact.get('workbench_version')}"
                             f" (checkpoint format {artifact.get('format')}, this workbench reads "
                             f"up to {ARTIFACT_FORMAT}): upgrade the workbench")
    return artifact


# --------------------------------------------------------------------------- resume


def resume_sampler(datamodule: MultiDomainDataModule, state: dict) -> None:
    """Where the sampler continues: in the epoch in progress, after the batches the checkpoint
    has seen; at the start of the next epoch when it was saved on an epoch's last batch."""
    loop = state.get("loops", {}).get("fit_loop", {})
    batches = loop.get("epoch_loop.batch_progress", {})
    epoch = loop.get("epoch_progress", {}).get("current", {}).get("processed", 0)
    done = batches.get("current", {}).get("processed", 0)
    if batches.get("is_last_batch"):
        epoch, done = epoch + 1, 0
    datamodule.resume = (int(epoch), int(done))


def count_resumed_epoch(fit_loop) -> None:
    """Count the epoch a run resumed at an epoch's end starts, as an uninterrupted run does.

    Resuming from a checkpoint saved on an epoch's last batch (in on_train_batch_end),
    Lightning 2.6 marks that epoch processed and completed, then starts the next one without
    counting it ready and started (its restarted-mid-epoch path skips both). Every checkpoint
    of the resumed run then holds ready == started == processed, which a second resume from an
    epoch's end reads as "no epoch in progress": the finished epoch is not closed, and
    ``set_epoch(processed)`` replays its batch order. Called once the loop state is restored.
    """
    if (fit_loop.restarted_mid_epoch and fit_loop.epoch_loop.restarted_on_train_batch_end
            and fit_loop.epoch_loop.batch_progress.is_last_batch):
        fit_loop.epoch_progress.increment_ready()
        fit_loop.epoch_progress.increment_started()


# --------------------------------------------------------------------------- metrics


def segment_path(run_dir: Path, start: int) -> Path:
    return Path(run_dir) / SEGMENTS / f"from-step{start:08d}.csv"


def segments(run_dir: Path) -> list[tuple[int, Path]]:
    """(start step, path) of a run dir's metrics segments, in order."""
    found = [(int(p.stem.removeprefix("from-step")), p)
             for p in (Path(run_dir) / SEGMENTS).glob("from-step*.csv")]
    return sorted(found)


def begin_segment(run_dir: Path, start: int) -> Path:
    """The metrics file of a fit call that starts at ``start``: segments from ``start`` on are
    superseded (removed; this call trains those steps again), earlier ones stay and metrics.csv
    is their merge. A run dir from before segments keeps its metrics.csv as the first one."""
    folder = Path(run_dir) / SEGMENTS
    folder.mkdir(parents=True, exist_ok=True)
    legacy = Path(run_dir) / "metrics.csv"
    if legacy.is_file() and not segments(run_dir):
        os.replace(legacy, segment_path(run_dir, 0))
    for first, path in segments(run_dir):
        if first >= start:
            path.unlink()
    path = segment_path(run_dir, start)
    path.touch()  # bounds the segment before it
    merge_metrics(run_dir)
    return path


def _complete_rows(path: Path, end: int | None) -> tuple[list[str], list[dict]]:
    """A segment's header and its rows before step ``end``; a row cut short by a kill (missing
    fields, an unreadable step) is left out."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = []
        for row in reader:
            if None in row or None in row.values():
                continue
            try:
                step = int(row["step"])
            except (KeyError, ValueError):
                continue
            if end is None or step < end:
                rows.append(row)
        return list(reader.fieldnames or []), rows


def merge_metrics(run_dir: Path) -> Path | None:
    """Write metrics.csv (atomically): every segment's rows before the step the next segment
    resumed from, columns sorted as Lightning's CSVLogger writes them. None: no segment."""
    parts = segments(run_dir)
    target = Path(run_dir) / "metrics.csv"
    keys: set[str] = set()
    rows: list[dict] = []
    for (_, path), following in zip(parts, parts[1:] + [(None, None)], strict=True):
        header, kept = _complete_rows(path, following[0])
        keys.update(header)
        rows += kept
    if not keys:
        target.unlink(missing_ok=True)
        return None
    _write_rows(target, sorted(keys), rows)
    return target


def _write_rows(path: Path, keys: list[str], rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


class SegmentLogger(Logger):
    """Lightning logger of one segment: rows appended to ``path`` as Lightning saves them
    (every logged step); a new column rewrites the file atomically, the old rows first."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        self._keys: list[str] = []  # the header on disk
        self._rows: list[dict] = []

    @property
    def name(self) -> str:
        return SEGMENTS

    @property
    def version(self) -> str:
        return self.path.stem

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        row = {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in metrics.items()}
        self._rows.append({**row, "step": step})

    @rank_zero_only
    def save(self) -> None:
        if not self._rows:
            return
        keys = sorted(set(self._keys).union(*self._rows))
        if keys != self._keys or not self.path.is_file():
            old = _complete_rows(self.path, None)[1] if self.path.is_file() else []
            _write_rows(self.path, keys, old + self._rows)
        else:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=keys).writerows(self._rows)
        self._keys, self._rows = keys, []


# --------------------------------------------------------------------------- checkpoints


class LastCheckpoint(pl.Callback):
    """Writes checkpoints/last.ckpt every ``every`` steps and at the last step.

    The state is saved from inside the training loop (after the optimizer step), so the loop
    state it holds is the one a resumed run continues from. The file becomes last.ckpt (an
    atomic rename) only once that step's metrics rows, training and validation, are on disk:
    before the next step starts or when training ends. A run killed at any point resumes from
    a checkpoint whose earlier rows are all kept; the steps after it are trained again."""

    def __init__(self, directory: Path, every: int, keep_numbered: int = 2):
        self.directory, self.every, self.keep_numbered = Path(directory), every, keep_numbered
        self.tmp = self.directory / f".last.ckpt.tmp-{os.getpid()}"
        self._pending: int | None = None  # the step of a saved, not yet published checkpoint

    def on_train_start(self, trainer, pl_module) -> None:
        count_resumed_epoch(trainer.fit_loop)
        if trainer.is_global_zero:  # the leftovers of killed runs
            for stale in self.directory.glob(".last.ckpt.tmp-*"):
                stale.unlink(missing_ok=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % self.every and step < trainer.max_steps and not trainer.should_stop:
            return  # saved every ``every`` steps, at the last and where a callback stops
        trainer.save_checkpoint(self.tmp, weights_only=False)  # collective under DDP
        self._pending = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._publish(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._publish(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._publish(trainer)

    def on_exception(self, trainer, pl_module, exception) -> None:
        """A step that failed may not have logged its rows: its checkpoint is not published."""
        self._pending = None
        if trainer.is_global_zero:
            self.tmp.unlink(missing_ok=True)

    def _publish(self, trainer) -> None:
        step, self._pending = self._pending, None
        if step is None or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:  # the rows before ``step`` reach the disk first
            logger.save()
        target = self.directory / "last.ckpt"
        os.replace(self.tmp, target)
        if self.keep_numbered and step % self.every == 0:
            numbered = self.directory / f"step{step}.ckpt"
            numbered.unlink(missing_ok=True)
            os.link(target, numbered)
            old = sorted(self.directory.glob("step*.ckpt"),
                         key=lambda p: int(p.stem.removeprefix("step")))
            for path in old[:-self.keep_numbered]:
                path.unlink(missing_ok=True)


def _tracking_logger(config: TrainingConfig, run_dir: Path):
    from pytorch_lightning import loggers

    package = config.logger  # tensorboard or mlflow (csv is always on: see run_loggers)
    try:
        __import__(package)
    except ImportError:
        raise WorkbenchError(f"logger {config.logger!r} needs the {package} package: pip install "
                             f"{package} (or `pip install -e .[tracking]`), or use logger: "
                             "csv") from None
    # the metrics segment (metrics.csv) is always written too: notebooks and reports read it
    if config.logger == "tensorboard":
        return loggers.TensorBoardLogger(run_dir, name="tensorboard", version="")
    return loggers.MLFlowLogger(experiment_name=config.name,
                                tracking_uri=os.environ.get("MLFLOW_TRACKING_URI",
                                                            f"file:{run_dir.resolve() / 'mlruns'}"))


def run_loggers(config: TrainingConfig, run_dir: Path, start: int) -> list:
    """The metrics segment from step ``start`` always (metrics.csv is their merge), plus
    TensorBoard or MLflow when configured."""
    csv = SegmentLogger(segment_path(run_dir, start))
    return [csv] if config.logger == "csv" else [csv, _tracking_logger(config, run_dir)]
