"""Sampling configs: the domains, variables, splits and batch settings of a multi-domain
training, validated from YAML (a preset in configs/sampling/, a path or a mapping).

Split dates are checked here for their order and overlap whatever the calendar (2000-02-30
sorts after 2000-02-29 in a 360_day run); whether a date exists in a domain's calendar is
checked where its data is known (:class:`workbench.sampling.DomainData`). Every domain trains
at one common step (:func:`common_step`): the config's ``time_step``, or the domains' own
step when they agree; a domain whose step divides it is subsampled."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import pandas as pd
from pydantic import BeforeValidator, Field

from .config import Flag, NonNegative, Positive, load_yaml, parse, resolve_config, typed
from .errors import WorkbenchError
from .statistics import FixedScaling
from .times import Duration, date_fields, parse_step, step_text

SPLITS = ("train", "val", "test")
WEIGHTINGS = ("weights", "size")
IMPUTERS = ("mean", "constant", "nearest_time")


Split = tuple[str, str]  # [start, end]: inclusive dates
Weight = Annotated[float, Field(gt=0, allow_inf_nan=False)]


@typed
@dataclass(frozen=True)
class DomainConfig:
    name: str  # the domain label carried by every batch
    dataset: str  # catalog name
    graph: str | None = None  # graph preset, YAML or .pt used for this domain
    weight: Weight = 1.0  # share of training batches (domain_weighting: weights)
    loss_weight: Weight = 1.0  # per-domain loss scaler
    splits: Mapping[str, Split] | None = None  # overrides the config's splits
    index: str | None = None  # a whole-domain {sampling_id}.samples.csv: train on its t_index rows
    sources: tuple[str, ...] = ()  # more datasets of this domain (same grid and times)


@typed
@dataclass(frozen=True)
class Imputation:
    """How one variable's missing values (NaN) are filled (:mod:`workbench.imputation`)."""

    kind: str = "mean"  # mean | constant | nearest_time
    value: Annotated[float, Field(allow_inf_nan=False)] | None = None  # constant: physical units


def _kind_only(raw):
    """``nearest_time`` is short for ``{kind: nearest_time}``."""
    return {"kind": raw} if isinstance(raw, str) else raw


Rule = Annotated[Imputation, BeforeValidator(_kind_only)]


@typed
@dataclass(frozen=True)
class ImputerConfig:
    """anemoi's imputer shape: a ``default`` and per-variable choices, each a kind name or
    ``{kind: constant, value: ...}``; ``missing_channel`` names the variables (prognostic,
    forcing or static) that also get a 0/1 "was missing" input channel."""

    default: Rule = Imputation()
    variables: Mapping[str, Rule] = field(default_factory=dict)
    missing_channel: tuple[str, ...] = ()

    def imputation(self, name: str) -> Imputation:
        """The imputation of variable ``name`` (its own, else the default)."""
        return self.variables.get(name, self.default)


@typed
@dataclass(frozen=True)
class SamplingConfig:
    name: str
    domains: tuple[DomainConfig, ...]
    variables: tuple[str, ...]  # prognostic: inputs and targets
    splits: Mapping[str, Split]  # split -> [start, end] (inclusive dates)
    forcings: tuple[str, ...] = ()
    statics: tuple[str, ...] = ()
    input_steps: Positive = 1
    rollout: Positive = 1
    batch_size: Positive = 4
    domain_weighting: str = "weights"  # "weights" | "size"
    batches_per_epoch: Positive | None = None  # default: every training batch once
    seed: NonNegative = 0
    num_workers: NonNegative = 0
    fixed_scaling: Mapping[str, FixedScaling] = field(default_factory=dict)
    # Aurora (seed 003): with several sources per domain, each batch takes input and target
    # from one source (True) or draws the target's source independently (False)
    same_source: Flag = True
    # the step every domain is sampled at ("6h"): a multiple of each domain's own step
    # (hourly data subsampled every 6th field); default: the domains' step when they agree
    time_step: Duration | None = None
    imputer: ImputerConfig = field(default_factory=ImputerConfig)  # missing values (NaN)
    file: Path | None = field(default=None, compare=False)


def sampling_config_from_dict(raw: Mapping, where: str = "sampling config") -> SamplingConfig:
    """Validate a plain mapping (YAML) into a SamplingConfig; errors name the key and fix."""
    config = parse(SamplingConfig, raw, where)
    validate(config, where)
    return config


def load_sampling_config(path: str | Path) -> SamplingConfig:
    """A sampling YAML (configs/sampling/*.yaml or a preset name)."""
    path = resolve_config(path, "sampling")
    config = sampling_config_from_dict(load_yaml(path), str(path))
    return dataclasses.replace(config, file=path)


def validate(config: SamplingConfig, where: str = "sampling") -> None:
    """What the types cannot say: unique domains, known splits that do not overlap."""
    if not config.domains:
        raise WorkbenchError(f"{where}: no domain listed under `domains`")
    names = [d.name for d in config.domains]
    if len(set(names)) != len(names):
        raise WorkbenchError(f"{where}: domain names must be unique, got {names}")
    if config.domain_weighting not in WEIGHTINGS:
        raise WorkbenchError(f"{where}: domain_weighting {config.domain_weighting!r}: use "
                             "weights or size")
    check_splits(config.splits, where)
    for d in config.domains:
        if d.splits:
            check_splits(d.splits, f"{where}: domain {d.name!r}")
    check_imputer(config, f"{where}: imputer")


def check_imputer(config: SamplingConfig, where: str) -> None:
    """Known kinds, a finite value for (and only for) ``constant``, and only names the
    config reads (variables, forcings, statics)."""
    imputer = config.imputer
    names = [*config.variables, *config.forcings, *config.statics]
    rules = {"default": imputer.imputation(""),
             **{f"variables.{n}": imputer.imputation(n) for n in imputer.variables}}
    for key, rule in rules.items():
        if rule.kind not in IMPUTERS:
            raise WorkbenchError(f"{where}.{key}: unknown kind {rule.kind!r}; use one of "
                                 f"{', '.join(IMPUTERS)}")
        if (rule.kind == "constant") != (rule.value is not None):
            raise WorkbenchError(f"{where}.{key}: " + (
                "kind constant needs a value in physical units, e.g. {kind: constant, value: "
                "271.35}" if rule.value is None else f"value {rule.value} is only read by kind "
                f"constant, not {rule.kind}"))
    for key, listed in (("variables", list(imputer.variables)),
                        ("missing_channel", list(imputer.missing_channel))):
        unknown = [n for n in listed if n not in names]
        if unknown:
            raise WorkbenchError(f"{where}.{key}: {unknown} are not among the config's variables, "
                                 f"forcings or statics ({', '.join(names)})")
    if len(set(imputer.missing_channel)) != len(imputer.missing_channel):
        raise WorkbenchError(f"{where}.missing_channel names a variable twice: "
                             f"{list(imputer.missing_channel)}")


def input_channels(config: SamplingConfig) -> dict[str, int]:
    """The model's channel counts of a sampling config: ``variables`` (prognostic),
    ``missing`` (prognostic variables with a was-missing channel, one per input step),
    ``forcings`` and ``statics`` (each with their was-missing channels appended)."""
    listed = set(config.imputer.missing_channel)
    return {"variables": len(config.variables),
            "missing": sum(v in listed for v in config.variables),
            "forcings": len(config.forcings) + len(listed & set(config.forcings)),
            "statics": len(config.statics) + len(listed & set(config.statics))}


def check_splits(splits: Mapping[str, Split], where: str) -> None:
    """Known split names, dates that parse, start <= end, and no two splits overlapping
    (validation or test on training data would flatter every score)."""
    periods = {}
    for split, (start, end) in splits.items():
        if split not in SPLITS:
            raise WorkbenchError(f"{where}: unknown split {split!r}; use {', '.join(SPLITS)}")
        try:  # fields, not timestamps: 2000-02-30 is a date of a 360_day calendar
            lo, hi = date_fields(start), date_fields(end)
        except (ValueError, TypeError):
            raise WorkbenchError(f"{where}: split {split} [{start}, {end}] is not two dates "
                                 "(e.g. 2020-01-01, 2020-02-29T18:00)") from None
        if lo > hi:
            raise WorkbenchError(f"{where}: split {split} starts after it ends ({start} > {end})")
        periods[split] = (lo, hi)
    for (a, (lo_a, hi_a)), (b, (lo_b, hi_b)) in itertools.combinations(periods.items(), 2):
        if lo_a <= hi_b and lo_b <= hi_a:
            raise WorkbenchError(f"{where}: splits {a} ({splits[a][0]} .. {splits[a][1]}) and {b} "
                                 f"({splits[b][0]} .. {splits[b][1]}) overlap; make the periods "
                                 "disjoint so no sample is scored on data it trained on")


def common_step(config: SamplingConfig) -> pd.Timedelta:
    """The step every domain of ``config`` is sampled at: its ``time_step``, each domain's
    catalog ``time_step`` (checked against the data when opened) dividing it, or, unset, the
    domains' step when they all have one; a one-line error names the domain that does not fit."""
    from .catalog import get_entry

    steps = {d.name: parse_step(get_entry(d.dataset).time_step) for d in config.domains}
    if config.time_step is None:
        if len(set(steps.values())) > 1:
            listed = ", ".join(f"{name} {step_text(s)}" for name, s in steps.items())
            raise WorkbenchError(f"domains have different time steps ({listed}): set "
                                 "`time_step` in the sampling config to a multiple of each "
                                 "(the coarser domains' step), finer data is subsampled")
        return next(iter(steps.values()))
    common = parse_step(config.time_step)
    for name, step in steps.items():
        if common % step:
            raise WorkbenchError(f"domain {name!r}: its time step {step_text(step)} does not "
                                 f"divide the sampling config's time_step {config.time_step}; "
                                 "pick a time_step that is a multiple of every domain's step")
    return common
