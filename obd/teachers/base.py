"""The teacher: a near-expert policy (and its first critic) from offline RL, as PBC / Av-PBC consume it.

A :class:`Teacher` takes RAW environment states (numpy or torch, (B, obs_dim)), normalizes them with the
statistics its networks were trained on, and answers without gradients on ``teacher.device``:

* ``act(s)`` -> (B, act): the deterministic action ``tanh(mean)``;
* ``sample(s, generator)`` -> (B, act): ``a* ~ pi*(.|s)`` (``act`` for a deterministic actor);
* ``mean_std(s)`` -> ((B, act), (B, act)): pre-tanh Gaussian parameters (tanh-Gaussian actors only);
* ``q(s, a)`` -> (B,): the first critic ``Q1(s, a)`` (Av-PBC's weight ``beta * Q1(s, a*)``).

A teacher file is one ``torch.save`` of plain tensors, lists and dicts (``torch.load(weights_only=True)``
reads it): architecture, actor and critic weights, normalizer and metadata. No module is ever pickled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

import obd
from obd.data.dataset import Normalizer
from obd.device import resolve_device
from obd.errors import ObdError
from obd.io import torch_save_atomic
from obd.teachers.networks import EnsembleQ, TeacherActor, build_actor, build_critic

FILE_FORMAT = "obd-teacher"
FILE_VERSION = 1


class Teacher:
    """Actor (+ optional ensemble critic) bound to a normalizer; see the module docstring for the API."""

    def __init__(self, actor: TeacherActor, critic: EnsembleQ | None, normalizer: Normalizer,
                 task: str | None = None, metadata: dict[str, Any] | None = None,
                 device: str | torch.device | None = None):
        normalizer.check_dim(actor.obs_dim, "teacher")
        if critic is not None and (critic.obs_dim, critic.act_dim) != (actor.obs_dim, actor.act_dim):
            raise ObdError(f"teacher: critic dims ({critic.obs_dim}, {critic.act_dim}) differ from actor dims "
                           f"({actor.obs_dim}, {actor.act_dim})")
        self.actor = actor.eval().requires_grad_(False)
        self.critic = critic.eval().requires_grad_(False) if critic is not None else None
        self.normalizer = normalizer
        self.task = task
        self.metadata = dict(metadata or {})
        self.device = torch.device("cpu")
        self.to(resolve_device(device))

    # ------------------------------------------------------------------ shape
    @property
    def obs_dim(self) -> int:
        return self.actor.obs_dim

    @property
    def act_dim(self) -> int:
        return self.actor.act_dim

    @property
    def stochastic(self) -> bool:
        return self.actor.stochastic

    def to(self, device: str | torch.device) -> "Teacher":
        self.device = resolve_device(device)
        self.actor.to(self.device)
        if self.critic is not None:
            self.critic.to(self.device)
        self._mean = torch.as_tensor(self.normalizer.mean, device=self.device)
        self._std = torch.as_tensor(self.normalizer.std, device=self.device)
        return self

    def _tensor(self, x: Any, dim: int, what: str) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(x, dtype=np.float32) if not isinstance(x, torch.Tensor) else x)
        t = t.to(self.device, torch.float32)
        if t.ndim != 2 or t.shape[1] != dim:
            raise ObdError(f"teacher: {what} should have shape (B, {dim}), got {tuple(t.shape)}")
        return t

    def _states(self, states: Any) -> torch.Tensor:
        return (self._tensor(states, self.obs_dim, "states") - self._mean) / self._std

    # ------------------------------------------------------------------ queries
    @torch.no_grad()
    def act(self, states: Any) -> torch.Tensor:
        """Deterministic action ``tanh(mean(s))``: raw states (B, obs) -> (B, act)."""
        return torch.tanh(self.actor(self._states(states))[0])

    @torch.no_grad()
    def sample(self, states: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        """``a ~ pi(.|s) = tanh(mean + std * eps)``, eps ~ N(0, I) drawn from ``generator`` (on ``device``)."""
        mean, log_std = self.actor(self._states(states))
        if log_std is None:
            return torch.tanh(mean)
        noise = torch.randn(mean.shape, generator=generator, device=self.device)
        return torch.tanh(mean + log_std.exp() * noise)

    @torch.no_grad()
    def mean_std(self, states: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-tanh Gaussian ``(mean, std)``, each (B, act); ObdError for a deterministic actor."""
        if not self.stochastic:
            raise ObdError(f"teacher ({self.metadata.get('algo', 'unknown algo')}): the actor is deterministic, "
                           "it has no mean/std; use act()")
        mean, log_std = self.actor(self._states(states))
        return mean, log_std.exp()

    @torch.no_grad()
    def q(self, states: Any, actions: Any) -> torch.Tensor:
        """First critic ``Q1(s, a)``: raw states (B, obs), actions (B, act) -> (B,)."""
        if self.critic is None:
            raise ObdError("teacher: this teacher file holds no critic, so q() is unavailable")
        s = self._states(states)
        a = self._tensor(actions, self.act_dim, "actions")
        if a.shape[0] != s.shape[0]:
            raise ObdError(f"teacher: {s.shape[0]} states but {a.shape[0]} actions")
        return self.critic.q1(s, a)

    # ------------------------------------------------------------------ files
    def state(self) -> dict[str, Any]:
        """The teacher file's content: plain tensors, lists and dicts only."""
        return {
            "format": FILE_FORMAT, "version": FILE_VERSION,
            "obs_dim": self.obs_dim, "act_dim": self.act_dim, "task": self.task,
            "arch": {"actor": self.actor.arch(), "critic": self.critic.arch() if self.critic is not None else None},
            "actor": {k: v.detach().cpu() for k, v in self.actor.state_dict().items()},
            "critic": ({k: v.detach().cpu() for k, v in self.critic.state_dict().items()}
                       if self.critic is not None else None),
            "normalizer": {"mean": torch.from_numpy(self.normalizer.mean.copy()),
                           "std": torch.from_numpy(self.normalizer.std.copy())},
            "metadata": {"obd_version": obd.__version__, **self.metadata},
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the teacher file atomically."""
        torch_save_atomic(self.state(), path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> "Teacher":
        """Load a teacher file, or the shipped teacher of a dataset name (``hopper-medium-v5``, see
        :func:`obd.assets.resolve_asset`); a path that exists wins."""
        from obd.assets import resolve_asset

        path = resolve_asset("teacher", path)
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several unrelated types for a foreign or corrupt file
            raise ObdError(f"{path}: not a readable teacher file ({exc.__class__.__name__})") from None
        return cls.from_state(blob, str(path), device)

    @classmethod
    def from_state(cls, blob: Any, where: str, device: str | torch.device | None = None) -> "Teacher":
        if not isinstance(blob, dict) or blob.get("format") != FILE_FORMAT:
            raise ObdError(f"{where}: not an obd teacher file (expected key 'format' = '{FILE_FORMAT}')")
        for key in ("obs_dim", "act_dim", "arch", "actor", "critic", "normalizer", "metadata"):
            if key not in blob:
                raise ObdError(f"{where}: missing key '{key}'")
        o, a = int(blob["obs_dim"]), int(blob["act_dim"])
        actor = build_actor(blob["arch"].get("actor") or {}, o, a, where)
        _load_weights(actor, blob["actor"], f"{where}: actor")
        critic = None
        if blob["critic"] is not None:
            critic = build_critic(blob["arch"].get("critic") or {}, o, a, where)
            _load_weights(critic, blob["critic"], f"{where}: critic")
        norm = Normalizer.from_dict({k: np.asarray(v) for k, v in blob["normalizer"].items()}, f"{where}: normalizer")
        norm.check_dim(o, f"{where}: normalizer")
        return cls(actor, critic, norm, blob.get("task"), blob["metadata"], device)

    def __repr__(self) -> str:
        kind = self.actor.kind
        return (f"Teacher(task={self.task!r}, algo={self.metadata.get('algo')!r}, actor={kind}, "
                f"critic={'yes' if self.critic is not None else 'no'}, device={self.device})")


def _load_weights(module: torch.nn.Module, weights: Any, where: str) -> None:
    if not isinstance(weights, dict):
        raise ObdError(f"{where}: expected a dict of tensors")
    expected = module.state_dict()
    for name, ref in expected.items():
        if name not in weights:
            raise ObdError(f"{where}: missing tensor '{name}'")
        if tuple(weights[name].shape) != tuple(ref.shape):
            raise ObdError(f"{where}: tensor '{name}' has shape {tuple(weights[name].shape)}, "
                           f"expected {tuple(ref.shape)}")
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise ObdError(f"{where}: unexpected tensor(s) {extra}")
    module.load_state_dict(weights)
