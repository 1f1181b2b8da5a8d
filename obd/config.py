"""Typed dataclass configs: load from YAML, apply ``key=value`` CLI overrides, save the resolved config.

Every run config in obd is a (possibly nested) dataclass. ``load_config(Cls, "fast_avpbc", ["a.b=3"])``
checks each key against the dataclass fields and coerces values to the declared types, so a typo or a
wrong type fails before any work starts with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from obd.errors import ObdError
from obd.io import write_text_atomic

T = TypeVar("T")
#: a torch device string, checked without importing torch (so `--help` and config errors stay fast)
DEVICE_NAME = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
#: dataclass field metadata key: :func:`config_to_dict` leaves the field out while it holds its default, so a
#: key added later does not change what existing configs write (run folders, synthetic set metadata, trial keys)
OMIT_DEFAULT = "omit_default"


def is_number(value: object) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _coerce(value: Any, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ObdError as exc:
                errors.append(str(exc))
        raise ObdError(errors[0] if errors else f"config key '{key}': cannot be {value!r}")
    if typing.get_origin(typ) is typing.Literal:
        return value  # checked with every other field's type by check_types once the object is built
    if dataclasses.is_dataclass(typ):
        if isinstance(typ, type) and isinstance(value, typ):
            return value
        if not isinstance(value, dict):
            raise ObdError(f"config key '{key}': expected a mapping, got {value!r}")
        return _build(typ, value, prefix=key + ".")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v != ""]
        if not isinstance(value, (list, tuple)):
            raise ObdError(f"config key '{key}': expected a list, got {value!r}")
        inner = args[0] if args else Any
        out = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if typ is Any:
        return value
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ObdError(f"config key '{key}': expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ObdError(f"config key '{key}': expected an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ObdError(f"config key '{key}': expected an integer, got {value!r}") from None
        if f != int(f):
            raise ObdError(f"config key '{key}': expected an integer, got {value!r}")
        return int(f)
    if typ is float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ObdError(f"config key '{key}': expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ObdError(f"config key '{key}': expected a finite number, got {value!r}")
        return number
    if typ is str:
        if isinstance(value, (dict, list)):
            raise ObdError(f"config key '{key}': expected a string, got {value!r}")
        return str(value)
    return value


def _build(cls: type[T], raw: dict[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = set(raw) - set(fields)
    if unknown:
        raise ObdError(f"unknown config key(s) {sorted(prefix + u for u in unknown)}; "
                       f"expected some of {sorted(prefix + f for f in fields)}")
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in raw.items()}
    try:
        obj = cls(**kwargs)
    except TypeError as exc:
        raise ObdError(f"config {cls.__name__}: {exc}") from None
    check_types(obj, prefix)
    return obj


def _conforms(value: Any, typ: Any) -> bool:
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if typ is Any:
        return True
    if typ is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if dataclasses.is_dataclass(typ):
        return isinstance(value, typ)  # type: ignore[arg-type]
    if origin in (list, tuple):
        inner = args[0] if args else Any
        return isinstance(value, (list, tuple)) and all(_conforms(v, inner) for v in value)
    if origin is dict or typ is dict:
        return isinstance(value, dict)
    if typ is bool:
        return isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typ is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if typ is str:
        return isinstance(value, str)
    return True  # other annotations (Path, callables) are the caller's to check


def describe_type(typ: Any) -> str:
    """What a field of type ``typ`` accepts, in words (``an integer``, ``one of ['a', 'b']``, ``... or null``)."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in args)
    if origin is typing.Literal:
        return f"one of {list(args)}"
    if origin in (list, tuple):
        return "a list"
    names = {type(None): "null", bool: "true/false", int: "an integer", float: "a finite number", str: "a string"}
    if typ in names:
        return names[typ]
    return "a mapping of its keys" if dataclasses.is_dataclass(typ) else getattr(typ, "__name__", str(typ))


def check_types(obj: Any, prefix: str = "") -> None:
    """Check every field of the (nested) config dataclass ``obj`` against its annotation: ints are ints (not
    bools or 8.0), floats finite numbers, Literal choices one of theirs; raise a one-line :class:`ObdError`
    naming the first bad key (``prefix`` + field name). The one place config types and choices are checked,
    for configs built from YAML and ``key=value`` (:func:`load_config`) and in Python alike."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, typ = getattr(obj, f.name), hints.get(f.name, Any)
        if not _conforms(value, typ):
            raise ObdError(f"config key '{prefix}{f.name}': expected {describe_type(typ)}, got {value!r}")
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_types(value, f"{prefix}{f.name}.")


def coerce_nested(obj: Any) -> None:
    """Replace mapping values of dataclass-typed fields of ``obj`` by those dataclasses, checked like YAML.

    Call from ``__post_init__`` so ``DistillConfig(inner=dict(steps=5))`` equals
    ``DistillConfig(inner=InnerConfig(steps=5))``; a wrong key fails naming ``inner.<key>``."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        typ = hints.get(f.name)
        if typing.get_origin(typ) in (typing.Union, types.UnionType):  # an optional section: ``X | None``
            typ = next((a for a in typing.get_args(typ) if dataclasses.is_dataclass(a)), None)
        if isinstance(value, dict) and dataclasses.is_dataclass(typ):
            setattr(obj, f.name, _build(typ, value, prefix=f.name + "."))


def config_fields(cls: type, prefix: str = "") -> list[tuple[str, str, Any]]:
    """Flattened ``(dotted key, type name, default)`` of a (nested) config dataclass, in field order; an
    optional section (``DensityConfig | None``) lists its keys with the section's own defaults."""
    hints = typing.get_type_hints(cls)
    out: list[tuple[str, str, Any]] = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_"):
            continue
        typ = hints[f.name]
        section = typ if dataclasses.is_dataclass(typ) else None
        if typing.get_origin(typ) in (typing.Union, types.UnionType):
            section = next((a for a in typing.get_args(typ) if dataclasses.is_dataclass(a)), None)
        if section is not None:
            out += config_fields(section, prefix + f.name + ".")
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = "(required)"
        out.append((prefix + f.name, type_name(typ), default))
    return out


def type_name(typ: Any) -> str:
    """``int``, ``float | None``, and a Literal's choices spelled out: ``one of dbc|pbc|avpbc|sdw``."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin is typing.Literal:
        return "one of " + "|".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if typ is type(None):
        return "None"
    return getattr(typ, "__name__", None) or str(typ).replace("typing.", "")


def flatten(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: a nested config by dotted key."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + str(key)] = value
    return out


def config_help(cls: type, preset: str | None = None) -> str:
    """Text block listing every ``key=value`` override of ``cls`` with its type (a choice key's allowed
    values) and its value: the shipped preset or YAML file ``preset``'s where it sets one, else the default
    (for ``--help``)."""
    rows = config_fields(cls)
    values: dict[str, Any] = {}
    if preset is not None:
        try:
            values = flatten(read_config_file(preset))
        except ObdError:
            preset = None  # a help text never fails; running with the missing preset will say why
    width = max(len(k) for k, _, _ in rows)
    lines = [f"  {k:<{width}}  {t} = {values.get(k, d)!r}" for k, t, d in rows]
    whose = f"preset {preset}'s values, else {cls.__name__} defaults" if preset else f"{cls.__name__} defaults"
    return f"config keys (override with key=value; {whose}):\n" + "\n".join(lines)


def _set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise ObdError(f"config override '{dotted}': '{p}' is not a section")
    d[parts[-1]] = value


def parse_overrides(overrides: list[str] | None) -> dict[str, Any]:
    """``["a.b=3", "name=x"]`` -> nested dict; values parsed as YAML scalars (``3`` -> int, ``true`` -> bool)."""
    out: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise ObdError(f"config override '{item}': expected key=value")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text) if text != "" else ""
        except yaml.YAMLError:
            value = text
        _set_dotted(out, key.strip(), value)
    return out


def merge_config(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it, section by section (nested mappings merge, other values replace)."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge_config(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_config_sections(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, dict[str, Any]] | None]:
    """The raw mapping in a YAML config file or shipped preset (``fast``, see :mod:`obd.assets`) without its
    ``objectives:`` mapping, and that mapping (objective -> what changes with it; None when the file has
    none). A shipped name ``<preset>_<objective>`` (``fast_sdw``) is ``<preset>`` with that ``objective``."""
    from obd.assets import configs_dir, resolve_asset

    objective = None
    try:
        p = resolve_asset("config", path)
    except ObdError:
        preset, _, named = Path(path).name.removesuffix(".yaml").removesuffix(".yml").partition("_")
        if Path(path).parent != Path(".") or not named or not (configs_dir() / f"{preset}.yaml").is_file():
            raise
        p, objective = configs_dir() / f"{preset}.yaml", named
    try:
        loaded = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ObdError(f"{p}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(loaded, dict):
        raise ObdError(f"{p}: expected a mapping of config keys")
    sections = loaded.pop("objectives", None)
    if sections is not None and (not isinstance(sections, dict)
                                 or not all(isinstance(v, dict) for v in sections.values())):
        raise ObdError(f"{p}: 'objectives' should map each objective to a mapping of config keys")
    if objective is not None:
        if sections is None or objective not in sections:
            raise ObdError(f"config '{path}': {p.name} has no objective '{objective}'; it has {list(sections or {})}")
        loaded["objective"] = objective
    return loaded, sections


def with_objective(base: dict[str, Any], sections: dict[str, dict[str, Any]] | None, objective: str | None,
                   where: str = "config") -> dict[str, Any]:
    """``base`` with the entry of ``objective`` (given, else ``base``'s own) in ``sections`` merged in."""
    if sections is None:
        return dict(base)
    objective = objective or base.get("objective")
    if objective not in sections:
        raise ObdError(f"{where} has no objective '{objective}'; it has {list(sections)}")
    return merge_config({**base, "objective": objective}, sections[objective])


def with_task(raw: dict[str, Any], task: str | None, where: str = "config") -> dict[str, Any]:
    """``raw`` without its ``tasks:`` mapping (task name -> what changes on that task's datasets, as in
    CORL's per-dataset configs), with the entry of ``task`` merged in when it has one. ``task`` None (not
    known) or not listed: ``raw``'s own values. A name that is not a registered task (:mod:`obd.envs`) is
    refused, so a typo cannot silently leave a task on the default."""
    out = dict(raw)
    tasks = out.pop("tasks", None)
    if tasks is None:
        return out
    if not isinstance(tasks, dict) or not all(isinstance(v, dict) for v in tasks.values()):
        raise ObdError(f"{where}: 'tasks' should map each task (hopper, walker2d, ...) to a mapping of config keys")
    from obd.envs import get_task, list_tasks

    unknown = sorted(set(tasks) - set(list_tasks()))
    if unknown:
        raise ObdError(f"{where}: 'tasks' names unknown task(s) {unknown}; expected some of {list_tasks()}")
    task = get_task(task).name if task is not None else None  # 'Hopper-v5', 'hopper-medium-v5' -> hopper
    return merge_config(out, tasks[task]) if task in tasks else out


def read_config_file(path: str | os.PathLike, objective: str | None = None) -> dict[str, Any]:
    """The raw mapping in a YAML config file or shipped preset (``fast``, see :mod:`obd.assets`).

    A file may hold ``objectives:``, a mapping from objective to what changes with it (``paper``: DBC and PBC
    run longer; SDW's ``density`` section): the entry of ``objective`` (given, else the file's own
    ``objective``) is merged in and the mapping itself dropped. A shipped name ``<preset>_<objective>``
    (``fast_sdw``) is ``<preset>`` with that objective. Its ``tasks:`` entries (:func:`with_task`) are
    dropped: the file's defaults, since no dataset is known here."""
    base, sections = read_config_sections(path)
    where = f"config '{path}'"
    return with_task(with_objective(base, sections, objective, where=where), None, where=where)


def load_config(cls: type[T], path: str | os.PathLike | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None, prefix: str = "") -> T:
    """Build ``cls`` from ``base`` <- YAML file at ``path`` <- ``key=value`` overrides (later wins).

    ``path`` is a YAML file or the name of a shipped preset (``fast``, ``fast_sdw``: :func:`read_config_file`);
    an ``objective=`` override picks the file's entry for that objective; its ``tasks:`` entries are left
    out (the task is known where the dataset is: :func:`obd.distill.config.load_run_config`). ``prefix``: the
    section the keys sit in where the user wrote them (``eval.``), for error messages."""
    raw: dict[str, Any] = dict(base or {})
    extra = parse_overrides(overrides)
    if path is not None:
        raw = merge_config(raw, read_config_file(path, extra.get("objective")))
    return _build(cls, merge_config(raw, extra), prefix)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The (nested) config dataclass ``cfg`` as plain YAML/JSON data: sections as dicts, tuples as lists,
    paths as text; fields marked :data:`OMIT_DEFAULT` are left out while at their default."""
    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)
                    if not (f.metadata.get(OMIT_DEFAULT) and getattr(v, f.name) == f.default)}
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return conv(cfg)


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically."""
    write_text_atomic(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
