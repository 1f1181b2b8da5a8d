"""Shipped assets addressed by name: task specs, SAC behavior policies, teachers and config presets.

They are package data (``obd/tasks/<task>/task.yaml``, ``behavior_<level>.pt``, ``teacher_<algo>_<level>.pt``
and ``obd/configs/<preset>.yaml``), found through :mod:`importlib.resources`, so an installed wheel finds
them from any working directory. :func:`resolve_asset` is the one lookup every stage uses:

=========== ============================================ ==============================================
kind        name                                         resolves to
=========== ============================================ ==============================================
``task``    ``hopper``                                   ``tasks/hopper/task.yaml``
``behavior`` ``hopper-medium`` (``-v5`` optional)          ``tasks/hopper/behavior_medium.pt``
``teacher`` ``hopper-medium-v5`` (``:iql`` picks an algo)  ``tasks/hopper/teacher_<algo>_medium.pt``
``config``  ``fast`` (or ``fast.yaml``)                    ``configs/fast.yaml``
=========== ============================================ ==============================================

A preset name with an objective, ``fast_sdw``, is read by :func:`obd.config.read_config_file` as ``fast`` with
that objective.

A path that exists on disk always wins over a shipped name.
This module imports neither torch nor yaml, so command-line ``--help`` stays fast.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from obd.errors import ObdError

KINDS = ("task", "behavior", "teacher", "config")
LEVELS = ("random", "medium", "medium-replay", "expert", "medium-expert")
#: when a task and level ship teachers of several algorithms, the first present in this order is used
TEACHER_PREFERENCE = ("td3bc", "calql", "iql")
_VERSION = re.compile(r"-v\d+$")


def package_dir(sub: str) -> Path:
    """Real folder of the package data ``obd/<sub>`` (``tasks`` or ``configs``).

    ``$OBD_TASKS_DIR`` replaces the shipped ``tasks`` folder (task specs elsewhere, e.g. in tests)."""
    if sub == "tasks" and os.environ.get("OBD_TASKS_DIR"):
        return Path(os.environ["OBD_TASKS_DIR"])
    root = resources.files("obd") / sub
    if not isinstance(root, Path):
        raise ObdError(f"obd package data '{sub}' is not on a file system ({type(root).__name__}); install obd "
                       f"unzipped (pip install obd)")
    return root


def tasks_dir() -> Path:
    return package_dir("tasks")


def configs_dir() -> Path:
    return package_dir("configs")


def list_presets() -> list[str]:
    return sorted(p.stem for p in configs_dir().glob("*.yaml"))


def split_dataset_name(name: str) -> tuple[str, str]:
    """``hopper-medium-replay-v5`` / ``hopper_medium_replay`` -> (``hopper``, ``medium-replay``)."""
    text = _VERSION.sub("", Path(name).name.lower().removesuffix(".hdf5")).replace("_", "-")
    task, _, level = text.partition("-")
    if level not in LEVELS:
        raise ObdError(f"'{name}': expected '<task>-<level>[-vN]' with level one of {list(LEVELS)}")
    return task, level


def _task_folder(task: str, name: str, kind: str) -> Path:
    folder = tasks_dir() / task
    if not (folder / "task.yaml").is_file():
        known = sorted(p.parent.name for p in tasks_dir().glob("*/task.yaml"))
        raise ObdError(f"{kind} '{name}': unknown task '{task}'; expected one of {known}")
    return folder


def resolve_asset(kind: str, name: str | os.PathLike) -> Path:
    """The file ``name`` means for ``kind`` (see the module table); an existing path is returned as is.

    Raises :class:`ObdError` naming what was looked for when nothing matches.
    """
    if kind not in KINDS:
        raise ValueError(f"asset kind {kind!r}: expected one of {KINDS}")
    path = Path(name).expanduser()
    if path.is_file():
        return path
    text = str(name)
    if kind == "config":
        stem = path.name.removesuffix(".yaml").removesuffix(".yml")
        found = configs_dir() / f"{stem}.yaml"
        if path.parent == Path(".") and found.is_file():
            return found
        raise ObdError(f"config '{text}': no such file and no shipped preset of that name; presets: "
                       f"{list_presets()} (with an objective: <preset>_<objective>, e.g. fast_avpbc)")
    if kind == "task":
        return _task_folder(text.lower(), text, kind) / "task.yaml"
    if path.suffix == ".pt" or len(path.parts) > 1:
        raise ObdError(f"{text}: {kind} file not found")
    base, _, algo = text.partition(":")
    task, level = split_dataset_name(base)
    folder = _task_folder(task, text, kind)
    file_level = level.replace("-", "_")
    if kind == "behavior":
        found = folder / f"behavior_{file_level}.pt"
        if found.is_file():
            return found
        raise ObdError(f"behavior policy '{text}': {task} ships no {level} policy ({found.name}); shipped: "
                       f"{sorted(p.name for p in folder.glob('behavior_*.pt'))}")
    shipped = {p.name[len("teacher_"):-len(f"_{file_level}.pt")]: p
               for p in folder.glob(f"teacher_*_{file_level}.pt")
               if "_" not in p.name[len("teacher_"):-len(f"_{file_level}.pt")]}
    order = [algo] if algo else [a for a in TEACHER_PREFERENCE if a in shipped] + sorted(set(shipped) -
                                                                                       set(TEACHER_PREFERENCE))
    for a in order:
        if a in shipped:
            return shipped[a]
    listing = sorted(p.name for p in folder.glob("teacher_*.pt"))
    want = f"teacher_{algo}_{file_level}.pt" if algo else f"teacher_<algo>_{file_level}.pt"
    raise ObdError(f"teacher '{text}': no file of that name and no shipped {want}; shipped: {listing}")


__all__ = ["resolve_asset", "tasks_dir", "configs_dir", "list_presets", "split_dataset_name", "LEVELS", "KINDS"]
