"""A trained model back from its checkpoint, with everything a forecast needs.

:func:`restore` reads a checkpoint file or a run dir. A self-describing checkpoint
(:func:`workbench.checkpoints.describe_run`) needs nothing else: its config, weights, the
statistics its normalisers were built from, its time step and its graphs' configs (or .pt
hashes) come from the file; the data comes from the catalog by name. A checkpoint from before
(no artifact) is read with its run dir, which supplies the config, and statistics are
computed from the data as in training.

:func:`forecast_inputs` gives :func:`workbench.evaluation.forecast` its model (graph rebuilt or
read, and checked against the recorded graph id), data (normalised with the checkpoint's
statistics) and the windows to roll out: every one of a split, or the one whose last input
step is a given start time.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import catalog
from .checkpoints import (
    catalog_folders,
    checkpoint_artifact,
    file_sha256,
    load_checkpoint,
    read_run_config,
    restore_weights,
)
from .config import resolve_config
from .domain_graphs import DomainGraph, domain_graph
from .errors import WorkbenchError
from .evaluation_inputs import check_normalise, evaluation_data, pool_statistics
from .sampling import DomainData
from .sampling_config import DomainConfig, SamplingConfig, common_step
from .statistics import VariableStats
from .times import calendar_name, iso, parse_date, step_text, to_ns
from .training import Trainer
from .training_config import TrainingConfig, sampling_config, training_config_from_dict


@dataclass
class Restored:
    """A checkpoint loaded (weights_only) with its config and, when it has one, its artifact."""

    checkpoint: Path
    config: TrainingConfig
    state: dict  # the loaded checkpoint
    artifact: dict | None  # None: a checkpoint from before artifacts, read with ``run_dir``
    run_dir: Path | None  # the run dir it was named by or found in; None: the file alone

    @property
    def name(self) -> str:
        """The run's name (its run dir's)."""
        if self.artifact is not None:
            return str(self.artifact["run"])
        return self.run_dir.name if self.run_dir is not None else self.checkpoint.stem


def restore(path: str | Path) -> Restored:
    """A run dir (its ``checkpoints/last.ckpt``) or a checkpoint file, loaded. A checkpoint
    file without an artifact is read with the run dir it sits in (``<run>/checkpoints/``)."""
    path = Path(path)
    if path.is_dir():
        config = read_run_config(path)
        ckpt = path / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            raise WorkbenchError(f"{path} has no checkpoints/last.ckpt: the run has not saved "
                                 "a checkpoint yet (train longer or resume it)")
        state = load_checkpoint(ckpt)
        return Restored(ckpt, config, state, checkpoint_artifact(state, str(ckpt)), path)
    state = load_checkpoint(path)
    artifact = checkpoint_artifact(state, str(path))
    if artifact is None:
        run_dir = path.parent.parent
        if not (run_dir / "config.yaml").is_file():
            raise WorkbenchError(f"{path} is a checkpoint from before self-describing "
                                 "checkpoints (no variables, statistics or graphs in it): "
                                 "evaluate the run dir it was trained in")
        return Restored(path, read_run_config(run_dir), state, None, run_dir)
    _search_recorded_catalogs(artifact)
    config = training_config_from_dict(state["workbench"]["config"],
                                       f"{path} (its training config)")
    return Restored(path, config, state, artifact, None)


def _search_recorded_catalogs(artifact: dict) -> None:
    """The catalog folders the run was trained with, where they exist, searched before the
    ones given now (--catalog, $WORKBENCH_CATALOG), which keep the last word."""
    recorded = [d for d in artifact.get("catalog_folders") or [] if Path(d).is_dir()]
    if recorded:
        given = catalog_folders()
        catalog.use_catalog(recorded)
        catalog.use_catalog(given)


def run_config(run_dir: str | Path) -> TrainingConfig:
    """The config of a run dir or checkpoint, once it has a checkpoint to roll out."""
    if Path(run_dir).is_file():
        return restore(run_dir).config
    config = read_run_config(run_dir)
    if not (Path(run_dir) / "checkpoints" / "last.ckpt").is_file():
        raise WorkbenchError(f"{run_dir} has no checkpoints/last.ckpt: the run has not saved "
                             "a checkpoint yet (train longer or resume it)")
    return config


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


# --------------------------------------------------------------------------- graphs


def restored_graph(restored: Restored, domain: DomainConfig, given: str | None,
                   cache=None) -> DomainGraph:
    """A domain's graph: ``given`` (--graph), else for a domain the checkpoint records the
    graph it was trained on, rebuilt from the recorded config (or read from the recorded .pt);
    checked against the recorded graph id, the hash of its nodes and edges (one line naming
    both ids, and a .pt's file hashes, when it differs). Other domains: their graph as
    :func:`domain_config` says."""
    recorded = ((restored.artifact or {}).get("domains", {}).get(domain.name) or {}).get("graph")
    cells = restored.config.boundary_cells
    if recorded is None or given is not None:
        graph = domain_graph(domain.graph, domain.name, domain.dataset, cells, cache)
    elif recorded["config_yaml"] is not None:
        with tempfile.TemporaryDirectory() as tmp:  # its own name: a cached build is reused
            path = Path(tmp) / f"{Path(recorded['spec']).stem}.yaml"
            path.write_bytes(recorded["config_yaml"].encode("utf-8"))
            graph = domain_graph(str(path), domain.name, domain.dataset, cells, cache)
    else:
        path = Path(recorded.get("file") or recorded["spec"])
        if not path.is_file():
            raise WorkbenchError(
                f"domain {domain.name!r} was trained on graph file {path} (sha256 "
                f"{recorded['file_sha256'][:12]}...), which is not there: pass that file, or "
                "a copy, with --graph")
        graph = domain_graph(str(path), domain.name, domain.dataset, cells, cache)
        if graph.graph_id != recorded["graph_id"]:  # the file was changed since
            given = (f"{path} (sha256 {file_sha256(path)[:12]}..., in training "
                     f"{recorded['file_sha256'][:12]}...)")
    if recorded is not None and graph.graph_id != recorded["graph_id"]:
        raise WorkbenchError(
            f"domain {domain.name!r}: graph {given or recorded['spec']} ({graph.graph_name!r}) "
            f"has id {graph.graph_id} but the checkpoint was trained on graph "
            f"{recorded['name']!r} with id "
            f"{recorded['graph_id']}: pass the graph it was trained on with --graph, or none "
            "to rebuild it from the checkpoint's graph config")
    return graph


# --------------------------------------------------------------------------- data


def _recorded_stats(record: dict) -> dict[str, VariableStats]:
    return {name: VariableStats(**values) for name, values in record["statistics"].items()}


def _check_dataset(record: dict, domain: DomainConfig) -> None:
    """The checkpoint's dataset is in the catalog (one line naming where it came from)."""
    if domain.dataset not in catalog.load_catalog():
        entry = record["catalog_entry"]
        source = entry.get("source") or {}
        where = source.get("path") or source.get("url") or source.get("kind")
        raise WorkbenchError(
            f"domain {domain.name!r}: dataset {domain.dataset!r} is not in the catalog; the "
            f"checkpoint was trained on it from {where} (catalog entry {entry.get('file')}): "
            f"add an entry named {domain.dataset!r} for that data in a folder given by "
            "--catalog")


def restored_data(restored: Restored, sampling: SamplingConfig, training: SamplingConfig,
                  domain: DomainConfig, normalise: str = "training",
                  cache=None) -> tuple[DomainData, dict]:
    """The :class:`DomainData` to roll ``domain`` out on, and how it is normalised (as
    :func:`workbench.evaluation_inputs.evaluation_data`): with a checkpoint's artifact, a
    training domain with the statistics it was trained with and an unseen one with the
    training domains' pooled from them (``own``: its own, computed from its data)."""
    check_normalise(normalise)
    artifact = restored.artifact
    if _computes_statistics(restored, domain.name, normalise):
        return evaluation_data(sampling, training, domain, normalise, cache)
    recorded = artifact["domains"].get(domain.name)
    one = dataclasses.replace(sampling, domains=(domain,))
    if recorded is None:
        trained = list(artifact["domains"])
        stats = pool_statistics([(_recorded_stats(d), d["train_values"])
                                 for d in artifact["domains"].values()])
        note = (f"the training domains' statistics ({', '.join(trained)}) pooled, each weighted "
                f"by its grid points x train time steps (an unseen domain: not {domain.name}'s "
                "own), from the checkpoint")
        return DomainData(one, domain, None, cache, stats=stats), {
            "normalisation": "training", "normalisation_note": note}
    _check_dataset(recorded, domain)
    data = DomainData(one, domain, None, cache, stats=_recorded_stats(recorded))
    if data.n_grid != recorded["n_grid"]:
        raise WorkbenchError(f"domain {domain.name!r}: dataset {domain.dataset!r} has "
                             f"{data.n_grid} grid points, the checkpoint's {recorded['n_grid']}: "
                             "the catalog name points to other data; point it to the data the "
                             "run trained on (--catalog)")
    if data.computed != recorded["computed_forcings"]:
        raise WorkbenchError(f"domain {domain.name!r}: forcings computed now "
                             f"{data.computed}, in training {recorded['computed_forcings']}: "
                             f"dataset {domain.dataset!r} is not the data the run trained on")
    if calendar_name(data.times) != recorded["calendar"]:
        raise WorkbenchError(f"domain {domain.name!r}: dataset {domain.dataset!r} has the "
                             f"{calendar_name(data.times)} calendar, the checkpoint's data the "
                             f"{recorded['calendar']}: point the catalog name to the data the "
                             "run trained on (--catalog)")
    note = (f"{domain.name}'s own statistics over its train split, as in training (a training "
            "domain), from the checkpoint")
    return data, {"normalisation": normalise, "normalisation_note": note}


def start_window(data: DomainData, start: str, steps: int) -> int:
    """The first time index of the window whose last input step is ``start`` (a time of the
    data at the run's step), ``steps`` lead steps long: one line when it is not inside the
    data or holds a missing date."""
    times, step = data.times, step_text(data.step)
    span = f"{iso(times[0])} .. {iso(times[-1])} every {step}"
    at = np.flatnonzero(to_ns(times) == to_ns(np.asarray([parse_date(
        start, times, f"--start {start}")]))[0])
    if at.size == 0:
        raise WorkbenchError(f"--start {start} is not a time of domain {data.name!r} "
                             f"({data.domain.dataset}: {span}): start at one of them")
    t0 = int(at[0]) - (data.input_steps - 1)
    if t0 < 0:
        raise WorkbenchError(f"--start {start}: the model reads {data.input_steps} input steps "
                             f"and domain {data.name!r} starts at {iso(times[0])}: start later")
    if t0 + data.window > times.size:
        raise WorkbenchError(f"--start {start} + {steps} steps of {step} ends after the data of "
                             f"domain {data.name!r} ({span}): start earlier or ask fewer --steps")
    window = np.arange(t0, t0 + data.window)
    if np.isin(window, data.missing).any():
        raise WorkbenchError(f"--start {start}: the window from {iso(times[t0])} holds a "
                             f"missing date of {data.domain.dataset!r}: choose another start")
    return t0


# --------------------------------------------------------------------------- forecast inputs


@dataclass
class ForecastInputs:
    """What :func:`workbench.evaluation.forecast` rolls out."""

    restored: Restored
    domain: DomainConfig
    data: DomainData
    module: Trainer
    normalisation: dict
    starts: np.ndarray  # first time index of every window
    steps: int


def forecast_inputs(source: str | Path, domain: str, split: str = "test",
                    steps: int | None = None, members: int = 1, graph: str | None = None,
                    normalise: str = "training", cache=None,
                    start: str | None = None,
                    tasks: tuple[str, ...] = ("forecast",)) -> ForecastInputs:
    """The model, data and windows of a forecast of ``source`` (a checkpoint or run dir) on
    ``domain``: every window of ``split``, or with ``start`` the one whose last input step is
    that time. ``tasks``: the training tasks the caller handles (masked-step scores:
    :mod:`workbench.evaluation_masked`)."""
    check_normalise(normalise)
    restored = restore(source)
    config = restored.config
    if config.task not in tasks:
        raise WorkbenchError(f"run {restored.name} trained the {config.task!r} task; only "
                             "forecast runs roll out")
    if members > 1 and not config.model.get("noise_channels"):
        raise WorkbenchError("members > 1 needs a model trained with noise_channels > 0")
    steps = steps or config.val_rollout
    dom = domain_config(config, domain, graph)
    training = sampling_config(config)  # its step, for any domain the run is rolled out on
    step = (restored.artifact["time_step"] if restored.artifact is not None
            else step_text(common_step(training)))
    training = dataclasses.replace(training, time_step=step)
    sampling = dataclasses.replace(training, rollout=steps)
    if start is not None:  # one window; a split only where statistics are computed (train)
        keep = ("train",) if _computes_statistics(restored, dom.name, normalise) else ()
        sampling = dataclasses.replace(sampling, splits=_splits(sampling.splits, keep))
        dom = dataclasses.replace(dom, splits=_splits(dom.splits, keep))
    data, normalisation = restored_data(restored, sampling, training, dom, normalise, cache)
    model_graph = restored_graph(restored, dom, graph, cache)
    module = Trainer(config, [model_graph], list(data.variables), [data.normalisers["variables"]])
    restore_weights(module.model, config, restored.checkpoint, restored.state)
    starts = (data.samples(split) if start is None
              else np.array([start_window(data, start, steps)]))
    return ForecastInputs(restored, dom, data, module.eval(), normalisation, starts, steps)


def _computes_statistics(restored: Restored, domain: str, normalise: str) -> bool:
    """Whether :func:`restored_data` computes statistics from the data (over its train
    split) rather than taking them from the checkpoint."""
    artifact = restored.artifact
    return artifact is None or (domain not in artifact["domains"] and normalise == "own")


def _splits(splits, keep: tuple[str, ...]):
    return None if splits is None else {k: v for k, v in splits.items() if k in keep}
