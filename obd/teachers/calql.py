"""Cal-QL (Nakamoto et al. 2023, "Cal-QL: Calibrated Offline RL Pre-Training for Efficient Online
Fine-Tuning"), offline phase, CORL style: the teacher the OBD paper distilled.

SAC with CQL's conservative penalty, where the policy's Q values inside the penalty are lower-bounded by
the Monte-Carlo return-to-go ``G(s)`` of the dataset episode the state came from (the calibration):

    critic:  min_Q  sum_i  E[(Q_i(s, a) - y)^2] + alpha_cql * E_s[ logsumexp_a~mu Q~_i(s, a) - Q_i(s, a_data) ]
             y = r + gamma (1 - d) min_i Q'_i(s', a'),  a' ~ pi(.|s')
             Q~_i(s, a) = max(Q_i(s, a), G(s)) for the policy's actions a ~ pi(.|s), a ~ pi(.|s'),
             Q_i(s, a) for uniform actions; with importance sampling each term subtracts its log-density
    actor:   min_pi E[ alpha log pi(a|s) - min_i Q_i(s, a) ],  a ~ pi(.|s)     (SAC)
    temperature: min_alpha  E[ -log alpha (log pi(a|s) + target_entropy) ]

Defaults are CORL's ``algorithms/finetune/cal_ql.py`` offline settings: orthogonal init, 3 x 256 tanh-Gaussian
actor with learned log-std multiplier / offset (init 1 / -1), 2 x 256 twin critics, 10 sampled actions.
CORL's non-default variants (Lagrange-tuned CQL weight, max-target backup) are not offered.

Cheaper than CORL's update with the same estimator: the actor runs once on ``[s; s']`` and all its samples
come from that one mean/std (CORL repeats each state 10x through the network); the critics evaluate the
data, uniform and policy actions for both Q-functions together (batched matmuls, a few actions per call
on CPU so the activations stay in cache); the three losses share one backward and one Adam (one param
group per network, so each keeps its own learning rate).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from obd.nn import Actor, EnsembleQ, adam, orthogonal_init_, soft_update_, tanh_gaussian_log_prob, tanh_gaussian_sample
from obd.teachers.base import TeacherAlgorithm

# actions per critic call on CPU: 4 x batch rows keep each layer's activations small enough for the cache
CPU_ACTIONS_PER_CALL = 4

# atanh(1 - 1e-4) ~ 4.95: dataset actions on the bounds keep a finite log-likelihood in the BC warm-up
ACTION_EPS = 1e-4


@dataclass
class CalQLConfig:
    """Cal-QL hyperparameters; defaults are CORL's ``cal_ql.py`` ``TrainConfig`` (offline phase)."""

    batch_size: int = 256                      # CORL: 256
    discount: float = 0.99                     # CORL: 0.99
    policy_lr: float = 3e-5                    # CORL: 3e-5 (also the temperature's learning rate)
    qf_lr: float = 3e-4                        # CORL: 3e-4
    tau: float = 5e-3                          # CORL: soft_target_update_rate 5e-3
    target_update_period: int = 1              # CORL: 1
    alpha_multiplier: float = 1.0              # CORL: 1.0
    automatic_entropy_tuning: bool = True      # CORL: True, target entropy -act_dim
    backup_entropy: bool = False               # CORL: False (no entropy term in the TD target)
    bc_steps: int = 0                          # CORL: 0 updates of BC (log-likelihood) actor loss first
    cql_alpha: float = 10.0                    # CORL: 10.0 weight of the conservative penalty
    cql_n_actions: int = 10                    # CORL: 10 sampled actions per kind (uniform, pi(s), pi(s'))
    cql_importance_sample: bool = True         # CORL: True
    cql_temp: float = 1.0                      # CORL: 1.0 logsumexp temperature
    cql_clip_diff_min: float | None = None     # CORL: -inf (None: no lower clip of each state's gap)
    cql_clip_diff_max: float | None = None     # CORL: inf (None: no upper clip)
    calibrate: bool = True                     # Cal-QL's lower bound; False is plain CQL
    actor_hidden: tuple[int, ...] = (256, 256, 256)  # CORL: 3 x 256 TanhGaussianPolicy
    critic_hidden: tuple[int, ...] = (256, 256)      # CORL: q_n_hidden_layers 2 x 256
    log_std_offset: float = -1.0               # CORL: log_std_offset -1 (multiplier 1), both learned
    normalize_reward: bool = False             # CORL: False


def calibrated_cql_gap(q_data: torch.Tensor, q_rand: torch.Tensor, q_pi: torch.Tensor, q_pi_next: torch.Tensor,
                       logp_pi: torch.Tensor, logp_pi_next: torch.Tensor, mc_return: torch.Tensor | None,
                       act_dim: int, cfg: CalQLConfig) -> torch.Tensor:
    """CQL's gap ``E_s[T logsumexp(Q~/T) - Q(s, a_data)]`` per critic, with Cal-QL's calibration.

    ``q_data`` (E, B) is Q at the dataset actions; ``q_rand``, ``q_pi``, ``q_pi_next`` (E, n, B) are Q(s, .)
    at uniform actions, at actions from pi(.|s) and from pi(.|s'); ``logp_pi``/``logp_pi_next`` (n, B) are
    those actions' log-densities. With ``mc_return`` (B,) the policy terms become ``max(Q, G(s))``. With
    importance sampling the logsumexp runs over the 3n terms ``Q - log density`` (the uniform density on
    [-1, 1]^act is ``0.5^act``), else over the 3n + 1 raw values including ``q_data``. Each state's gap
    is clipped to ``[cql_clip_diff_min, cql_clip_diff_max]`` (where set) before the mean. Returns (E,).
    """
    if mc_return is not None:
        q_pi, q_pi_next = torch.maximum(q_pi, mc_return), torch.maximum(q_pi_next, mc_return)
    if cfg.cql_importance_sample:
        uniform_logp = act_dim * math.log(0.5)
        terms = torch.cat([q_rand - uniform_logp, q_pi_next - logp_pi_next, q_pi - logp_pi], dim=1)
    else:
        terms = torch.cat([q_rand, q_data.unsqueeze(1), q_pi_next, q_pi], dim=1)
    gap = torch.logsumexp(terms / cfg.cql_temp, dim=1) * cfg.cql_temp - q_data
    if cfg.cql_clip_diff_min is not None or cfg.cql_clip_diff_max is not None:
        gap = gap.clamp(cfg.cql_clip_diff_min, cfg.cql_clip_diff_max)
    return gap.mean(-1)


class CalQL(TeacherAlgorithm):
    """Networks, optimizer and the update step; ``update`` consumes one batch of normalized tensors."""

    name = "calql"
    STATE = ("actor", "critic", "critic_target", "log_alpha", "opt")
    uses_mc_returns = True

    def __init__(self, cfg: CalQLConfig, obs_dim: int, act_dim: int, device: torch.device, total_steps: int):
        self.cfg, self.device, self.act_dim = cfg, device, act_dim
        self.actor = orthogonal_init_(Actor(obs_dim, act_dim, cfg.actor_hidden, "tanh_gaussian",
                                                   log_std_offset=cfg.log_std_offset, learn_log_std_affine=True))
        self.critic = orthogonal_init_(EnsembleQ(obs_dim, act_dim, cfg.critic_hidden, ensemble=2))
        self.actor.to(device)
        self.critic.to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.zeros((), device=device, requires_grad=cfg.automatic_entropy_tuning)
        self.target_entropy = -float(act_dim)
        groups = [{"params": list(self.actor.parameters()), "lr": cfg.policy_lr},
                  {"params": list(self.critic.parameters()), "lr": cfg.qf_lr}]
        if cfg.automatic_entropy_tuning:
            groups.append({"params": [self.log_alpha], "lr": cfg.policy_lr})
        self.opt = adam(groups)
        self.total_it = 0

    def update(self, obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor, next_obs: torch.Tensor,
               not_done: torch.Tensor, mc_return: torch.Tensor) -> dict[str, torch.Tensor]:
        """One Cal-QL step on a batch: obs/next_obs (B, obs) normalized, act (B, act), rew/not_done/mc_return
        (B,) (rewards and returns-to-go on the same scale). Every loss uses the networks as they were
        before this step, as in CORL. Returns detached scalars."""
        cfg, n, b = self.cfg, self.cfg.cql_n_actions, obs.shape[0]
        self.total_it += 1

        # the actor once on [s; s']: draw 0 is the policy / TD-target action, draws 1..n are CQL's samples
        mean, log_std = self.actor(torch.cat([obs, next_obs]))
        actions, logp = tanh_gaussian_sample(mean, log_std, 1 + n)
        pi, log_pi = actions[0, :b], logp[0, :b]

        alpha_loss = -(self.log_alpha * (log_pi + self.target_entropy).detach()).mean()
        alpha = self.log_alpha.detach().exp() * cfg.alpha_multiplier
        self.critic.requires_grad_(False)
        if self.total_it <= cfg.bc_steps:
            policy_gain = tanh_gaussian_log_prob(mean[:b], log_std[:b], act, ACTION_EPS)
        else:
            policy_gain = self.critic(obs, pi).min(0).values
        self.critic.requires_grad_(True)
        policy_loss = (alpha * log_pi - policy_gain).mean()

        with torch.no_grad():
            target_q = self.critic_target(next_obs, actions[0, b:]).min(0).values
            if cfg.backup_entropy:
                target_q = target_q - alpha * logp[0, b:]
            y = rew + not_done * cfg.discount * target_q

        # Q(s, .) of both critics at the data action, n uniform, n from pi(.|s) and n from pi(.|s')
        samples = actions[1:].detach()
        uniform = torch.rand((n, b, self.act_dim), device=obs.device) * 2.0 - 1.0
        q = self._critic_many(obs, torch.cat([act.unsqueeze(0), uniform, samples[:, :b], samples[:, b:]]))
        q_data = q[:, 0]
        td_loss = ((q_data - y) ** 2).mean(1).sum()
        sample_logp = logp[1:].detach()
        gap = calibrated_cql_gap(q_data, q[:, 1:1 + n], q[:, 1 + n:1 + 2 * n], q[:, 1 + 2 * n:],
                                 sample_logp[:, :b], sample_logp[:, b:], mc_return if cfg.calibrate else None,
                                 self.act_dim, cfg)
        critic_loss = td_loss + cfg.cql_alpha * gap.sum()

        self.opt.zero_grad(set_to_none=True)
        # the three losses touch disjoint parameters, so one backward gives each its own gradient
        (policy_loss + critic_loss + (alpha_loss if cfg.automatic_entropy_tuning else 0.0)).backward()
        self.opt.step()
        if self.total_it % cfg.target_update_period == 0:
            soft_update_(self.critic_target, self.critic, cfg.tau)
        return {"critic_loss": critic_loss.detach(), "td_loss": td_loss.detach(), "cql_gap": gap.mean().detach(),
                "actor_loss": policy_loss.detach(), "alpha": alpha, "log_pi": log_pi.mean().detach(),
                "q_data": q_data.mean().detach(),
                "bound_rate": (q[:, 1 + n:] < mc_return).float().mean()}

    def _critic_many(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Both critics at K actions per state: obs (B, obs), actions (K, B, act) -> (2, K, B). On CPU in
        calls of ``CPU_ACTIONS_PER_CALL`` actions, whose activations stay in cache; elsewhere in one call."""
        k, b = actions.shape[:2]
        per_call = CPU_ACTIONS_PER_CALL if obs.device.type == "cpu" else k
        return torch.cat([self.critic(obs.repeat(c.shape[0], 1), c.reshape(-1, self.act_dim)).reshape(2, -1, b)
                          for c in actions.split(per_call)], dim=1)
