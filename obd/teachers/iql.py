"""IQL (Kostrikov, Nair & Levine 2022, "Offline RL with Implicit Q-Learning"), CORL style.

Three regressions, none of which queries the Q-function at out-of-dataset actions:

    value:   min_V  E[ L2_tau(min_i Q'_i(s, a) - V(s)) ],  L2_tau(u) = |tau - 1(u < 0)| u^2   (Eq. 5, expectile tau)
    critic:  min_Q  sum_i E[ (r + gamma (1 - d) V(s') - Q_i(s, a))^2 ]                        (Eq. 6)
    actor:   max_pi E[ exp(beta (Q'(s, a) - V(s))) log pi(a|s) ],  weights clipped at 100       (Eq. 7, AWR)

CORL's defaults: beta 3, tau 0.7, rewards of locomotion tasks scaled by ``1000 / (max_return - min_return)``,
cosine-annealed actor learning rate. The actor here is tanh-Gaussian (CORL's is a Gaussian with a
tanh'd mean); the squashed form makes the teacher's ``mean_std`` the pre-tanh parameters PBC expects.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from obd.nn import Actor, EnsembleQ, ValueNet, adam, soft_update_, tanh_gaussian_log_prob
from obd.teachers.base import TeacherAlgorithm

# atanh(1 - 1e-4) ~ 4.95: dataset actions on the bounds stay within reach of the actor's mean
ACTION_EPS = 1e-4


@dataclass
class IQLConfig:
    """IQL hyperparameters; defaults are CORL's ``iql.py`` locomotion configs."""

    batch_size: int = 256               # CORL: 256
    actor_lr: float = 3e-4              # CORL: 3e-4, cosine-annealed over the run
    qf_lr: float = 3e-4                 # CORL: 3e-4
    vf_lr: float = 3e-4                 # CORL: 3e-4
    discount: float = 0.99              # CORL: 0.99
    tau: float = 0.005                  # CORL: 0.005 target-critic Polyak rate
    beta: float = 3.0                   # CORL: 3.0 inverse temperature of the advantage weights
    iql_tau: float = 0.7                # CORL: 0.7 expectile of the value regression
    exp_adv_max: float = 100.0          # CORL: EXP_ADV_MAX = 100
    hidden: tuple[int, ...] = (256, 256)  # CORL: 2 x 256 actor, critics and value net
    normalize_reward: bool = True       # CORL locomotion configs: True (1000 / (max_ret - min_ret))
    cosine_actor_lr: bool = True        # CORL: CosineAnnealingLR(actor_optimizer, max_timesteps)


class IQL(TeacherAlgorithm):
    """Networks, optimizers and the update step; ``update`` consumes one batch of normalized tensors."""

    name = "iql"
    STATE = ("actor", "critic", "critic_target", "value", "actor_opt", "critic_opt", "value_opt", "actor_sched")

    def __init__(self, cfg: IQLConfig, obs_dim: int, act_dim: int, device: torch.device, total_steps: int):
        self.cfg, self.device = cfg, device
        self.actor = Actor(obs_dim, act_dim, cfg.hidden, "tanh_gaussian").to(device)
        self.critic = EnsembleQ(obs_dim, act_dim, cfg.hidden, ensemble=2).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = ValueNet(obs_dim, cfg.hidden).to(device)
        self.actor_opt = adam(self.actor.parameters(), cfg.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), cfg.qf_lr)
        self.value_opt = adam(self.value.parameters(), cfg.vf_lr)
        self.actor_sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.actor_opt, max(1, total_steps)) \
            if cfg.cosine_actor_lr else None
        self.total_it = 0

    def update(self, obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor, next_obs: torch.Tensor,
               not_done: torch.Tensor) -> dict[str, torch.Tensor]:
        """One IQL step (value, critic, actor) on a batch: obs/next_obs (B, obs) normalized, act (B, act),
        rew/not_done (B,). Returns detached scalar losses."""
        cfg = self.cfg
        self.total_it += 1
        with torch.no_grad():
            target_q = self.critic_target(obs, act).min(0).values
            next_v = self.value(next_obs)

        adv = target_q - self.value(obs)
        value_loss = (torch.abs(cfg.iql_tau - (adv < 0).float()) * adv ** 2).mean()
        self.value_opt.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_opt.step()

        y = rew + not_done * cfg.discount * next_v
        q = self.critic(obs, act)
        critic_loss = ((q - y) ** 2).mean(1).mean()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        soft_update_(self.critic_target, self.critic, cfg.tau)

        weights = torch.exp(cfg.beta * adv.detach()).clamp(max=cfg.exp_adv_max)
        mean, log_std = self.actor(obs)
        nll = -tanh_gaussian_log_prob(mean, log_std, act, ACTION_EPS)
        actor_loss = (weights * nll).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        if self.actor_sched is not None:
            self.actor_sched.step()
        return {"value_loss": value_loss.detach(), "critic_loss": critic_loss.detach(),
                "actor_loss": actor_loss.detach(), "bc_nll": nll.mean().detach()}
