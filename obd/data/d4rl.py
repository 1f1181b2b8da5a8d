"""D4RL-layout HDF5 files: the reader (``qlearning_dataset`` semantics, vectorized) and an atomic writer.

Reading follows D4RL's ``qlearning_dataset`` exactly, so numbers computed on our loader match every
offline RL codebase: for ``i in range(N - 1)`` the transition is ``(obs[i], act[i], rew[i], obs[i+1],
terminals[i])``; a row whose ``timeouts[i]`` is set is dropped (its ``obs[i+1]`` starts the next episode);
without ``timeouts`` the row where D4RL's episode counter reaches ``max_episode_steps - 1`` is dropped
instead. One documented deviation: the file's final row is kept when it is terminal (a terminal
transition's next observation never enters a Bellman target), so synthetic sets, whose every row is a
terminal one-step episode, load whole.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from obd.data.dataset import Normalizer, TransitionDataset
from obd.errors import ObdError
from obd.io import atomic_path

D4RL_ID = re.compile(r"^(?P<env>[a-z0-9]+)-(?P<level>[a-z0-9]+(?:-[a-z0-9]+)*)-v(?P<version>\d+)$")
REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")


def d4rl_dataset_dir() -> Path:
    """``$D4RL_DATASET_DIR``, default ``~/.d4rl/datasets``."""
    return Path(os.environ.get("D4RL_DATASET_DIR", Path.home() / ".d4rl" / "datasets")).expanduser()


def is_d4rl_id(text: str) -> bool:
    return D4RL_ID.match(str(text)) is not None


def d4rl_path(dataset_id: str) -> Path:
    """File of a D4RL dataset id: ``hopper-medium-replay-v2`` -> ``$D4RL_DATASET_DIR/hopper_medium_replay-v2.hdf5``."""
    m = D4RL_ID.match(dataset_id)
    if m is None:
        raise ObdError(f"'{dataset_id}': not a D4RL dataset id; expected '<env>-<level>-v<N>' "
                       "such as 'hopper-medium-replay-v2'")
    level = m["level"].replace("-", "_")
    return d4rl_dataset_dir() / f"{m['env']}_{level}-v{m['version']}.hdf5"


def resolve_d4rl(path_or_id: str | os.PathLike) -> Path:
    """An existing file path as is; otherwise a D4RL id mapped to its file (which must exist)."""
    path = Path(path_or_id).expanduser()
    if path.is_file():
        return path
    text = str(path_or_id)
    if is_d4rl_id(text):
        resolved = d4rl_path(text)
        if not resolved.is_file():
            raise ObdError(f"{resolved}: file not found for D4RL dataset id '{text}' "
                           "(set $D4RL_DATASET_DIR or build it with `obd collect build`)")
        return resolved
    if path.suffix in (".hdf5", ".h5") or os.sep in text:
        raise ObdError(f"{path}: file not found")
    raise ObdError(f"'{text}': neither an existing file nor a D4RL dataset id ('<env>-<level>-v<N>')")


# ---------------------------------------------------------------------------------------------- semantics
def counter_timeouts(terminals: np.ndarray, max_episode_steps: int) -> np.ndarray:
    """The rows D4RL treats as final timesteps when a file has no ``timeouts`` key, (N,) bool.

    D4RL counts ``episode_step`` and calls row ``i`` final when the count equals ``max_episode_steps - 1``;
    the count resets to 0 after a final row but, through the loop's trailing ``+= 1``, to 1 after a
    terminal row. Between terminals the final rows are periodic, so only the segments are looped over.
    """
    n = len(terminals)
    out = np.zeros(n, dtype=bool)
    period = int(max_episode_steps)
    ends = np.flatnonzero(terminals[: max(n - 1, 0)])
    start, c0 = 0, 0
    for end in list(ends) + [n - 1]:
        # rows start..end of this segment carry counts c0, c0+1, ... wrapping to 0 after each final row
        first = start + (period - 1 - c0) % period
        out[first: end + 1: period] = True
        if end < n - 1:
            c0 = 0 if out[end] else 1
        start = end + 1
    out[n - 1] = False  # D4RL never visits the last row
    return out


def qlearning_arrays(observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray, terminals: np.ndarray,
                     timeouts: np.ndarray, last_next_observation: np.ndarray) -> dict[str, np.ndarray]:
    """D4RL ``qlearning_dataset`` on raw arrays, without a Python loop over rows.

    Inputs: observations (N, obs), actions (N, act), rewards (N,), terminals (N,) bool, timeouts (N,) bool
    (the effective final-timestep flags), last_next_observation (obs,) for the deviation on row N-1.
    Returns float32 ``observations``, ``actions``, ``rewards``, ``next_observations``, bool ``terminals``,
    and ``kept`` (N,) bool, the rows that became transitions, plus ``episode_starts`` / ``episode_returns``
    of the raw episodes (split after every terminal or timeout row; returns over all raw rows, dropped
    timeout rows included) restricted to episodes that kept at least one transition.
    """
    n = len(observations)
    kept = ~timeouts
    kept[n - 1] = bool(terminals[n - 1]) and not bool(timeouts[n - 1])
    k = int(kept.sum())
    # np.compress is about twice as fast as fancy indexing for these near-complete row selections
    observations = np.asarray(observations, dtype=np.float32)
    obs = np.compress(kept, observations, axis=0)
    # next_obs[j] = obs[j+1] except after a kept row whose successor was dropped: shift, then patch those
    next_obs = np.empty_like(obs)
    next_obs[:-1] = obs[1:]
    dropped = np.flatnonzero(~kept)
    before_drop = np.flatnonzero(kept[:-1] & ~kept[1:])
    next_obs[before_drop - np.searchsorted(dropped, before_drop)] = observations[before_drop + 1]
    if kept[n - 1]:
        next_obs[-1] = last_next_observation
    rew = np.asarray(rewards, dtype=np.float32)

    ends = np.flatnonzero(terminals | timeouts)
    raw_starts = np.concatenate([[0], ends[ends < n - 1] + 1]).astype(np.int64)
    returns = np.add.reduceat(np.asarray(rewards, dtype=np.float64), raw_starts)
    starts = raw_starts - np.searchsorted(dropped, raw_starts)
    counts = np.diff(np.append(starts, k))
    has_rows = counts > 0
    return {
        "observations": obs, "actions": np.compress(kept, np.asarray(actions, dtype=np.float32), axis=0),
        "rewards": np.compress(kept, rew), "next_observations": next_obs,
        "terminals": np.compress(kept, np.asarray(terminals, dtype=bool)), "kept": kept,
        "episode_starts": starts[has_rows], "episode_returns": returns[has_rows],
    }


# ---------------------------------------------------------------------------------------------- reader
def _read_metadata(f: Any) -> dict[str, Any]:
    """Scalar and string entries under ``metadata/`` (policy weight arrays are skipped) plus obd's JSON."""
    meta: dict[str, Any] = {}
    if "metadata" in f:
        def visit(name: str, obj: Any) -> None:
            if hasattr(obj, "shape") and obj.size <= 16:
                val = obj[()]
                if isinstance(val, bytes):
                    val = val.decode()
                elif isinstance(val, np.ndarray):
                    val = val.tolist()
                elif isinstance(val, np.generic):
                    val = val.item()
                meta[name] = val
        f["metadata"].visititems(visit)
    if "obd" in f and "metadata" in f["obd"].attrs:
        try:
            meta.update(json.loads(f["obd"].attrs["metadata"]))
        except (TypeError, ValueError):
            pass
    return meta


def _infer_task(name: str, metadata: dict[str, Any], obs_dim: int | None, act_dim: int | None) -> str | None:
    """A D4RL file's task: named by its file name, else by its metadata's ``task``, else by unique dims."""
    from obd.envs import infer_task

    return infer_task(name) or infer_task(str(metadata.get("task") or "")) or infer_task(None, obs_dim, act_dim)


def d4rl_task(path_or_id: str | os.PathLike) -> str | None:
    """The task a D4RL-layout file (or id) holds, as :func:`load_d4rl` infers it, reading only its metadata
    and the arrays' shapes (nothing when the name says it); None when none is found or the file cannot be
    read (loading it says why)."""
    import h5py

    path = Path(path_or_id).expanduser()
    named = _infer_task(path.name, {}, None, None)
    if named is not None or not path.is_file():
        return named
    try:
        with h5py.File(path, "r") as f:
            dims = [f[k].shape[1] if k in f and f[k].ndim == 2 else None for k in ("observations", "actions")]
            return _infer_task(path.name, _read_metadata(f), *dims)
    except OSError:
        return None


def _check_finite(path: Path, key: str, arr: np.ndarray) -> None:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(1))
        raise ObdError(f"{path}: key '{key}' has NaN/inf in {len(bad)} row(s), first at row {bad[0]}")


def load_d4rl(path_or_id: str | os.PathLike, task: str | None = None) -> TransitionDataset:
    """Read a D4RL-layout HDF5 file (or a D4RL id) into a :class:`TransitionDataset` (qlearning semantics).

    Accepts float32 or float64 arrays, ``rewards`` (N,) or (N, 1), with or without ``timeouts``,
    ``next_observations``, ``infos``, ``metadata``. The task is ``task`` or inferred from the file name,
    the metadata or the dims; when known, dims are checked against it. An ``obd/normalizer`` group
    becomes the dataset's normalizer.
    """
    import h5py

    path = resolve_d4rl(path_or_id)
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise ObdError(f"{path}: not an HDF5 file") from None
    with f:
        for key in REQUIRED_KEYS:
            if key not in f:
                raise ObdError(f"{path}: missing key '{key}' (a D4RL file needs {list(REQUIRED_KEYS)})")
        observations, actions = f["observations"][()], f["actions"][()]
        rewards, terminals = f["rewards"][()], f["terminals"][()]
        n = len(observations)
        if observations.ndim != 2 or actions.ndim != 2:
            raise ObdError(f"{path}: keys 'observations' and 'actions' must be 2-D (N, dim); "
                           f"got {observations.shape} and {actions.shape}")
        if n == 0:
            raise ObdError(f"{path}: key 'observations' holds no rows")
        if rewards.ndim == 2 and rewards.shape[1] == 1:
            rewards = rewards[:, 0]
        timeouts = f["timeouts"][()] if "timeouts" in f else None
        shapes = {"actions": actions.shape[:1], "rewards": rewards.shape, "terminals": terminals.shape}
        if timeouts is not None:
            shapes["timeouts"] = timeouts.shape
        for key, shape in shapes.items():
            if shape != (n,):
                raise ObdError(f"{path}: key '{key}' has shape {f[key].shape}, expected {n} rows to match "
                               f"'observations' {observations.shape}")
        last_next = observations[n - 1]
        if "next_observations" in f:
            nxt = f["next_observations"]
            if nxt.shape != observations.shape:
                raise ObdError(f"{path}: key 'next_observations' has shape {nxt.shape}, expected {observations.shape}")
            last_next = nxt[n - 1]
            _check_finite(path, "next_observations", last_next[None])
        normalizer = Normalizer.read_h5(f["obd/normalizer"], str(path)) if "obd/normalizer" in f else None
        metadata = _read_metadata(f)
    for key, arr in (("observations", observations), ("actions", actions), ("rewards", rewards)):
        _check_finite(path, key, arr)

    obs_dim, act_dim = observations.shape[1], actions.shape[1]
    if task is None:
        task = _infer_task(path.name, metadata, obs_dim, act_dim)
    max_steps = 1000
    if task is not None:
        from obd.envs import check_dims, get_task

        spec = get_task(task)
        task, max_steps = spec.name, spec.max_episode_steps
        check_dims(spec, obs_dim, act_dim, str(path))
    terminals = terminals.astype(bool)
    timeouts = timeouts.astype(bool) if timeouts is not None else counter_timeouts(terminals, max_steps)

    q = qlearning_arrays(observations, actions, rewards, terminals, timeouts, last_next)
    if len(q["observations"]) == 0:
        raise ObdError(f"{path}: no transitions left after dropping timeout rows")
    ds = TransitionDataset(q["observations"], q["actions"], q["rewards"], q["next_observations"], q["terminals"],
                           q["episode_starts"], q["episode_returns"], task=task, source=str(path), metadata=metadata)
    if normalizer is not None:
        ds.normalizer = normalizer
    return ds


# ---------------------------------------------------------------------------------------------- writer
def write_d4rl(path: str | os.PathLike, observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
               terminals: np.ndarray, timeouts: np.ndarray, next_observations: np.ndarray,
               qpos: np.ndarray | None = None, qvel: np.ndarray | None = None,
               metadata: dict[str, Any] | None = None, normalizer: Normalizer | None = None) -> Path:
    """Write a D4RL v2-layout HDF5 file atomically.

    Keys: ``observations`` (N, obs), ``actions`` (N, act), ``rewards`` (N,), ``terminals`` / ``timeouts``
    (N,) bool, ``next_observations`` (N, obs), ``infos/qpos`` (N, nq), ``infos/qvel`` (N, nv), and one
    scalar dataset per ``metadata`` entry under ``metadata/`` (nested dicts become groups, e.g.
    ``metadata/policy/normalized_score``); ``metadata/obd_version`` is always written.
    """
    import h5py

    from obd import __version__

    path = Path(path)
    n = len(observations)
    arrays = {"observations": np.asarray(observations, np.float32), "actions": np.asarray(actions, np.float32),
              "rewards": np.asarray(rewards, np.float32).reshape(-1), "terminals": np.asarray(terminals, bool),
              "timeouts": np.asarray(timeouts, bool), "next_observations": np.asarray(next_observations, np.float32)}
    infos = {k: np.asarray(v, np.float32) for k, v in (("qpos", qpos), ("qvel", qvel)) if v is not None}
    for key, arr in {**arrays, **{f"infos/{k}": v for k, v in infos.items()}}.items():
        if len(arr) != n:
            raise ObdError(f"{path}: '{key}' has {len(arr)} rows, 'observations' has {n}")
    meta = {**(metadata or {}), "obd_version": __version__}
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for key, arr in arrays.items():
                f.create_dataset(key, data=arr)
            for key, arr in infos.items():
                f.create_dataset(f"infos/{key}", data=arr)
            _write_meta(f.require_group("metadata"), meta)
            if normalizer is not None:
                normalizer.write_h5(f.require_group("obd").create_group("normalizer"))
    return path


def _write_meta(group: Any, meta: dict[str, Any]) -> None:
    for key, val in meta.items():
        if val is None:
            continue
        if isinstance(val, dict):
            _write_meta(group.require_group(key), val)
        elif isinstance(val, str):
            group.create_dataset(key, data=val.encode())
        else:
            group.create_dataset(key, data=np.asarray(val))


__all__ = ["load_d4rl", "write_d4rl", "d4rl_path", "d4rl_dataset_dir", "resolve_d4rl", "is_d4rl_id",
           "qlearning_arrays", "counter_timeouts"]
