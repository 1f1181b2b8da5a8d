"""Batched policy rollouts with D4RL-normalized scores and gait statistics, shared by teachers and evaluators.

K policies x E episodes run as K*E environments stepped in lockstep, so one batched forward pass serves
every live episode; this keeps evaluation close to the simulator's raw step rate. Episode ``e`` of every
policy starts from ``reset(seed=seed + e)``: students are compared on the same initial states, and every
policy gets its full episode quota.

Beside the return, each episode records its length (env steps taken) and its forward progress: the
displacement of the body's forward coordinate (MuJoCo ``qpos[TaskSpec.forward_qpos_index]``, the torso's
x) from reset to the episode's last step. A normalized score alone hides gait: on hopper, standing still
for the full 1,000 steps earns the alive bonus, about 31 normalized, with a forward progress near 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from obd.envs import get_task, make_env, normalized_score

PolicyFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def forward_position(env: Any, index: int) -> float:
    """The body's forward coordinate ``qpos[index]`` of a MuJoCo env; NaN for an env without MuJoCo state."""
    data = getattr(getattr(env, "unwrapped", env), "data", None)
    qpos = getattr(data, "qpos", None)
    return float(qpos[index]) if qpos is not None and len(qpos) > index else float("nan")


@dataclass
class RolloutResult:
    """Per-episode returns, lengths (env steps) and forward progress, each (K, E): K policies, E episodes."""

    task: str
    returns: np.ndarray
    lengths: np.ndarray
    progress: np.ndarray

    @property
    def scores(self) -> np.ndarray:
        return normalized_score(self.task, self.returns)

    def summary(self) -> dict[str, Any]:
        """Per-policy means (score, episode length, forward progress) and their mean and std over policies."""
        per_policy = self.scores.mean(axis=1)
        return {
            "normalized_score_mean": float(per_policy.mean()),
            "normalized_score_std": float(per_policy.std()),
            "return_mean": float(self.returns.mean()),
            "return_std": float(self.returns.mean(axis=1).std()),
            "episode_length_mean": float(self.lengths.mean()),
            "forward_progress_mean": float(self.progress.mean()),
            "per_policy_normalized_score": per_policy.tolist(),
            "per_policy_episode_length": self.lengths.mean(axis=1).tolist(),
            "per_policy_forward_progress": self.progress.mean(axis=1).tolist(),
            "num_policies": int(self.returns.shape[0]),
            "episodes_per_policy": int(self.returns.shape[1]),
        }

    def episodes(self) -> dict[str, Any]:
        """The per-episode arrays as nested lists (K, E): ``returns``, ``lengths``, ``forward_progress``."""
        return {"returns": self.returns.tolist(), "lengths": self.lengths.tolist(),
                "forward_progress": self.progress.tolist()}


@torch.no_grad()
def rollout(task: str, policy: PolicyFn, num_policies: int = 1, episodes: int = 10,
            normalizer: Any = None, seed: int = 0, device: str | torch.device = "cpu",
            max_steps: int | None = None, observer: Callable[[np.ndarray], None] | None = None) -> RolloutResult:
    """Roll out ``num_policies`` policies for ``episodes`` episodes each.

    ``policy(obs, idx)`` gets ``obs`` (M, obs_dim) float32 on ``device`` (normalized by ``normalizer`` when
    given) and ``idx`` (M,) int64, the policy index of each row, and returns actions (M, act_dim).
    ``max_steps`` caps episode length (the task's limit by default). ``observer(raw_obs)`` (M, obs_dim), when
    given, sees the raw observations of the live episodes before each batched action.
    """
    spec = get_task(task)
    limit = max_steps or spec.max_episode_steps
    n = num_policies * episodes
    envs = [make_env(spec) for _ in range(n)]
    pol_idx = np.repeat(np.arange(num_policies), episodes)
    ep_idx = np.tile(np.arange(episodes), num_policies)
    obs = np.stack([env.reset(seed=seed + int(e))[0] for env, e in zip(envs, ep_idx)]).astype(np.float32)
    start_x = np.array([forward_position(env, spec.forward_qpos_index) for env in envs])
    progress = np.zeros(n)
    returns = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    idx_t = torch.as_tensor(pol_idx, device=device)
    low, high = envs[0].action_space.low, envs[0].action_space.high
    while alive.any():
        live = np.flatnonzero(alive)
        if observer is not None:
            observer(obs[live])  # fancy indexing copies, so the observer may keep it
        x = obs[live] if normalizer is None else np.asarray(normalizer.normalize(obs[live]), dtype=np.float32)
        act = policy(torch.as_tensor(x, device=device), idx_t[live]).detach().cpu().numpy()
        act = np.clip(act, low, high)
        for j, i in enumerate(live):
            o, r, term, trunc, _ = envs[i].step(act[j])
            obs[i] = o
            returns[i] += r
            lengths[i] += 1
            if term or trunc or lengths[i] >= limit:
                alive[i] = False
                progress[i] = forward_position(envs[i], spec.forward_qpos_index) - start_x[i]
    for env in envs:
        env.close()
    shape = (num_policies, episodes)
    return RolloutResult(spec.name, returns.reshape(shape), lengths.reshape(shape), progress.reshape(shape))
