"""Batch plans: notebooks with parameter grids and dependencies, expanded into run entries.

A plan (``configs/batch/NAME.yaml``) lists steps; each step names a notebook, fixed
``params``, an optional ``grid`` (every combination becomes one entry), the steps it
``needs`` and, with ``foreach: STEP``, one entry per entry of that step. String parameters
may read an earlier step's outputs: ``${train.run_dir}``, ``${train.summary.KEY}`` (a dotted
path into its summary.json) and ``${train.params.NAME}``. A plan may declare parameters of
its own (``params: {NAME: DEFAULT}``, given with ``workbench batch PLAN -p NAME VALUE``; a
default of null makes one required) that its name, description and steps read as
``${plan.NAME}`` (``${plan.NAME.0}``: an item of a list); they are put in when the plan is
loaded, so the notebooks' types check them. Everything is checked before anything runs:
plan parameters, notebooks, parameter names, needs, cycles, placeholders.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field

from .config import check_keys, field_names, load_yaml, parse, typed
from .errors import WorkbenchError
from .parameters import check_json, check_parameters, check_type, notebook_parameters
from .runs import PROJECT_ROOT, resolve_notebook

PLAN_DIR = PROJECT_ROOT / "configs" / "batch"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_-]+)\.(run_dir|summary|params)((?:\.[A-Za-z0-9_-]+)*)\}")
ANY_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")
PLAN_PLACEHOLDER = re.compile(r"\$\{plan\.([A-Za-z0-9_-]+)((?:\.[A-Za-z0-9_-]+)*)\}")


def _slurm_text(pattern: str, what: str):
    """A string field that must match ``pattern`` in full (no spaces or control characters:
    it becomes an ``#SBATCH`` line of the job script)."""
    regexp = re.compile(pattern)

    def check(value: str) -> str:
        if not regexp.fullmatch(value):
            raise ValueError(what)
        return value

    return Annotated[str, AfterValidator(check)]


Memory = _slurm_text(r"[0-9]+[KMGT]?", "a SLURM memory size such as 32G or 4000M")
WallTime = _slurm_text(r"(?:[0-9]+-)?[0-9]+(?::[0-9]{1,2}){0,2}|UNLIMITED|INFINITE",
                       "a SLURM time such as 01:30:00, 90 or 2-00:00:00")
SlurmName = _slurm_text(r"[A-Za-z0-9_.+-]+(?:,[A-Za-z0-9_.+-]+)*",
                        "a SLURM name (letters, digits, '_.+-', comma-separated)")
SbatchOption = _slurm_text(r"--[A-Za-z][A-Za-z0-9-]*(?:=[A-Za-z0-9_.,:=/@%+-]+)?",
                           "one sbatch option such as --qos=normal (a list item each)")
Count = Annotated[int, Field(ge=0, strict=True)]


@typed
@dataclass(frozen=True)
class Resources:
    """What one SLURM job of a step asks for (ignored by the local executor). Every string
    is checked, since each becomes an ``#SBATCH`` line of the job script."""

    nodes: Annotated[int, Field(ge=1, strict=True)] = 1
    tasks_per_node: Annotated[int, Field(ge=1, strict=True)] = 1  # DDP ranks per node (= gpus)
    gpus_per_node: Count = 0
    cpus_per_task: Annotated[int, Field(ge=1, strict=True)] = 2
    mem: Memory | None = None  # e.g. "32G"
    time: WallTime = "01:00:00"
    partition: SlurmName | None = None
    account: SlurmName | None = None
    extra: tuple[SbatchOption, ...] = ()  # more sbatch options, e.g. ["--qos=normal"]

    @property
    def tasks(self) -> int:
        return self.nodes * self.tasks_per_node


@dataclass(frozen=True)
class Step:
    name: str
    notebook: Path
    params: dict
    grid: dict[str, list]
    needs: tuple[str, ...]
    foreach: str | None
    resources: Resources


@dataclass(frozen=True)
class Entry:
    """One run of a plan: a notebook with its parameters (placeholders unresolved)."""

    id: str
    step: str
    notebook: Path
    params: dict
    labels: dict  # the grid values that tell this entry from its siblings (inherited too;
    # an inherited label the step sets in its own params takes that value)
    needs: tuple[str, ...]  # entry ids that must finish first
    sources: dict[str, str] = field(default_factory=dict)  # step name -> entry id read by ${}
    resources: Resources = Resources()


@dataclass(frozen=True)
class Plan:
    name: str
    description: str
    path: Path
    steps: tuple[Step, ...]
    entries: tuple[Entry, ...]
    params: dict = field(default_factory=dict)  # the plan parameters' values
    resources: Resources = Resources()  # its top-level ``slurm:`` (every step's defaults)

    def entry(self, entry_id: str) -> Entry:
        return next(e for e in self.entries if e.id == entry_id)


# --------------------------------------------------------------------------- loading


def resolve_plan_path(name: str | Path) -> Path:
    """A plan by path or by preset name in configs/batch/."""
    for path in (Path(name), PLAN_DIR / f"{name}.yaml", PLAN_DIR / str(name)):
        if path.is_file():
            return path.resolve()
    known = ", ".join(sorted(p.stem for p in PLAN_DIR.glob("*.yaml")))
    raise WorkbenchError(f"plan {str(name)!r} not found; give a YAML path or a preset: {known}")


def _resources(raw, where: str, base: Resources = Resources()) -> Resources:
    """A ``slurm:`` mapping over ``base`` (the plan's defaults), checked."""
    if raw is None:
        return base
    if isinstance(raw, Mapping) and isinstance(raw.get("extra"), str):
        raise WorkbenchError(f"{where}: extra must be a list of single sbatch options, e.g. "
                             "[--qos=normal, --constraint=a100]")
    if isinstance(raw, Mapping):
        raw = {k: getattr(base, k) for k in field_names(Resources)} | dict(raw)
    return parse(Resources, raw, where)


def _step(raw, index: int, defaults: Resources, where: str) -> Step:
    if not isinstance(raw, Mapping) or "name" not in raw or "notebook" not in raw:
        raise WorkbenchError(f"{where}: step {index + 1} needs `name` and `notebook`")
    name = str(raw["name"])
    here = f"{where}: step {name!r}"
    check_keys(raw, ["name", "notebook", "params", "grid", "needs", "foreach", "slurm"], here)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise WorkbenchError(f"{here}: step names may hold letters, digits, '-' and '_' only")
    notebook = resolve_notebook(raw["notebook"])
    params = dict(raw.get("params") or {})
    grid = dict(raw.get("grid") or {})
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise WorkbenchError(f"{here}: grid {key!r} must be a non-empty list of values")
    both = sorted(set(params) & set(grid))
    if both:
        raise WorkbenchError(f"{here}: {', '.join(both)} in both params and grid; keep one")
    try:  # names and JSON values; types now where no ${...} is left to resolve
        check_parameters(notebook, {**params, **grid}, types=False)
        known = notebook_parameters(notebook)
        for key, value in [*params.items(), *((k, v) for k, vs in grid.items() for v in vs)]:
            if "${" not in json.dumps(value):
                check_type(value, key, known[key]["type"])
    except WorkbenchError as err:
        raise WorkbenchError(f"{here}: {err}") from None
    needs = raw.get("needs") or []
    needs = (needs,) if isinstance(needs, str) else tuple(str(n) for n in needs)
    foreach = raw.get("foreach")
    if foreach is not None and str(foreach) not in needs:
        needs = (*needs, str(foreach))
    return Step(name, notebook, params, grid, needs, None if foreach is None else str(foreach),
                _resources(raw.get("slurm"), f"{here} (slurm)", defaults))


def _check_graph(steps: Mapping[str, Step], where: str) -> list[str]:
    """Steps in dependency order; a cycle or an unknown step is an error."""
    for step in steps.values():
        unknown = [n for n in step.needs if n not in steps]
        if unknown:
            raise WorkbenchError(f"{where}: step {step.name!r} needs unknown step(s) "
                                 f"{', '.join(unknown)}; known: {', '.join(steps)}")
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name):] + [name]
            raise WorkbenchError(f"{where}: dependency cycle {' -> '.join(cycle)}; "
                                 "remove one of these needs")
        state[name] = "visiting"
        for need in steps[name].needs:
            visit(need, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in steps:
        visit(name, [])
    return order


def _label_text(value) -> str:
    text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    text = re.sub(r"[^A-Za-z0-9._,+-]+", "_", text).strip("_")
    return text[:40] or "empty"


def _entry_id(step: str, labels: Mapping) -> str:
    if not labels:
        return step
    parts = "-".join(f"{k}={_label_text(v)}" for k, v in labels.items())
    entry_id = f"{step}-{parts}"
    if len(entry_id) > 100:
        digest = hashlib.sha1(json.dumps(labels, sort_keys=True, default=str).encode()).hexdigest()
        entry_id = f"{entry_id[:90]}-{digest[:8]}"
    return entry_id


def _placeholders(params: Mapping) -> list[tuple[str, str]]:
    """(step, text) for every ${...} in the string values (nested lists included)."""
    found = []

    def walk(value) -> None:
        if isinstance(value, str):
            if "${" in ANY_PLACEHOLDER.sub("", value):
                raise WorkbenchError(f"placeholder in {value!r} is not closed; write "
                                     "${STEP.run_dir}, ${STEP.summary.KEY} or ${STEP.params.NAME}")
            for match in ANY_PLACEHOLDER.finditer(value):
                full = PLACEHOLDER.fullmatch(match.group(0))
                if full is None:
                    raise WorkbenchError(
                        f"placeholder {match.group(0)} is not ${{STEP.run_dir}}, "
                        "${STEP.summary.KEY} or ${STEP.params.NAME}")
                found.append((full.group(1), match.group(0)))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)

    walk(params)
    return found


def _expand(steps: Mapping[str, Step], order: list[str], where: str) -> list[Entry]:
    entries: dict[str, list[Entry]] = {}
    for name in order:
        step = steps[name]
        combos = [dict(zip(step.grid, values, strict=True))
                  for values in itertools.product(*step.grid.values())]
        parents = entries[step.foreach] if step.foreach else [None]
        result = []
        for parent in parents:
            for combo in combos:
                labels = {**(parent.labels if parent else {}), **combo}
                for key, value in step.params.items():  # what this entry runs with, e.g. a
                    if key in labels and "${" not in json.dumps(value):  # fine-tuning's config
                        labels[key] = value
                params = {**step.params, **combo}
                needs: list[str] = []
                sources: dict[str, str] = {}
                for need in step.needs:
                    if need == step.foreach and parent is not None:
                        needs.append(parent.id)
                        sources[need] = parent.id
                        # the parent's own sources stay readable (skill -> train -> graph)
                        sources = {**parent.sources, **sources}
                    else:
                        needs.extend(e.id for e in entries[need])
                        if len(entries[need]) == 1:
                            sources.setdefault(need, entries[need][0].id)
                try:
                    refs = _placeholders(params)
                except WorkbenchError as err:
                    raise WorkbenchError(f"{where}: step {name!r}: {err}") from None
                for ref, text in refs:
                    if ref not in steps or (ref not in step.needs and ref not in sources):
                        raise WorkbenchError(f"{where}: step {name!r} reads {text} but does not "
                                             f"need step {ref!r}; add it to `needs`")
                    if ref not in sources:
                        raise WorkbenchError(
                            f"{where}: step {name!r} reads {text} but {ref!r} has "
                            f"{len(entries[ref])} entries; add `foreach: {ref}`")
                result.append(Entry(_entry_id(name, labels), name, step.notebook, params, labels,
                                    tuple(needs), sources, step.resources))
        entries[name] = result
    flat = [e for name in order for e in entries[name]]
    ids = [e.id for e in flat]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise WorkbenchError(f"{where}: entries {', '.join(duplicates)} repeat; "
                             "make the grid values distinct")
    return flat


# --------------------------------------------------------------------------- plan parameters


def plan_parameters(raw: Mapping, where: str) -> dict:
    """A plan's declared parameters, name -> default (None: required)."""
    declared = raw.get("params") or {}
    if not isinstance(declared, Mapping):
        raise WorkbenchError(f"{where}: `params` must map plan parameter names to defaults, "
                             "e.g. params: {dataset: null, max_steps: 200}")
    for key, default in declared.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", key):
            raise WorkbenchError(f"{where}: plan parameter {key!r}: names hold letters, digits, "
                                 "'-' and '_' only")
        check_json(default, f"{key} (default)")
    return dict(declared)


def _plan_values(declared: Mapping, given: Mapping, where: str) -> dict:
    """The plan parameters' values: ``given`` over the defaults, each a JSON value of its
    default's type (any type where the default is null); a required one missing is an error."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none"
        raise WorkbenchError(f"{where}: unknown plan parameter(s) {', '.join(map(str, unknown))};"
                             f" the plan's parameters: {known}")
    values = {}
    for name, default in declared.items():
        if name not in given:
            if default is None:
                raise WorkbenchError(f"{where}: plan parameter {name} has no default; give it "
                                     f"with -p {name} VALUE")
            values[name] = default
            continue
        try:
            value = check_json(given[name], name)
            if default is not None:
                check_type(value, name, type(default).__name__)
        except WorkbenchError as err:
            raise WorkbenchError(f"{where}: plan {err}") from None
        if "${" in json.dumps(value):
            raise WorkbenchError(f"{where}: plan parameter {name}: a value may not hold ${{...}}")
        values[name] = value
    return values


def _dig_plan(value, keys: list[str], text: str):
    """An item of a plan parameter: mapping keys and list indices (``${plan.variables.0}``)."""
    for key in keys:
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif isinstance(value, Mapping) and key in value:
            value = value[key]
        else:
            hint = f"; for a list write [{value}]" if isinstance(value, str) else ""
            raise WorkbenchError(f"{text}: no item {key!r} in {json.dumps(value)}{hint}")
    return value


def _with_plan_values(raw, values: Mapping, where: str):
    """``raw`` (a plan's YAML, nested) with every ``${plan.NAME}`` replaced: a string that is
    exactly one placeholder takes the value itself (a list stays a list), one inside other
    text takes its text (a string or a number only)."""
    def value_of(match: re.Match):
        text, name = match.group(0), match.group(1)
        if name not in values:
            raise WorkbenchError(f"{where}: {text} reads no plan parameter; declare {name} under "
                                 f"`params` (declared: {', '.join(values) or 'none'})")
        return _dig_plan(values[name], [k for k in match.group(2).split(".") if k],
                         f"{where}: {text}")

    def inline(match: re.Match) -> str:
        value = value_of(match)
        if isinstance(value, list | dict) or value is None:
            raise WorkbenchError(f"{where}: {match.group(0)} is {json.dumps(value)} inside other "
                                 "text; use it as a whole value or pick an item")
        return str(value)

    def walk(value):
        if isinstance(value, str):
            whole = PLAN_PLACEHOLDER.fullmatch(value)
            return value_of(whole) if whole else PLAN_PLACEHOLDER.sub(inline, value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, Mapping):
            return {k: walk(v) for k, v in value.items()}
        return value

    return walk(raw)


def parse_plan_parameters(plan: str | Path, pairs=(), files=()) -> dict:
    """``-f FILE`` then ``-p NAME VALUE`` for a plan: values read as YAML (JSON values only),
    except for parameters whose default is a string, which keep the text as given."""
    from .parameters import parse_parameters

    params = parse_parameters(pairs, files)
    raw = load_yaml(resolve_plan_path(plan))
    declared = plan_parameters(raw if isinstance(raw, Mapping) else {}, str(plan))
    params.update({name: text for name, text in pairs if isinstance(declared.get(name), str)})
    return params


def load_plan(name: str | Path, params: Mapping | None = None) -> Plan:
    """Read and check a plan, its parameters set from ``params`` (``-p``); every error is one
    line naming the problem."""
    path = resolve_plan_path(name)
    where = path.name
    raw = load_yaml(path)
    if not isinstance(raw, Mapping) or not isinstance(raw.get("steps"), list) or not raw["steps"]:
        raise WorkbenchError(f"{where}: a plan needs `name` and a non-empty list `steps`")
    check_keys(raw, ["name", "description", "params", "slurm", "steps"], where)
    values = _plan_values(plan_parameters(raw, where), params or {}, where)
    raw = {**raw, **_with_plan_values({k: raw.get(k) for k in ("name", "description", "steps")},
                                      values, where)}
    if any(isinstance(s, Mapping) and s.get("name") == "plan" for s in raw["steps"]):
        raise WorkbenchError(f"{where}: the step name 'plan' is taken by the plan's parameters "
                             "(${plan.NAME}); rename the step")
    defaults = _resources(raw.get("slurm"), f"{where} (slurm)")
    steps: dict[str, Step] = {}
    for index, step_raw in enumerate(raw["steps"]):
        step = _step(step_raw, index, defaults, where)
        if step.name in steps:
            raise WorkbenchError(f"{where}: two steps are named {step.name!r}")
        steps[step.name] = step
    order = _check_graph(steps, where)
    entries = _expand(steps, order, where)
    name = str(raw.get("name") or path.stem)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise WorkbenchError(f"{where}: plan name {name!r} may hold letters, digits, '.-_' only")
    return Plan(name, str(raw.get("description") or ""), path, tuple(steps.values()),
                tuple(entries), values, defaults)


# --------------------------------------------------------------------------- resolving


def _dig(value, keys: list[str], text: str):
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            raise WorkbenchError(f"{text}: no {key!r} in the earlier step's output")
        value = value[key]
    return value


def resolve_params(entry: Entry, run_dirs: Mapping[str, Path]) -> dict:
    """The entry's parameters with ${STEP....} replaced from the finished earlier entries.

    A string that is exactly one placeholder takes the value's type (a number stays a number).
    """

    def lookup(match: re.Match) -> object:
        text, step, kind, rest = match.group(0), match.group(1), match.group(2), match.group(3)
        run_dir = Path(run_dirs[entry.sources[step]])
        keys = [k for k in rest.split(".") if k]
        if kind == "run_dir":
            if keys:
                raise WorkbenchError(f"{text}: run_dir takes no key")
            return str(run_dir)
        name = "summary.json" if kind == "summary" else "params.yaml"
        file = run_dir / name
        if not file.is_file():
            raise WorkbenchError(f"{text}: {file} does not exist")
        try:
            data = json.loads(file.read_text()) if kind == "summary" else load_yaml(file)
        except ValueError as err:  # a half-written or hand-edited summary
            raise WorkbenchError(f"{text}: {file} is not valid JSON ({err}); rerun that step "
                                 "with --retry after deleting its run dir") from None
        return _dig(data, keys, text)

    def resolve(value):
        if isinstance(value, str):
            whole = PLACEHOLDER.fullmatch(value)
            if whole:
                return lookup(whole)
            return PLACEHOLDER.sub(lambda m: str(lookup(m)), value)
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if isinstance(value, Mapping):
            return {k: resolve(v) for k, v in value.items()}
        return value

    resolved = {key: resolve(value) for key, value in entry.params.items()}
    return check_parameters(entry.notebook, resolved)
