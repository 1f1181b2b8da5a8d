"""The synthetic set: N state-action pairs, stored as a portable D4RL-layout HDF5 file.

In memory the states live in *normalized* state space (that is where distillation learns them); on disk
``observations`` are in raw env space, so any D4RL-style reader sees an ordinary dataset. Every row is
written as a one-step episode (``terminals`` true, ``next_observations`` equal to ``observations``,
zero rewards): a synthetic set has no dynamics. The file also carries the normalizer under
``obd/normalizer/{mean,std}`` and the metadata (method, source dataset, teacher, seed, outer step,
resolved config, obd version) as JSON in the ``obd`` group's ``metadata`` attribute.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from obd import __version__
from obd.data.dataset import Normalizer
from obd.errors import ObdError
from obd.io import atomic_path


@dataclass
class SyntheticDataset:
    """``states`` (N, obs_dim) normalized, ``actions`` (N, act_dim), the normalizer and metadata."""

    states: torch.Tensor
    actions: torch.Tensor
    normalizer: Normalizer
    task: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.states = torch.as_tensor(self.states, dtype=torch.float32)
        self.actions = torch.as_tensor(self.actions, dtype=torch.float32)
        if self.states.ndim != 2 or self.actions.ndim != 2 or len(self.states) != len(self.actions):
            raise ObdError(f"synthetic set: expected states (N, obs) and actions (N, act) with the same N, "
                           f"got {tuple(self.states.shape)} and {tuple(self.actions.shape)}")
        self.normalizer.check_dim(self.states.shape[1], "synthetic set")

    def __len__(self) -> int:
        return len(self.states)

    @property
    def obs_dim(self) -> int:
        return int(self.states.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def observations(self) -> np.ndarray:
        """States in raw env space, (N, obs_dim) float32."""
        return np.asarray(self.normalizer.denormalize(self.states.detach().cpu().numpy()), dtype=np.float32)

    @classmethod
    def from_observations(cls, observations: np.ndarray, actions: np.ndarray, normalizer: Normalizer,
                          task: str | None = None, metadata: dict[str, Any] | None = None) -> SyntheticDataset:
        """Build from raw-space observations (e.g. N real pairs for the random-selection baseline)."""
        states = normalizer.normalize(np.asarray(observations, dtype=np.float32))
        return cls(torch.as_tensor(states), torch.as_tensor(np.asarray(actions, dtype=np.float32)),
                   normalizer, task, dict(metadata or {}))

    def to(self, device: str | torch.device) -> SyntheticDataset:
        return SyntheticDataset(self.states.to(device), self.actions.to(device), self.normalizer, self.task,
                                self.metadata)

    def save(self, path: str | Path) -> Path:
        """Write atomically as D4RL-layout HDF5 (see module docstring)."""
        import h5py

        path = Path(path)
        obs = self.observations
        act = self.actions.detach().cpu().numpy().astype(np.float32)
        n = len(obs)
        meta = {"obd_version": __version__, "task": self.task, **self.metadata}
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                f.create_dataset("observations", data=obs)
                f.create_dataset("actions", data=act)
                f.create_dataset("next_observations", data=obs)
                f.create_dataset("rewards", data=np.zeros(n, np.float32))
                f.create_dataset("terminals", data=np.ones(n, bool))
                f.create_dataset("timeouts", data=np.zeros(n, bool))
                g = f.create_group("obd")
                g.attrs["kind"] = "synthetic"
                g.attrs["metadata"] = json.dumps(meta, default=_jsonable)
                self.normalizer.write_h5(g.create_group("normalizer"))
        return path

    @classmethod
    def load(cls, path: str | Path) -> SyntheticDataset:
        """Read a file written by :meth:`save`; errors name the file and the missing key."""
        import h5py

        path = Path(path)
        if not path.is_file():
            raise ObdError(f"{path}: synthetic set file not found")
        try:
            f = h5py.File(path, "r")
        except OSError:
            raise ObdError(f"{path}: not an HDF5 file") from None
        with f:
            for key in ("observations", "actions"):
                if key not in f:
                    raise ObdError(f"{path}: missing key '{key}'")
            if "obd/normalizer" not in f:
                raise ObdError(f"{path}: missing key 'obd/normalizer' (the state normalizer); "
                               "not a synthetic set written by obd")
            normalizer = Normalizer.read_h5(f["obd/normalizer"], str(path))
            obs = f["observations"][()].astype(np.float32)
            act = f["actions"][()].astype(np.float32)
            meta = _read_metadata(f["obd"].attrs.get("metadata", "{}"), path) if "obd" in f else {}
        if not (np.all(np.isfinite(obs)) and np.all(np.isfinite(act))):
            raise ObdError(f"{path}: observations/actions contain NaN or inf")
        if obs.ndim != 2 or act.ndim != 2 or len(obs) != len(act):
            raise ObdError(f"{path}: 'observations' {obs.shape} and 'actions' {act.shape} do not pair up")
        if obs.shape[1] != normalizer.dim:
            raise ObdError(f"{path}: 'observations' have {obs.shape[1]} dims but 'obd/normalizer' has {normalizer.dim}")
        task = meta.pop("task", None)
        return cls.from_observations(obs, act, normalizer, task, meta)


def _read_metadata(text: Any, path: Path) -> dict[str, Any]:
    """The ``obd`` group's ``metadata`` attribute as a dict; an ObdError naming the file when it is not a
    JSON object."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        meta = json.loads(text)
    except (TypeError, ValueError):
        meta = None
    if not isinstance(meta, dict):
        raise ObdError(f"{path}: attribute 'obd' metadata: expected a JSON object, got {str(text)[:60]!r}")
    return meta


def _jsonable(o: Any) -> Any:
    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
