"""Notebook parameters: declared in the cell tagged ``parameters``, given as JSON values only.

papermill writes parameter values into the notebook as code, so only JSON-representable
values reach it: strings, finite numbers, booleans, None, and lists and string-keyed
mappings of them. Each value is also checked against the type the notebook declares (an
annotation such as ``max_steps: int | None = 300``, else the type of its default), so an int
parameter refuses ``"abc"`` and a list parameter refuses a bare string.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .config import load_yaml, parse_yaml
from .errors import WorkbenchError

#: the JSON types a declared type name allows (float parameters take whole numbers too)
ALLOWED = {"str": (str,), "int": (int,), "float": (float, int), "bool": (bool,),
           "list": (list,), "dict": (dict,), "None": (type(None),)}
TYPE_WORDS = {"str": "a string", "int": "a whole number", "float": "a number",
              "bool": "true or false", "list": "a list", "dict": "a mapping", "None": "null"}


def notebook_parameters(notebook: str | Path) -> dict[str, dict]:
    """Parameters of the cell tagged ``parameters``: name -> {type, default, help}."""
    import papermill

    from .runs import resolve_notebook

    path = resolve_notebook(notebook)
    params = papermill.inspect_notebook(str(path))
    if not params:
        raise WorkbenchError(f"{path.name} has no cell tagged 'parameters'; tag its first code cell")
    return {
        name: {"type": _declared_type(p), "default": p["default"], "help": p["help"]}
        for name, p in params.items()
    }


def _declared_type(param: Mapping) -> str:
    """The annotated type, else the type of the literal default (parameters are literals)."""
    if param["inferred_type_name"] not in ("None", None):
        return str(param["inferred_type_name"])
    try:
        return type(ast.literal_eval(param["default"])).__name__
    except (ValueError, SyntaxError):
        return "expression"


def type_options(declared: str) -> list[str] | None:
    """The JSON type names a declared type allows (``int | None`` -> [int, None]); None
    where anything JSON goes (a default of None, an expression)."""
    text = declared.replace("typing.", "").replace("NoneType", "None")
    optional = re.fullmatch(r"Optional\[(.*)\]", text)
    if optional:
        text = f"{optional.group(1)} | None"
    options = []
    for part in (p.strip() for p in text.split("|")):
        base = re.sub(r"\[.*\]$", "", part).strip()
        base = {"List": "list", "Dict": "dict", "tuple": "list", "Tuple": "list"}.get(base, base)
        if base not in ALLOWED:
            return None
        options.append(base)
    return None if options == ["None"] else options


def check_json(value, name: str):
    """``value`` if it is JSON-representable, else a one-line error naming the parameter."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise WorkbenchError(f"parameter {name}: {value} is not a finite number; give one")
        return value
    if isinstance(value, list | tuple):
        return [check_json(item, f"{name}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise WorkbenchError(f"parameter {name}: key {key!r} is not a string; "
                                     "mapping keys must be strings")
        return {key: check_json(item, f"{name}.{key}") for key, item in value.items()}
    raise WorkbenchError(f"parameter {name}: a {type(value).__name__} value is not allowed; "
                         "give a string, number, boolean, null, list or mapping (JSON values)")


def check_type(value, name: str, declared: str) -> None:
    """A one-line error where ``value`` does not fit the notebook's declared type."""
    options = type_options(declared)
    if options is None:
        return
    fits = any(isinstance(value, ALLOWED[o]) and not (o in ("int", "float")
                                                       and isinstance(value, bool))
               for o in options)
    if not fits:
        wanted = " or ".join(TYPE_WORDS[o] for o in options)
        hint = f"; for a list write [{value}]" if "list" in options and isinstance(value, str) \
            else ""
        raise WorkbenchError(f"parameter {name} must be {wanted} (declared {declared}), got "
                             f"{value!r}{hint}")


def check_parameters(notebook: str | Path, params: Mapping, types: bool = True) -> dict:
    """``params`` checked against the notebook: known names, JSON values, declared types.

    ``types=False`` skips the type check (a plan's values may still hold ``${...}``)."""
    known = notebook_parameters(notebook)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise WorkbenchError(
            f"{Path(notebook).stem}: unknown parameter(s) {', '.join(map(str, unknown))}; "
            f"known: {', '.join(known)}"
        )
    checked = {name: check_json(value, name) for name, value in params.items()}
    if types:
        for name, value in checked.items():
            check_type(value, name, known[name]["type"])
    return checked


def parse_parameters(
    pairs: Sequence[Sequence[str]] = (),
    files: Sequence[str | Path] = (),
    notebook: str | Path | None = None,
) -> dict:
    """Merge ``-f params.yaml`` files then ``-p NAME VALUE`` pairs, checked against the
    notebook when one is given.

    Values are parsed as YAML (JSON values only), except for parameters whose declared type
    is a string: those keep the text as given.
    """
    known = notebook_parameters(notebook) if notebook else {}
    params: dict = {}
    for file in files:
        path = Path(file)
        if not path.is_file():
            raise WorkbenchError(f"parameter file {path} does not exist")
        loaded = load_yaml(path) or {}
        if not isinstance(loaded, Mapping):
            raise WorkbenchError(f"parameter file {path} must hold a mapping NAME: VALUE")
        params.update(loaded)
    for name, value in pairs:
        if name in known and type_options(known[name]["type"]) == ["str"]:
            params[name] = value
        else:
            params[name] = parse_yaml(value, f"parameter {name} value {value!r}")
    return check_parameters(notebook, params) if notebook else params


#: parameters that name files or folders: config-like ones are a preset name or a YAML
#: file; the others are always paths (a list of them for forecast_files)
CONFIG_PATHS = ("config", "sampling_config", "pipeline_config")
RUN_PATHS = ("init_from", "run_dir", "runs", "forecast_files")


def paths_from(params: Mapping, cwd: str | Path) -> dict:
    """``params`` with relative paths made absolute against ``cwd``, the caller's folder
    (a kernel runs in its own run dir, where they would name something else).

    A config-like value is a path only where that file exists (else it names a preset, as
    :func:`workbench.config.resolve_config` reads it); an empty value keeps its default
    meaning. In a plan's entry, ``cwd`` is the entry's folder, so ``runs: ..`` still names
    the plan's folder."""
    def absolute(value):
        """A non-empty string made absolute; anything else as it is."""
        if not isinstance(value, str) or not value:
            return value
        return str((Path(cwd) / Path(value).expanduser()).resolve())

    out = dict(params)
    for name in CONFIG_PATHS:
        path = absolute(out.get(name))
        if isinstance(path, str) and Path(path).is_file():
            out[name] = path
    for name in RUN_PATHS:
        if name in out:
            value = out[name]
            out[name] = [absolute(v) for v in value] if isinstance(value, list) else absolute(value)
    return out
