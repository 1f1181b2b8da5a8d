"""TD3+BC (Fujimoto & Gu 2021, "A Minimalist Approach to Offline Reinforcement Learning"), CORL style.

TD3 with a behavior-cloning term in the actor loss:

    critic:  min_Q  sum_i (Q_i(s, a) - y)^2,
             y = r + gamma (1 - d) min_i Q'_i(s', clip(pi'(s') + clip(eps, -c, c), -1, 1))
    actor:   max_pi  lambda Q_1(s, pi(s)) - (pi(s) - a)^2,   lambda = alpha / mean|Q_1(s, pi(s))|   (Eq. 3 of the paper)

with the actor updated every ``policy_freq`` critic updates, and states normalized by the dataset's mean and
std (+1e-3). The actor is deterministic (``tanh`` output), so the resulting :class:`Teacher` has no
``mean_std``. Twin critics are fused into one :class:`EnsembleQ` and target updates are one ``_foreach_lerp_``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from obd.nn import Actor, EnsembleQ, adam, soft_update_
from obd.teachers.base import TeacherAlgorithm


@dataclass
class TD3BCConfig:
    """TD3+BC hyperparameters; defaults are CORL's ``td3_bc.py`` (and the paper's)."""

    batch_size: int = 256               # CORL: 256
    actor_lr: float = 3e-4              # CORL: 3e-4
    critic_lr: float = 3e-4             # CORL: 3e-4
    discount: float = 0.99              # CORL: 0.99
    tau: float = 0.005                  # CORL: 0.005 target-network Polyak rate
    policy_noise: float = 0.2           # CORL: 0.2 target policy smoothing noise std
    noise_clip: float = 0.5             # CORL: 0.5
    policy_freq: int = 2                # CORL: 2 critic updates per actor update
    alpha: float = 2.5                  # CORL: 2.5 weight of Q against the BC term
    hidden: tuple[int, ...] = (256, 256)  # CORL: 2 x 256 actor and critics
    normalize_reward: bool = False      # CORL: False for TD3+BC


class TD3BC(TeacherAlgorithm):
    """Networks, optimizers and the update step; ``update`` consumes one batch of normalized tensors."""

    name = "td3bc"
    STATE = ("actor", "actor_target", "critic", "critic_target", "actor_opt", "critic_opt")

    def __init__(self, cfg: TD3BCConfig, obs_dim: int, act_dim: int, device: torch.device, total_steps: int):
        self.cfg, self.device = cfg, device
        self.actor = Actor(obs_dim, act_dim, cfg.hidden, "deterministic").to(device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = EnsembleQ(obs_dim, act_dim, cfg.hidden, ensemble=2).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = adam(self.actor.parameters(), cfg.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), cfg.critic_lr)
        self.total_it = 0

    def update(self, obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor, next_obs: torch.Tensor,
               not_done: torch.Tensor) -> dict[str, torch.Tensor]:
        """One TD3+BC step on a batch: obs/next_obs (B, obs) normalized, act (B, act), rew/not_done (B,).

        Returns detached scalar losses (``actor_loss`` and ``bc_loss`` only on actor steps).
        """
        cfg = self.cfg
        self.total_it += 1
        with torch.no_grad():
            noise = (torch.randn_like(act) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            next_act = (torch.tanh(self.actor_target(next_obs)[0]) + noise).clamp(-1.0, 1.0)
            target_q = rew + not_done * cfg.discount * self.critic_target(next_obs, next_act).min(0).values
        q = self.critic(obs, act)
        critic_loss = ((q - target_q) ** 2).mean(1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        out = {"critic_loss": critic_loss.detach()}

        if self.total_it % cfg.policy_freq == 0:
            pi = torch.tanh(self.actor(obs)[0])
            self.critic.requires_grad_(False)
            q1 = self.critic.q1(obs, pi)
            self.critic.requires_grad_(True)
            lmbda = cfg.alpha / q1.abs().mean().detach()
            bc = F.mse_loss(pi, act)
            actor_loss = -lmbda * q1.mean() + bc
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            soft_update_(self.critic_target, self.critic, cfg.tau)
            soft_update_(self.actor_target, self.actor, cfg.tau)
            out.update(actor_loss=actor_loss.detach(), bc_loss=bc.detach())
        return out
