"""The in-memory transition dataset every stage consumes, and the state normalizer that travels with it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from obd.errors import ObdError

NORMALIZER_EPS = 1e-3


@dataclass(frozen=True)
class Normalizer:
    """Per-dimension state normalization ``(s - mean) / std`` with ``std = data std + 1e-3`` (the OBD/CORL
    convention). Works on numpy arrays and torch tensors of shape (..., obs_dim)."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1)
        std = np.asarray(self.std, dtype=np.float32).reshape(-1)
        if mean.shape != std.shape:
            raise ObdError(f"normalizer: mean has {mean.size} dims but std has {std.size}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise ObdError("normalizer: mean/std must be finite")
        if np.any(std <= 0):
            raise ObdError(f"normalizer: std must be > 0, got {std[std <= 0][0]:g} in dim(s) "
                           f"{np.flatnonzero(std <= 0).tolist()[:8]}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def from_data(cls, observations: np.ndarray, eps: float = NORMALIZER_EPS) -> Normalizer:
        obs = np.asarray(observations, dtype=np.float64)
        return cls(obs.mean(0), obs.std(0) + eps)

    @classmethod
    def identity(cls, dim: int) -> Normalizer:
        return cls(np.zeros(dim, np.float32), np.ones(dim, np.float32))

    @property
    def dim(self) -> int:
        return int(self.mean.size)

    def _cast(self, x: Any) -> tuple[Any, Any]:
        if hasattr(x, "device") and hasattr(x, "dtype") and not isinstance(x, np.ndarray):  # torch tensor
            import torch

            return (torch.as_tensor(self.mean, device=x.device, dtype=x.dtype),
                    torch.as_tensor(self.std, device=x.device, dtype=x.dtype))
        return self.mean, self.std

    def check_dim(self, dim: int, where: str) -> None:
        if dim != self.dim:
            raise ObdError(f"{where}: normalizer has {self.dim} dims but states have {dim}")

    def normalize(self, x: Any) -> Any:
        mean, std = self._cast(x)
        if isinstance(x, (list, tuple)):
            x = np.asarray(x, dtype=np.float32)
        return (x - mean) / std

    def denormalize(self, x: Any) -> Any:
        mean, std = self._cast(x)
        if isinstance(x, (list, tuple)):
            x = np.asarray(x, dtype=np.float32)
        return x * std + mean

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "normalizer") -> Normalizer:
        for key in ("mean", "std"):
            if key not in d:
                raise ObdError(f"{where}: missing '{key}'")
        return cls.checked(d["mean"], d["std"], where)

    @classmethod
    def checked(cls, mean: Any, std: Any, where: str) -> Normalizer:
        """``Normalizer(mean, std)`` whose ObdError for bad values names ``where`` (the file it came from)."""
        try:
            return cls(np.asarray(mean), np.asarray(std))
        except ObdError as exc:
            raise ObdError(f"{where}: {exc}") from None

    def write_h5(self, group: Any) -> None:
        """Store as datasets ``mean`` and ``std`` in an h5py group."""
        group.create_dataset("mean", data=self.mean)
        group.create_dataset("std", data=self.std)

    @classmethod
    def read_h5(cls, group: Any, where: str) -> Normalizer:
        for key in ("mean", "std"):
            if key not in group:
                raise ObdError(f"{where}: missing key '{group.name}/{key}'")
        return cls.checked(group["mean"][()], group["std"][()], f"{where}: '{group.name}'")


@dataclass
class TransitionDataset:
    """Transitions ``(s, a, r, s', terminal)`` in float32, with episode boundaries.

    Shapes: ``observations``/``next_observations`` (N, obs_dim), ``actions`` (N, act_dim), ``rewards`` (N,),
    ``terminals`` (N,) bool. ``episode_starts`` (E,) holds the index of each episode's first transition
    (sorted, starting with 0); episode ``e`` spans ``episode_starts[e] : episode_starts[e+1]``.
    ``episode_returns`` (E,) are the undiscounted returns of the *whole* episodes as recorded
    (D4RL's dropped timeout steps included), so normalized scores match the data's behavior policy.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    episode_starts: np.ndarray
    episode_returns: np.ndarray | None = None
    task: str | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    _normalizer: Normalizer | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        where = self.source or "dataset"
        n = len(self.observations)
        for name in ("actions", "rewards", "next_observations", "terminals"):
            if len(getattr(self, name)) != n:
                raise ObdError(f"{where}: '{name}' has {len(getattr(self, name))} rows, 'observations' has {n}")
        self.observations = np.ascontiguousarray(self.observations, dtype=np.float32)
        self.actions = np.ascontiguousarray(self.actions, dtype=np.float32)
        self.rewards = np.ascontiguousarray(np.asarray(self.rewards).reshape(n), dtype=np.float32)
        self.next_observations = np.ascontiguousarray(self.next_observations, dtype=np.float32)
        self.terminals = np.asarray(self.terminals).reshape(n).astype(bool)
        self.episode_starts = np.asarray(self.episode_starts, dtype=np.int64).reshape(-1)
        if n == 0:
            raise ObdError(f"{where}: holds no transitions")
        if (self.observations.ndim != 2 or self.actions.ndim != 2
                or self.next_observations.shape != self.observations.shape):
            raise ObdError(f"{where}: expected observations (N, obs), next_observations (N, obs), actions (N, act); "
                           f"got {self.observations.shape}, {self.next_observations.shape}, {self.actions.shape}")
        if len(self.episode_starts) == 0 or self.episode_starts[0] != 0 or np.any(np.diff(self.episode_starts) <= 0) \
                or self.episode_starts[-1] >= n:
            raise ObdError(f"{where}: episode_starts must be strictly increasing indices starting at 0 and below {n}")
        if self.episode_returns is None:
            self.episode_returns = np.add.reduceat(self.rewards.astype(np.float64), self.episode_starts)
        self.episode_returns = np.asarray(self.episode_returns, dtype=np.float64)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(cls, observations: Any, actions: Any, rewards: Any, next_observations: Any, terminals: Any,
                    timeouts: Any = None, *, task: str | None = None, source: str = "arrays",
                    metadata: dict[str, Any] | None = None) -> TransitionDataset:
        """Transitions given row by row: ``observations``/``next_observations`` (N, obs), ``actions`` (N, act),
        ``rewards``, ``terminals`` and optional ``timeouts`` (N,). An episode ends after a row that is terminal
        or a timeout (and at the last row); ``episode_returns`` sum the rewards of its rows. ``task`` is
        checked against the dims, or inferred from them when they are unique to one task.
        NaN/inf values, mismatched lengths or dims are an :class:`ObdError` naming the array."""
        arrays = {"observations": observations, "actions": actions, "rewards": rewards,
                  "next_observations": next_observations, "terminals": terminals}
        if timeouts is not None:
            arrays["timeouts"] = timeouts
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        n = len(arrays["observations"])
        for key, arr in arrays.items():
            if len(arr) != n:
                raise ObdError(f"{source}: '{key}' has {len(arr)} rows, 'observations' has {n}")
            if key not in ("terminals", "timeouts") and not np.isfinite(arr.astype(np.float64)).all():
                raise ObdError(f"{source}: '{key}' contains NaN or inf")
        if n == 0:
            raise ObdError(f"{source}: holds no transitions")
        ends = arrays["terminals"].reshape(n).astype(bool)
        if timeouts is not None:
            ends = ends | arrays["timeouts"].reshape(n).astype(bool)
        starts = np.concatenate([[0], np.flatnonzero(ends[:-1]) + 1])
        obs_dim = arrays["observations"].shape[-1] if arrays["observations"].ndim == 2 else None
        act_dim = arrays["actions"].shape[-1] if arrays["actions"].ndim == 2 else None
        from obd.envs import check_dims, get_task, infer_task

        if task is not None:
            task = get_task(task).name
            check_dims(task, obs_dim, act_dim, source)
        else:
            task = infer_task(None, obs_dim, act_dim)
        return cls(arrays["observations"], arrays["actions"], arrays["rewards"], arrays["next_observations"],
                   arrays["terminals"], starts, task=task, source=source, metadata=dict(metadata or {}))

    @classmethod
    def from_qlearning_dict(cls, data: Mapping[str, Any], task: str | None = None,
                            source: str = "qlearning_dataset") -> TransitionDataset:
        """From a D4RL ``qlearning_dataset``-style dict (``observations``, ``actions``, ``rewards``,
        ``next_observations``, ``terminals``, optional ``timeouts``); see :meth:`from_arrays`."""
        required = ("observations", "actions", "rewards", "next_observations", "terminals")
        missing = [k for k in required if k not in data]
        if missing:
            raise ObdError(f"{source}: missing key(s) {missing}; expected {list(required)} (+ optional 'timeouts')")
        return cls.from_arrays(*(data[k] for k in required), data.get("timeouts"), task=task, source=source)

    # ------------------------------------------------------------------ shape
    def __len__(self) -> int:
        return len(self.observations)

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def num_episodes(self) -> int:
        return len(self.episode_starts)

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(np.append(self.episode_starts, len(self)))

    # ------------------------------------------------------------------ normalization
    @property
    def normalizer(self) -> Normalizer:
        """State normalizer fitted on this dataset's observations (mean, std + 1e-3)."""
        if self._normalizer is None:
            self._normalizer = Normalizer.from_data(self.observations)
        return self._normalizer

    @normalizer.setter
    def normalizer(self, value: Normalizer) -> None:
        value.check_dim(self.obs_dim, self.source or "dataset")
        self._normalizer = value

    def normalized_scores(self) -> np.ndarray:
        """D4RL normalized score of every recorded episode (needs a known task)."""
        if self.task is None:
            raise ObdError(f"{self.source or 'dataset'}: task unknown, cannot compute normalized scores")
        from obd.envs import normalized_score

        return normalized_score(self.task, self.episode_returns)

    # ------------------------------------------------------------------ helpers
    def fingerprint(self) -> str:
        """sha256 (hex) of the observations and actions as float32 bytes: names this exact data in run
        checkpoints and teacher files."""
        digest = hashlib.sha256()
        for array in (self.observations, self.actions):
            digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
        return digest.hexdigest()

    def summary(self) -> dict[str, Any]:
        """Counts, return statistics and ranges; what ``python -m obd.data inspect`` prints."""
        ret = self.episode_returns
        out: dict[str, Any] = {
            "source": self.source, "task": self.task, "transitions": len(self), "episodes": self.num_episodes,
            "obs_dim": self.obs_dim, "act_dim": self.act_dim, "terminals": int(self.terminals.sum()),
            "return_mean": float(ret.mean()), "return_std": float(ret.std()),
            "return_min": float(ret.min()), "return_max": float(ret.max()),
            "episode_length_mean": float(self.episode_lengths.mean()),
            "obs_min": self.observations.min(0).tolist(), "obs_max": self.observations.max(0).tolist(),
            "act_min": self.actions.min(0).tolist(), "act_max": self.actions.max(0).tolist(),
            "normalizer": self.normalizer.to_dict(),
        }
        if self.task is not None:
            scores = self.normalized_scores()
            out.update(normalized_score_mean=float(scores.mean()), normalized_score_std=float(scores.std()),
                       normalized_score_min=float(scores.min()), normalized_score_max=float(scores.max()))
        return out
