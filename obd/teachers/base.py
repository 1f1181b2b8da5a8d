"""The teacher: a near-expert policy (and its first critic) from offline RL, as PBC / Av-PBC consume it.

A :class:`Teacher` takes RAW environment ``observations`` (numpy or torch, (B, obs_dim)), normalizes them
with the statistics its networks were trained on, and answers without gradients on ``teacher.device``:

* ``act(s)`` -> (B, act): the deterministic action ``tanh(mean)``;
* ``sample(s, generator)`` -> (B, act): ``a* ~ pi*(.|s)`` (``act`` for a deterministic actor);
* ``mean_std(s)`` -> ((B, act), (B, act)): pre-tanh Gaussian parameters (tanh-Gaussian actors only);
* ``q(s, a)`` -> (B,): the first critic ``Q1(s, a)`` (Av-PBC's weight ``beta * Q1(s, a*)``).

A teacher file is one ``torch.save`` of plain tensors, lists and dicts (``torch.load(weights_only=True)``
reads it): architecture, actor and critic weights, normalizer and metadata. No module is ever pickled.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np
import torch

import obd
from obd.data.dataset import Normalizer
from obd.device import resolve_device
from obd.errors import ObdError
from obd.io import torch_load_weights, torch_save_atomic
from obd.nn import LOG_STD_MAX, LOG_STD_MIN, Actor, EnsembleQ

FILE_FORMAT = "obd-teacher"
FILE_VERSION = 1


def build_actor(arch: dict[str, Any], obs_dim: int, act_dim: int, where: str) -> Actor:
    try:
        return Actor(obs_dim, act_dim, arch["hidden"], arch["kind"],
                            arch.get("log_std_min", LOG_STD_MIN), arch.get("log_std_max", LOG_STD_MAX))
    except (KeyError, TypeError, ValueError) as exc:
        raise ObdError(f"{where}: bad actor architecture {arch!r} ({exc})") from None


def build_critic(arch: dict[str, Any], obs_dim: int, act_dim: int, where: str) -> EnsembleQ:
    try:
        return EnsembleQ(obs_dim, act_dim, arch["hidden"], int(arch["ensemble"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ObdError(f"{where}: bad critic architecture {arch!r} ({exc})") from None


class Teacher:
    """Actor (+ optional ensemble critic) bound to a normalizer; see the module docstring for the API."""

    def __init__(self, actor: Actor, critic: EnsembleQ | None, normalizer: Normalizer,
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

    def to(self, device: str | torch.device) -> Teacher:
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

    def _normalized(self, observations: Any) -> torch.Tensor:
        """Raw observations (B, obs) -> the normalized states the networks see."""
        return (self._tensor(observations, self.obs_dim, "observations") - self._mean) / self._std

    # ------------------------------------------------------------------ queries
    @torch.no_grad()
    def act(self, observations: Any) -> torch.Tensor:
        """Deterministic action ``tanh(mean(s))``: raw observations (B, obs) -> (B, act)."""
        return torch.tanh(self.actor(self._normalized(observations))[0])

    @torch.no_grad()
    def sample(self, observations: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        """``a ~ pi(.|s) = tanh(mean + std * eps)``, eps ~ N(0, I) drawn from ``generator`` (on ``device``)."""
        mean, log_std = self.actor(self._normalized(observations))
        if log_std is None:
            return torch.tanh(mean)
        noise = torch.randn(mean.shape, generator=generator, device=self.device)
        return torch.tanh(mean + log_std.exp() * noise)

    @torch.no_grad()
    def mean_std(self, observations: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-tanh Gaussian ``(mean, std)``, each (B, act); ObdError for a deterministic actor."""
        if not self.stochastic:
            raise ObdError(f"teacher ({self.metadata.get('algo', 'unknown algo')}): the actor is deterministic, "
                           "it has no mean/std; use act()")
        mean, log_std = self.actor(self._normalized(observations))
        return mean, log_std.exp()

    @torch.no_grad()
    def q(self, observations: Any, actions: Any) -> torch.Tensor:
        """First critic ``Q1(s, a)``: raw observations (B, obs), actions (B, act) -> (B,)."""
        if self.critic is None:
            raise ObdError("teacher: this teacher file holds no critic, so q() is unavailable")
        s = self._normalized(observations)
        a = self._tensor(actions, self.act_dim, "actions")
        if a.shape[0] != s.shape[0]:
            raise ObdError(f"teacher: {s.shape[0]} observations but {a.shape[0]} actions")
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
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> Teacher:
        """Load a teacher file, or the shipped teacher of a dataset name (``hopper-medium-v5``, see
        :func:`obd.assets.resolve_asset`); a path that exists wins."""
        from obd.assets import resolve_asset

        path = resolve_asset("teacher", path)
        blob = torch_load_weights(path, "teacher file")
        return cls.from_state(blob, str(path), device)

    @classmethod
    def from_state(cls, blob: Any, where: str, device: str | torch.device | None = None) -> Teacher:
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


class TeacherAlgorithm:
    """What the shared training loop (:func:`obd.teachers.training.train_teacher`) needs besides an
    algorithm's own ``update``: its ``name``, whether its batches carry Monte-Carlo returns
    (``uses_mc_returns``), the actor and critic a teacher file is cut from, and a resumable state.

    The state (``state_dict`` / ``load_state_dict``) is ``total_it`` and every attribute named in
    ``STATE``: modules, optimizers and schedulers by their own ``state_dict`` (None when the attribute is
    None), tensors (e.g. a temperature) as copies."""

    name = ""
    uses_mc_returns = False
    STATE: tuple[str, ...] = ()
    actor: Actor
    critic: EnsembleQ
    device: torch.device
    total_it: int

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self.STATE:
            obj = getattr(self, key)
            out[key] = None if obj is None else obj.detach().clone() if torch.is_tensor(obj) else obj.state_dict()
        return {**out, "total_it": self.total_it}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        for key in self.STATE:
            obj = getattr(self, key)
            if obj is None or st.get(key, obj) is None:  # e.g. an lr schedule saved by a run without one
                continue
            if torch.is_tensor(obj):
                with torch.no_grad():
                    obj.copy_(st[key])
            else:
                obj.load_state_dict(st[key])
        self.total_it = int(st["total_it"])

    def teacher(self, normalizer: Normalizer, task: str | None, metadata: dict[str, Any]) -> Teacher:
        """A :class:`Teacher` holding copies of the current actor and critics (Q1 first)."""
        return Teacher(copy.deepcopy(self.actor), copy.deepcopy(self.critic), normalizer, task,
                       {"algo": self.name, **metadata}, self.device)


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
