"""``load_dataset(spec)``: one entry point for a D4RL file path, a D4RL id, a Minari id or a Minari folder."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from obd.data.d4rl import d4rl_path, d4rl_task, is_d4rl_id, load_d4rl
from obd.data.dataset import TransitionDataset
from obd.data.minari_io import is_minari_id, load_minari, minari_root
from obd.errors import ObdError

HDF5_SUFFIXES = (".hdf5", ".h5")


def load_dataset(spec: Any, task: str | None = None) -> TransitionDataset:
    """Load ``spec``: a ``minari.MinariDataset`` object, a D4RL ``qlearning_dataset``-style dict of arrays
    (:meth:`TransitionDataset.from_qlearning_dict`), a :class:`TransitionDataset` (returned as is), or a
    name or path tried in this order: an existing ``.hdf5``/``.h5`` file (D4RL layout), an existing
    Minari dataset folder (holding ``data/metadata.json``), a D4RL id (``<task>-<level>-vN``, resolved
    under ``$D4RL_DATASET_DIR``), a Minari id (``namespace/env/name-vN``, under ``$MINARI_DATASETS_PATH``).
    Anything else raises an :class:`ObdError` listing what was tried."""
    if isinstance(spec, TransitionDataset):
        return spec
    if isinstance(spec, Mapping):
        return TransitionDataset.from_qlearning_dict(spec, task=task)
    if not isinstance(spec, (str, os.PathLike)):
        if hasattr(spec, "iterate_episodes") and hasattr(spec, "spec"):  # minari.MinariDataset, not imported here
            return load_minari(spec, task)
        raise ObdError(f"dataset: expected a path, an id, a dict of arrays or a minari.MinariDataset, got "
                       f"{type(spec).__name__}")
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix.lower() in HDF5_SUFFIXES:
            return load_d4rl(path, task)
        raise ObdError(f"{path}: expected a D4RL-layout '.hdf5'/'.h5' file or a Minari dataset folder")
    if path.is_dir():
        if (path / "data" / "metadata.json").is_file():
            return load_minari(path, task)
        raise ObdError(f"{path}: a folder but not a Minari dataset (no 'data/metadata.json')")
    if path.suffix.lower() in HDF5_SUFFIXES:
        raise ObdError(f"{path}: file not found")
    if is_d4rl_id(text):
        return load_d4rl(text, task)
    if is_minari_id(text):
        return load_minari(text, task)
    raise ObdError(
        f"'{text}': no dataset found; tried an existing file or Minari folder at {path.resolve()}, a D4RL id "
        f"('<task>-<level>-vN' -> e.g. {d4rl_path('hopper-medium-v2')}), a Minari id "
        f"('namespace/env/name-vN' under {minari_root()})"
    )


def dataset_task(spec: Any) -> str | None:
    """The task (``hopper``) of what :func:`load_dataset` would load from ``spec``, found without reading
    its transitions: a loaded dataset's own, else the name or id (``hopper-medium-v5``, ``hopper_medium-v5.hdf5``),
    else a D4RL file's metadata or dims, else a Minari folder's dataset id. None when none of them names a
    task (a preset's per-task entries then do not apply)."""
    import json

    from obd.envs import infer_task

    if isinstance(spec, TransitionDataset):
        return spec.task
    if isinstance(spec, Mapping):
        return None
    if not isinstance(spec, (str, os.PathLike)):
        env = getattr(getattr(spec, "spec", None), "dataset_id", None)
        return infer_task(str(env).replace("/", "-")) if env else None
    text = str(spec)
    path = Path(text).expanduser()
    if path.suffix.lower() in HDF5_SUFFIXES:
        return d4rl_task(path)
    task = infer_task(text.replace("/", "-"))
    meta = path / "data" / "metadata.json"
    if task is None and meta.is_file():
        try:
            task = infer_task(str(json.loads(meta.read_text()).get("dataset_id", "")).replace("/", "-"))
        except (OSError, ValueError):
            return None
    return task


__all__ = ["load_dataset", "dataset_task"]
