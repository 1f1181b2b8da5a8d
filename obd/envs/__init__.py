"""Task registry: declarative specs shipped as package data, ``obd/tasks/<task>/task.yaml``.

A task ties a D4RL dataset family (hopper, halfcheetah, walker2d) to its Gymnasium ``-v5`` env and its
D4RL reference scores, so every stage reports the same normalized score
``100 * (R - ref_min_score) / (ref_max_score - ref_min_score)``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from obd.assets import tasks_dir
from obd.errors import ObdError


@dataclass(frozen=True)
class TaskSpec:
    """One locomotion task: env id, dimensions, D4RL reference returns, episode length, and
    ``forward_qpos_index``: the MuJoCo ``qpos`` entry that is the body's forward coordinate (the torso's x
    for hopper, halfcheetah and walker2d), from which rollouts report forward progress."""

    name: str
    env_id: str
    obs_dim: int
    act_dim: int
    ref_min_score: float
    ref_max_score: float
    max_episode_steps: int = 1000
    expert_threshold: float = 80.0
    medium_target: float | None = None    # normalized score the medium policy's stochastic rollouts aim for
    forward_qpos_index: int = 0

    @property
    def directory(self) -> Path:
        """Folder holding the task spec and its shipped weights (behavior policies, teachers)."""
        return tasks_dir() / self.name


_REQUIRED = {"name": str, "env_id": str, "obs_dim": int, "act_dim": int,
             "ref_min_score": float, "ref_max_score": float}


def _parse_spec(path: Path) -> TaskSpec:
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ObdError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise ObdError(f"{path}: expected a mapping of task fields")
    for key, typ in _REQUIRED.items():
        if key not in raw:
            raise ObdError(f"{path}: missing field '{key}'")
        if not isinstance(raw[key], (int, float) if typ is float else typ):
            raise ObdError(f"{path}: field '{key}' should be {typ.__name__}, got {raw[key]!r}")
    known = set(TaskSpec.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise ObdError(f"{path}: unknown field(s) {sorted(unknown)}; expected some of {sorted(known)}")
    return TaskSpec(**raw)


@cache
def _registry() -> dict[str, TaskSpec]:
    specs = {}
    for path in sorted(tasks_dir().glob("*/task.yaml")):
        spec = _parse_spec(path)
        specs[spec.name] = spec
    return specs


def list_tasks() -> list[str]:
    return sorted(_registry())


def get_task(task: str | TaskSpec) -> TaskSpec:
    """Look a task up by name (``hopper``) or by dataset id prefix (``hopper-medium-v2``)."""
    if isinstance(task, TaskSpec):
        return task
    reg = _registry()
    key = str(task).lower()
    if key in reg:
        return reg[key]
    for name in reg:
        if key.startswith(name + "-") or key.startswith(name + "_") or key.startswith(name + "/"):
            return reg[name]
    for spec in reg.values():
        if spec.env_id.lower() == key:
            return spec
    raise ObdError(f"unknown task '{task}'; expected one of {list_tasks()} (specs in {tasks_dir()})")


def infer_task(text: str | None = None, obs_dim: int | None = None, act_dim: int | None = None) -> str | None:
    """Find the task a file name or dataset id names (``hopper_medium-v2.hdf5``), else by unique dims."""
    if text:
        low = Path(str(text)).name.lower()
        for name in sorted(_registry(), key=len, reverse=True):
            if name in low:
                return name
    if obs_dim is not None and act_dim is not None:
        hits = [s.name for s in _registry().values() if (s.obs_dim, s.act_dim) == (obs_dim, act_dim)]
        if len(hits) == 1:
            return hits[0]
    return None


def check_dims(task: str | TaskSpec, obs_dim: int, act_dim: int, where: str) -> None:
    spec = get_task(task)
    if (obs_dim, act_dim) != (spec.obs_dim, spec.act_dim):
        raise ObdError(
            f"{where}: observation/action dims ({obs_dim}, {act_dim}) do not match task "
            f"'{spec.name}' which expects ({spec.obs_dim}, {spec.act_dim})"
        )


def normalized_score(task: str | TaskSpec, returns: Any) -> Any:
    """D4RL normalized score ``100 * (R - min) / (max - min)``; scalar in, scalar out; array in, array out."""
    spec = get_task(task)
    r = np.asarray(returns, dtype=np.float64)
    score = 100.0 * (r - spec.ref_min_score) / (spec.ref_max_score - spec.ref_min_score)
    return float(score) if score.ndim == 0 else score


#: MuJoCo warnings about Gymnasium's own model files, not about anything a user did: MuJoCo 4 deprecates the
#: ``settotalmass`` compiler attribute of Gymnasium's ``half_cheetah.xml`` (the compiled model is unchanged)
_GYMNASIUM_MODEL_WARNINGS = ("compiler attribute 'settotalmass' is deprecated",)


def _mujoco_warning(message: str) -> None:
    """MuJoCo's warning handler while obd makes envs: every warning printed as MuJoCo prints it, except those
    of :data:`_GYMNASIUM_MODEL_WARNINGS`, which every halfcheetah env would repeat."""
    if not message.startswith(_GYMNASIUM_MODEL_WARNINGS):
        print(f"WARNING: {message}", file=sys.stderr, flush=True)


@cache
def install_mujoco_warning_handler() -> None:
    """Route MuJoCo's warnings through :func:`_mujoco_warning` for this process (once; a handler the user
    installed is kept). Called by everything in obd that compiles a Gymnasium MuJoCo model: ``make_env``, and
    the Minari writer, whose ``gym.make`` of the env spec would otherwise print the deprecation."""
    try:
        import mujoco
    except ImportError:
        return
    # a handler the user installed stays theirs
    if hasattr(mujoco, "set_mju_user_warning") and mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_mujoco_warning)


def make_env(task: str | TaskSpec, normalizer: Any = None, seed: int | None = None, **kwargs: Any):
    """Gymnasium env for ``task``; observations pass through ``normalizer.normalize`` when one is given.

    ``seed`` seeds the first ``reset`` and the action space.
    """
    import gymnasium as gym

    spec = get_task(task)
    install_mujoco_warning_handler()
    env = gym.make(spec.env_id, max_episode_steps=spec.max_episode_steps, **kwargs)
    if normalizer is not None:
        obs_space = gym.spaces.Box(-np.inf, np.inf, shape=(spec.obs_dim,), dtype=np.float32)
        env = gym.wrappers.TransformObservation(
            env, lambda o: np.asarray(normalizer.normalize(o), dtype=np.float32), obs_space
        )
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


__all__ = ["TaskSpec", "get_task", "list_tasks", "infer_task", "check_dims", "normalized_score", "make_env",
           "tasks_dir", "install_mujoco_warning_handler"]
