"""Minari datasets: read one into a flat :class:`TransitionDataset`, write one from episodes atomically.

A Minari episode holds T+1 observations and T actions, rewards, terminations and truncations; it
flattens to T transitions with ``next_obs[t] = obs[t+1]`` and ``terminal[t] = terminations[t]``.
Writing goes through ``minari.create_dataset_from_buffers`` (no jax needed) into a staging folder that
is renamed onto ``$MINARI_DATASETS_PATH/<id>`` only when complete.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from obd.data.dataset import TransitionDataset
from obd.errors import ObdError
from obd.io import atomic_path

MINARI_ID = re.compile(r"^(?:[\w.-]+/)*[\w.-]+-v\d+$")


@dataclass
class Episode:
    """One recorded episode: observations (T+1, obs), actions (T, act), rewards / terminations /
    truncations (T,); ``qpos`` (T, nq) and ``qvel`` (T, nv) are the simulator state before each step."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    qpos: np.ndarray | None = None
    qvel: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.actions)


def minari_root() -> Path:
    """``$MINARI_DATASETS_PATH``, default ``~/.minari/datasets``."""
    return Path(os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets")).expanduser()


def is_minari_id(text: str) -> bool:
    return "/" in str(text) and MINARI_ID.match(str(text)) is not None


@contextlib.contextmanager
def _datasets_path(root: Path) -> Iterator[None]:
    """Point Minari at ``root`` for the duration (Minari reads the variable on every call)."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def flatten_episodes(episodes: Sequence[Episode]) -> dict[str, np.ndarray]:
    """Concatenate episodes into transition arrays plus ``episode_starts`` (E,) and ``episode_returns`` (E,)."""
    lengths = np.array([len(e) for e in episodes], dtype=np.int64)
    return {
        "observations": np.concatenate([e.observations[:-1] for e in episodes]).astype(np.float32),
        "next_observations": np.concatenate([e.observations[1:] for e in episodes]).astype(np.float32),
        "actions": np.concatenate([e.actions for e in episodes]).astype(np.float32),
        "rewards": np.concatenate([e.rewards for e in episodes]).astype(np.float32),
        "terminals": np.concatenate([e.terminations for e in episodes]).astype(bool),
        "timeouts": np.concatenate([np.asarray(e.truncations, bool) & ~np.asarray(e.terminations, bool)
                                    for e in episodes]),
        "episode_starts": np.concatenate([[0], np.cumsum(lengths)[:-1]]),
        "episode_returns": np.array([float(np.sum(e.rewards, dtype=np.float64)) for e in episodes]),
    }


def load_minari(dataset_id: Any, task: str | None = None) -> TransitionDataset:
    """Load a local Minari dataset (an id under ``$MINARI_DATASETS_PATH``, a dataset folder or an open
    ``minari.MinariDataset``) and flatten its episodes into transitions. The task comes from ``task``, the
    id, the env spec or the dims."""
    import minari

    if isinstance(dataset_id, minari.MinariDataset):
        ds = dataset_id
        dataset_id = str(ds.spec.dataset_id)
    else:
        ds = None
    folder = Path(dataset_id)
    source = str(dataset_id)
    try:
        if ds is not None:
            pass
        elif (folder / "data" / "metadata.json").is_file():
            ds = minari.MinariDataset(folder / "data")
        else:
            ds = minari.load_dataset(str(dataset_id), download=False)
    except FileNotFoundError:
        raise ObdError(f"Minari dataset '{dataset_id}' not found under {minari_root()} "
                       "(set $MINARI_DATASETS_PATH; remote download is disabled)") from None
    except ValueError as exc:
        raise ObdError(f"Minari dataset '{dataset_id}': {exc}") from None
    if ds.total_episodes == 0:
        raise ObdError(f"Minari dataset '{dataset_id}': holds no episodes")
    episodes = []
    for ep in ds.iterate_episodes():
        obs, act = np.asarray(ep.observations), np.asarray(ep.actions)
        if not isinstance(ep.observations, np.ndarray) or obs.ndim != 2 or act.ndim != 2:
            raise ObdError(f"Minari dataset '{dataset_id}': episode {ep.id} needs flat Box observations and "
                           f"actions, got {type(ep.observations).__name__} {getattr(obs, 'shape', '')}")
        if len(obs) != len(act) + 1:
            raise ObdError(f"Minari dataset '{dataset_id}': episode {ep.id} has {len(obs)} observations for "
                           f"{len(act)} actions (expected T+1 for T)")
        episodes.append(Episode(obs, act, np.asarray(ep.rewards), np.asarray(ep.terminations),
                                np.asarray(ep.truncations)))
    flat = flatten_episodes(episodes)
    for key in ("observations", "next_observations", "actions", "rewards"):
        if not np.isfinite(flat[key]).all():
            raise ObdError(f"Minari dataset '{dataset_id}': '{key}' contains NaN or inf")
    meta: dict[str, Any] = {k: v for k, v in ds.storage.metadata.items()
                            if isinstance(v, (str, int, float, bool)) and k != "env_spec"}
    obs_dim, act_dim = flat["observations"].shape[1], flat["actions"].shape[1]
    from obd.envs import check_dims, get_task, infer_task

    if task is None:
        env_id = ds.spec.env_spec.id if ds.spec.env_spec is not None else None
        # infer_task reads a file name, so the id's namespace/env parts are joined into one
        task = infer_task(str(meta.get("dataset_id", folder.name)).replace("/", "-"))
        if task is None and env_id is not None:
            with contextlib.suppress(ObdError):
                task = get_task(env_id).name
        task = task or infer_task(None, obs_dim, act_dim)
    if task is not None:
        task = get_task(task).name
        check_dims(task, obs_dim, act_dim, f"Minari dataset '{dataset_id}'")
    return TransitionDataset(flat["observations"], flat["actions"], flat["rewards"], flat["next_observations"],
                             flat["terminals"], flat["episode_starts"], flat["episode_returns"], task=task,
                             source=f"minari:{source}", metadata=meta)


def write_minari(dataset_id: str, episodes: Sequence[Episode], env_id: str, ref_min_score: float | None = None,
                 ref_max_score: float | None = None, algorithm_name: str | None = None,
                 description: str | None = None, overwrite: bool = False, root: Path | None = None) -> Path:
    """Create the Minari dataset ``dataset_id`` under ``root`` (default ``$MINARI_DATASETS_PATH``) from ``episodes``.

    ``env_id`` (a Gymnasium id such as ``Hopper-v5``) supplies the env spec and spaces; the reference
    scores make ``minari.get_normalized_score`` work. Built in a staging folder, renamed when complete.
    Returns the dataset folder.
    """
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    from obd.envs import install_mujoco_warning_handler

    if not is_minari_id(dataset_id):
        raise ObdError(f"'{dataset_id}': not a Minari dataset id; expected 'namespace/env/name-vN'")
    if not episodes:
        raise ObdError(f"Minari dataset '{dataset_id}': no episodes to write")
    root = Path(root) if root is not None else minari_root()
    final = root / dataset_id
    if final.exists() and not overwrite:
        raise ObdError(f"{final}: Minari dataset '{dataset_id}' already exists (pass overwrite to replace it)")
    buffers = [EpisodeBuffer(id=i, observations=np.asarray(e.observations, np.float32),
                             actions=np.asarray(e.actions, np.float32),
                             rewards=np.asarray(e.rewards, np.float64).tolist(),
                             terminations=np.asarray(e.terminations, bool).tolist(),
                             truncations=np.asarray(e.truncations, bool).tolist())
               for i, e in enumerate(episodes)]
    env_spec = gym.spec(env_id)
    install_mujoco_warning_handler()   # Minari makes the env from its spec itself
    with atomic_path(final, is_dir=True) as target:
        staging = target.parent / "root"
        with _datasets_path(staging):
            minari.create_dataset_from_buffers(
                dataset_id, buffers, env=env_spec, eval_env=env_spec,
                algorithm_name=algorithm_name or "unspecified",
                ref_min_score=ref_min_score, ref_max_score=ref_max_score,
                description=description or f"obd dataset {dataset_id} collected in {env_id}",
                code_permalink="https://github.com/obd/obd", author="obd",
                author_email="obd@users.noreply.github.com")
        os.replace(staging / dataset_id, target)
        _copy_namespaces(staging, root, dataset_id)
    return final


def _copy_namespaces(staging: Path, root: Path, dataset_id: str) -> None:
    """Carry the namespace metadata files Minari wrote in staging over to the real root."""
    parts = dataset_id.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        rel = Path(*parts[:i]) / "namespace_metadata.json"
        if (staging / rel).is_file() and not (root / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(staging / rel, root / rel)


__all__ = ["Episode", "load_minari", "write_minari", "flatten_episodes", "minari_root", "is_minari_id"]
