"""Typed configs: YAML read as JSON-like values, validated into frozen dataclasses by pydantic.

Every config (catalog entries, graphs, sampling, pipelines, training, batch plans, notebook
parameter files) goes through :func:`load_yaml` and :func:`parse`, so every bad value gets
one line naming the file, the key, what it should be and what it was: an unknown key (with
the allowed ones), a missing required key, a wrong type (``max_steps: ten``), a value out of
range (a negative learning rate), malformed YAML (with its line).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated

import pydantic
import yaml
from pydantic import ConfigDict, Field, TypeAdapter, with_config

from .errors import WorkbenchError

#: class decorator for config dataclasses: unknown keys are errors (``@typed`` above
#: ``@dataclass``); field ranges are ``Annotated[int, Field(ge=1)]`` in the type hints
typed = with_config(ConfigDict(extra="forbid"))
Positive = Annotated[int, Field(ge=1, strict=True)]  # a count of at least one (not true/3.0)
NonNegative = Annotated[int, Field(ge=0, strict=True)]
Flag = Annotated[bool, Field(strict=True)]  # true or false, not "yes" or 1
Rate = Annotated[float, Field(ge=0, le=1)]  # a fraction in [0, 1]

JSON_TAGS = ("str", "int", "float", "bool", "null", "seq", "map", "merge", "value")


class _JsonLoader(yaml.SafeLoader):
    """safe_load with YAML 1.2's core schema instead of 1.1's extras: dates, ``1:48``
    (sexagesimal), ``0755`` (octal) and ``yes``/``no`` stay strings, and explicit tags such
    as ``!!binary``, ``!!set`` or ``!!timestamp`` are refused."""


_CORE = {
    "bool": re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    "int": re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"),
    "float": re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
}
_JsonLoader.yaml_implicit_resolvers = {}
for _first, _resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items():
    for _tag, _regexp in _resolvers:
        _kind = _tag.rsplit(":", 1)[-1]
        if _kind in ("null", "merge", "value"):
            _JsonLoader.yaml_implicit_resolvers.setdefault(_first, []).append((_tag, _regexp))
for _kind, _regexp in _CORE.items():
    _JsonLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_kind}", _regexp,
                                      list("-+0123456789.tTfF"))


def _refuse_tag(loader: yaml.SafeLoader, node: yaml.Node):
    raise yaml.constructor.ConstructorError(
        None, None, f"tag {node.tag.replace('tag:yaml.org,2002:', '!!')} is not allowed "
        "(only JSON-like values: strings, numbers, booleans, null, lists, mappings)",
        node.start_mark)


_JsonLoader.yaml_constructors = {
    tag: constructor for tag, constructor in yaml.SafeLoader.yaml_constructors.items()
    if tag is not None and tag.rsplit(":", 1)[-1] in JSON_TAGS}
_JsonLoader.add_constructor(None, _refuse_tag)


class _JsonDumper(yaml.SafeDumper):
    """safe_dump that quotes every string either YAML 1.1 or the 1.2 core schema would read
    as something else ("1e3", "2020-01-01", "yes"), so files read back the same everywhere."""


_JsonDumper.yaml_implicit_resolvers = {
    first: [*yaml.SafeDumper.yaml_implicit_resolvers.get(first, []),
            *_JsonLoader.yaml_implicit_resolvers.get(first, [])]
    for first in {*yaml.SafeDumper.yaml_implicit_resolvers, *_JsonLoader.yaml_implicit_resolvers}
}


def dump_yaml(value, sort_keys: bool = False) -> str:
    """YAML text of JSON-like values that :func:`parse_yaml` (and ``yaml.safe_load``) read
    back unchanged."""
    return yaml.dump(value, Dumper=_JsonDumper, sort_keys=sort_keys)


def parse_yaml(text: str, where: str):
    """YAML text as JSON-like values; malformed YAML or a non-JSON tag is one line naming
    ``where`` and the line."""
    try:
        return yaml.load(text, Loader=_JsonLoader)  # noqa: S506 (a safe loader, JSON values)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        context, start = getattr(err, "context", None), getattr(err, "context_mark", None)
        if context and start is not None and mark is not None and start.line != mark.line:
            problem += f" {context} at line {start.line + 1}"
        raise WorkbenchError(f"{where}{line}: not valid YAML ({problem}); fix the file") from None


def load_yaml(path: str | Path):
    """A YAML file as JSON-like values (see :func:`parse_yaml`); errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise WorkbenchError(f"cannot read {path}: {err.strerror if isinstance(err, OSError) else err}"
                             ) from None
    return parse_yaml(text, str(path))


# --------------------------------------------------------------------------- validation


def field_names(cls) -> list[str]:
    """The keys a dataclass accepts from YAML (``file`` is set by the loader, not the user)."""
    return [f.name for f in dataclasses.fields(cls) if f.name != "file"]


@functools.cache
def _adapter(cls) -> TypeAdapter:
    return TypeAdapter(cls)


def parse(cls, raw, where: str):
    """``raw`` (a YAML mapping) validated into the config dataclass ``cls``.

    Strings are not read as lists, numbers in strings are read as numbers, ranges come from
    the class's type hints; the first problem is a one-line :class:`WorkbenchError`."""
    names = field_names(cls)
    if not isinstance(raw, Mapping):
        raise WorkbenchError(f"{where}: expected a mapping with keys {', '.join(names)}, "
                             f"got {_show(raw)}")
    if "file" in raw:
        raise WorkbenchError(f"{where}: unknown key 'file' (allowed: {', '.join(names)})")
    try:
        return _adapter(cls).validate_python(dict(raw))
    except pydantic.ValidationError as err:
        raise WorkbenchError(f"{where}: {describe_error(err, cls)}") from None


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _members(hint) -> list:
    """The alternatives of a type hint (Annotated, Optional and unions unwrapped)."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _members(typing.get_args(hint)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(hint) for m in _members(arg) if m is not type(None)]
    return [hint]


def _walk(loc: Iterable, cls) -> tuple[list, list]:
    """pydantic's error location as the user's key path (union-member labels dropped, keys
    of mappings and indices of lists kept) and the type hints found at its end."""
    out: list = []
    hints = [cls]
    for part in loc:
        classes = [h for h in hints if dataclasses.is_dataclass(h)]
        mappings = [h for h in hints if typing.get_origin(h) in (dict, Mapping)]
        sequences = [h for h in hints if typing.get_origin(h) in (tuple, list)]
        owner = next((c for c in classes if isinstance(part, str) and part in field_names(c)),
                     None)
        if owner is not None:
            hints = _members(typing.get_type_hints(owner)[part])
        elif isinstance(part, str) and mappings:
            hints = _members(typing.get_args(mappings[0])[-1])
        elif isinstance(part, int) and sequences:
            args = typing.get_args(sequences[0])
            element = args[0] if len(args) == 2 and args[1] is Ellipsis or len(args) == 1 \
                else args[min(part, len(args) - 1)]
            hints = _members(element)
        elif not (classes or mappings or sequences) and not isinstance(part, int):
            hints = []  # below a plain value: nothing more to unwrap
        else:
            continue  # a union member's label ("int", "tuple[int, int]"), not a key
        out.append(part)
    return out, hints


def _field_class(cls, path: Iterable) -> type | None:
    """The dataclass at ``path`` below ``cls`` (for the allowed keys of a nested mapping)."""
    _, hints = _walk(path, cls)
    return next((h for h in hints if dataclasses.is_dataclass(h)), None)


def describe_error(err: pydantic.ValidationError, cls=None) -> str:
    """pydantic's first problem as ``key.path: should be ..., got ...`` (a union's
    alternatives joined with "or")."""
    errors = err.errors(include_url=False)
    first = errors[0]
    loc = [part for part in first["loc"]]
    kind = first["type"]
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        parent = _field_class(cls, loc[:-1]) if cls is not None else None
        allowed = f" (allowed: {', '.join(field_names(parent))})" if parent else ""
        return f"{_dotted(loc[:-1])}unknown key {loc[-1]!r}{allowed}"
    if kind in ("missing", "missing_argument"):
        if isinstance(loc[-1], int):  # a fixed-length list too short
            return f"{_dotted(_field_loc(loc[:-1], cls))}needs {loc[-1] + 1} items, got fewer"
        return f"{_dotted(_field_loc(loc[:-1], cls))}missing required key `{loc[-1]}`"
    # a union reports one error per alternative, each under a loc with the member's name
    field_loc = _field_loc(loc, cls)
    wants = []
    for item in errors:
        if _field_loc(list(item["loc"]), cls) == field_loc:
            want = item["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
            if want not in wants:
                wants.append(want)
    return f"{_dotted(field_loc, end='')}: should be {' or '.join(wants)}, got {_show(first['input'])}"


def _field_loc(loc: list, cls) -> list:
    """``loc`` as the user's key path, without pydantic's union-member labels."""
    return _walk(loc, cls)[0] if cls is not None else list(loc)


def _dotted(loc: list, end: str = ": ") -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return f"{text}{end}" if text else ""


def check_choice(value: str, allowed: tuple[str, ...], name: str) -> None:
    """One line where ``value`` is not one of ``allowed``."""
    if value not in allowed:
        raise WorkbenchError(f"unknown {name} {value!r}; use one of {', '.join(allowed)}")


def check_keys(raw, allowed: type | Iterable[str], where: str,
               required: Iterable[str] = ()) -> Mapping:
    """``raw`` if it is a mapping of allowed keys holding every required one, else an error
    (for plain mappings that are not config dataclasses, such as a plan's steps)."""
    names = field_names(allowed) if isinstance(allowed, type) else list(allowed)
    if not isinstance(raw, Mapping):
        raise WorkbenchError(f"{where}: expected a mapping with keys {', '.join(names)}, "
                             f"got {_show(raw)}")
    for key in raw:
        if key not in names:
            raise WorkbenchError(f"{where}: unknown key {key!r} (allowed: {', '.join(names)})")
    for key in required:
        if key not in raw:
            raise WorkbenchError(f"{where}: missing required key `{key}`")
    return raw


def resolve_config(path, kind: str) -> Path:
    """A YAML path, or the name of a preset in ``configs/<kind>/`` (e.g. "demo")."""
    if not isinstance(path, str | Path):
        raise WorkbenchError(f"{kind} config must be a preset name or a YAML path, got "
                             f"{_show(path)}")
    path = Path(path)
    if path.is_file():
        return path
    preset = Path(__file__).resolve().parent.parent / "configs" / kind / f"{path}.yaml"
    if not preset.is_file():
        raise WorkbenchError(f"{kind} config {path} not found (nor a preset configs/{kind}/{path}.yaml)")
    return preset
