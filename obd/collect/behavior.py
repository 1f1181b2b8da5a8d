"""The SAC behavior policy that D4RL-style datasets are collected with, and its policy files.

A behavior-policy file is one ``torch.save`` of the actor's ``state_dict`` and plain metadata (task, level,
dims, scores, the SAC config); the shipped ones are ``obd/tasks/<task>/behavior_{medium,expert}.pt``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from obd.errors import ObdError
from obd.io import torch_load_weights, torch_save_atomic
from obd.nn import Actor, tanh_jacobian_log_det


class BehaviorActor(Actor):
    """The SAC behavior policy: a tanh-Gaussian :class:`obd.nn.Actor` with two hidden layers of ``hidden`` on
    RAW observations (B, obs_dim), actions in [-1, 1]^act_dim."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256):
        super().__init__(obs_dim, act_dim, (hidden, hidden), "tanh_gaussian")

    def sample(self, obs: torch.Tensor, deterministic: bool = False, with_logprob: bool = True,
               generator: torch.Generator | None = None):
        """A tanh-Gaussian draw (or ``tanh(mean)``) and its log-density, (B, act_dim) and (B,) or None; the
        noise comes from ``generator`` when given, else from torch's global generator."""
        mean, log_std = self(obs)
        if deterministic:
            return torch.tanh(mean), None
        std = log_std.exp()
        eps = torch.randn_like(mean) if generator is None else torch.randn(
            mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        pre = mean + std * eps
        act = torch.tanh(pre)
        if not with_logprob:
            return act, None
        logp = (-0.5 * ((pre - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - tanh_jacobian_log_det(pre).sum(-1)
        return act, logp

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Numpy in, numpy out; ``obs`` is (obs_dim,) or (B, obs_dim)."""
        t = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        a, _ = self.sample(t, deterministic=deterministic, with_logprob=False)
        return a.numpy()


def save_behavior_policy(path: Path, actor: BehaviorActor, meta: dict) -> None:
    torch_save_atomic({"state_dict": actor.state_dict(), **meta}, path)


def load_behavior_policy(path: str | Path) -> tuple[BehaviorActor, dict]:
    """Load a shipped behavior policy; returns the actor (on CPU, eval mode) and its metadata."""
    path = Path(path)
    if not path.is_file():
        raise ObdError(f"{path}: behavior policy file not found (train it with `obd collect train-behavior`)")
    blob = torch_load_weights(path, "behavior policy file")
    for key in ("state_dict", "obs_dim", "act_dim", "hidden"):
        if key not in blob:
            raise ObdError(f"{path}: missing key '{key}' in behavior policy file")
    actor = BehaviorActor(blob["obs_dim"], blob["act_dim"], blob["hidden"])
    actor.load_state_dict(blob["state_dict"])
    actor.eval()
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    return actor, meta
