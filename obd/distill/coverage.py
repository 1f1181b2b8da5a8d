"""State coverage: train the synthetic set for states the dataset lacks, labelled by the teacher.

PBC, Av-PBC and SDW need the teacher only at the states where the outer objective H is evaluated, and a
teacher can be asked anywhere. Single-policy data cover a thin manifold of states; a student trained on
256 pairs makes a small error, leaves that manifold within a few steps and finds nothing in the set about
where it is. Coverage draws some of each outer batch's states *off* the data and asks the teacher what to
do there (:class:`OuterCoverage`), and can start the synthetic set itself from perturbed states
(:func:`perturbed_initial_pairs`).

Perturbations act in normalized state space (unit variance per dimension) on a real state s_i of the
outer batch:

- ``gaussian``, ``isotropic``: s~ = s_i + sigma * eps, eps ~ N(0, I);
- ``gaussian``, ``covariance``: s~ = s_i + sigma * L eps with L L^T the covariance of the normalized
  dataset states, so the noise follows the data's correlations (its total variance is the same as the
  isotropic noise's, since the covariance of unit-variance data has trace obs_dim);
- ``mixup``: s~ = s_i + lambda (s_j - s_i), s_j another real state, lambda ~ U(0, sigma) (sigma <= 1),
  states between two dataset states rather than around one;
- ``synthetic``: s~ = x_k + sigma * eps around a synthetic state x_k (detached), so H also scores the
  student near the states it was trained on.

A share ``clean`` of the batch keeps its real states. At the perturbed states the teacher gives fresh
targets (a sample of pi*(.|s~) for a stochastic teacher, its action otherwise), and for the Q-weighted
objectives (Av-PBC, SDW) the weight beta * Q uses, by ``q``: ``perturbed`` Q1(s~, teacher.act(s~));
``clean`` Q1 of the source state (the critic is least reliable off the data); ``none`` the dataset's
mean Q, so perturbed states get Av-PBC's average weight. SDW's density weight of the source state is kept.
The teacher is queried once per perturbed state per outer step, in one batched call per quantity, and all
draws come from the engine's generator, so a resumed run is bit-identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from obd.data.dataset import Normalizer
from obd.distill.objectives import query_teacher, teacher_mean_std, teacher_sample

#: offset of the numpy seed the initial set's perturbation draws from (the run's seed + this), so it never
#: reuses the stream that picks the initial pairs
INIT_SEED_OFFSET = 31


def noise_factor(shape: str, normalized_states: np.ndarray, max_states: int = 200_000,
                 seed: int = 0) -> np.ndarray | None:
    """The (obs, obs) matrix L with L L^T = cov(normalized states) for ``covariance`` noise (None for
    ``isotropic``); estimated on at most ``max_states`` states, a small ridge keeps it positive definite."""
    if shape == "isotropic":
        return None
    states = np.asarray(normalized_states, dtype=np.float64)
    if len(states) > max_states:
        states = states[np.random.default_rng(seed).choice(len(states), max_states, replace=False)]
    cov = np.cov(states, rowvar=False).reshape(states.shape[1], states.shape[1])
    cov += 1e-6 * np.eye(len(cov))
    return np.linalg.cholesky(cov).astype(np.float32)


def _ask(fn: Any, raw: Any, device: torch.device, desc: str, width: int | None,
         actions: torch.Tensor | None = None) -> torch.Tensor:
    """``fn(raw)`` (``fn(raw, actions)`` with ``actions`` (n, act)) for the perturbed states ``raw`` (n, obs) in
    one call, checked like every teacher query."""
    return query_teacher(fn, raw, len(raw), device, desc, actions=actions, progress=False, width=width,
                         what="perturbed states")


class OuterCoverage:
    """Replaces part of each outer batch's real states with perturbed ones and their teacher targets.

    ``config`` is the run's :class:`obd.distill.config.CoverageConfig`; ``real_states`` (N, obs) the
    normalized dataset states on the engine device; ``objective`` the run's
    :class:`obd.distill.objectives.Objective` (its beta, Q and density weights); ``teacher`` a TeacherLike
    taking raw states.
    """

    def __init__(self, config: Any, teacher: Any, normalizer: Normalizer, real_states: torch.Tensor,
                 objective: Any, q_clip: bool = False, factor: np.ndarray | None = None):
        self.config = config
        self.teacher = teacher
        self.objective = objective
        self.q_clip = q_clip
        self.device = real_states.device
        self.real_states = real_states
        self.mean = torch.as_tensor(normalizer.mean, device=self.device)
        self.std = torch.as_tensor(normalizer.std, device=self.device)
        #: :func:`noise_factor` of ``covariance`` noise, on the device (None: isotropic)
        self.factor = None if factor is None else torch.as_tensor(factor, device=self.device)
        q = objective.q_values
        self.mean_q = None if q is None else q.mean()

    def perturbed_count(self, batch: int) -> int:
        return batch - int(round(self.config.clean * batch))

    def _noise(self, rows: int, generator: torch.Generator) -> torch.Tensor:
        eps = torch.randn((rows, self.real_states.shape[1]), generator=generator, device=self.device)
        if self.factor is not None:
            eps = eps @ self.factor.T
        return self.config.scale * eps

    def perturb_states(self, states: torch.Tensor, synthetic_states: torch.Tensor,
                       generator: torch.Generator) -> torch.Tensor:
        """Perturbed versions (n, obs) of ``states`` (n, obs) by ``kind``; ``synthetic_states`` (N_syn, obs)
        are the centres of ``synthetic`` (detached here)."""
        kind, n = self.config.kind, len(states)
        if kind == "gaussian":
            return states + self._noise(n, generator)
        if kind == "mixup":
            partner = self.real_states[torch.randint(len(self.real_states), (n,), generator=generator,
                                                     device=self.device)]
            lam = self.config.scale * torch.rand((n, 1), generator=generator, device=self.device)
            return states + lam * (partner - states)
        centres = synthetic_states.detach()[torch.randint(len(synthetic_states), (n,), generator=generator,
                                                          device=self.device)]
        return centres + self._noise(n, generator)

    def apply(self, idx: torch.Tensor, states: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None,
              synthetic_states: torch.Tensor, generator: torch.Generator,
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The outer batch with its first ``perturbed_count(B)`` rows perturbed: states (B, obs), targets
        (B, act) and weights (B,) or None, from the clean batch's ``idx`` (B,), ``states``, ``targets`` and
        ``weights``."""
        n = self.perturbed_count(len(idx))
        if n == 0:
            return states, targets, weights
        new_states = self.perturb_states(states[:n], synthetic_states, generator)
        raw = new_states * self.std + self.mean
        act_dim = targets.shape[1]
        action = None  # the teacher's deterministic action at the perturbed states, asked for at most once
        if self.objective.teacher_mean is not None:
            mean, std = _ask(lambda s: teacher_mean_std(self.teacher, s), raw, self.device, "teacher mean/std",
                             2 * act_dim).chunk(2, -1)
            new_targets = teacher_sample(mean, std, generator)
        else:
            new_targets = action = _ask(self.teacher.act, raw, self.device, "teacher actions", act_dim)
        states = torch.cat([new_states, states[n:]])
        targets = torch.cat([new_targets, targets[n:]])
        if weights is None:
            return states, targets, None
        q = None
        if self.objective.q_values is not None and self.config.q == "perturbed":
            if action is None:
                action = _ask(self.teacher.act, raw, self.device, "teacher actions", act_dim)
            q = _ask(self.teacher.q, raw, self.device, "teacher Q", None, actions=action)
            q = q.clamp_min(0.0) if self.q_clip else q
        elif self.objective.q_values is not None and self.config.q == "none":
            q = self.mean_q.expand(n)
        return states, targets, torch.cat([self.objective.weights(idx[:n], q), weights[n:]])


def perturbed_initial_pairs(states: np.ndarray, config: Any, teacher: Any, normalizer: Normalizer,
                            factor: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The initial synthetic set moved off the data: ``states`` (N_syn, obs, normalized) plus Gaussian
    noise of ``config.init_scale`` (shaped by ``factor``, :func:`noise_factor`), drawn from a numpy
    generator seeded by the run's seed, and the teacher's deterministic actions there (N_syn, act) as the
    initial synthetic actions (the dataset's actions belong to the unperturbed states)."""
    rng = np.random.default_rng([seed, INIT_SEED_OFFSET])
    eps = rng.standard_normal(states.shape).astype(np.float32)
    if factor is not None:
        eps = eps @ factor.T
    new_states = (states + config.init_scale * eps).astype(np.float32)
    raw = np.asarray(normalizer.denormalize(new_states), dtype=np.float32)
    actions = query_teacher(teacher.act, raw, len(raw), torch.device("cpu"), "teacher actions", progress=False,
                            width=teacher.act_dim, what="initial synthetic states")
    return new_states, actions.numpy()
