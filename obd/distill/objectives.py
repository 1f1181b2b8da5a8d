"""Outer objectives H: how far the trained student is from the behavior we want, on real states.

Every objective is a weighted per-state error on a batch of B real states s ~ D_off (normalized):

    H = mean_s  w(s) * e(s),    e(s) = mean_j (tanh(mu_theta(s))_j - a_target(s)_j)^2

By default the student's action is its deterministic evaluation action tanh(mean), the action the distilled
policy is judged by. The reference code instead measures the error on a reparameterized *sample*
tanh(mean + std eps) of the trained student (``outer.action=sample`` in ``DistillConfig``). The mean over
action dims follows ``F.mse_loss``.

- DBC: a_target = the dataset's own action, w = 1.
- PBC: a_target = a* ~ pi*(.|s), drawn fresh every outer step from the teacher's precomputed pre-tanh mean
  and std (tanh(mean + std * eps)); a deterministic teacher's action otherwise. w = 1.
- Av-PBC: PBC with w = beta * Q1(s, a_det) (beta = 0.02 in the paper, no normalization and no clipping, as
  the reference code: a state with Q < 0 gets a negative weight; ``clip_q`` uses max(Q, 0) instead). The Q
  value is precomputed once for the teacher's *deterministic* action a_det = teacher.act(s), not re-queried
  for each drawn a*: that keeps the teacher out of the outer loop; for a tanh-Gaussian teacher Q(s, a*) and
  Q(s, a_det) differ by the spread of its action distribution.
- SDW (``sdw``): Av-PBC with w multiplied by precomputed state-density weights p(s)^(-alpha)
  (``obd.distill.sdw.sdw_weights``, mean 1), or, in SDW's ``sample`` mode, Av-PBC with the states drawn in
  proportion to those weights by the engine and w left as it is (``sdw_sampled``).

Per-state weights given by the caller (``density_weights``) multiply w of any objective the same way.

Everything an objective needs from the teacher is computed once, for every real state, in chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from obd.distill.registry import OBJECTIVES
from obd.errors import ObdError


def per_state_error(student_actions: torch.Tensor, targets: torch.Tensor,
                    metric: torch.Tensor | None = None) -> torch.Tensor:
    """e(s): squared error averaged over action dims, each dim weighted by ``metric`` (B, act) when given
    (:mod:`obd.distill.value_metric`). (S, B, act) vs (B, act) -> (S, B)."""
    sq = (student_actions - targets) ** 2
    return (sq if metric is None else sq * metric).mean(-1)


def outer_loss(student_actions: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None,
               metric: torch.Tensor | None = None, disagreement: float = 0.0) -> torch.Tensor:
    """H = mean over students k and states s of w(s) [e_k(s) + lambda v_k(s)] for student actions (S, B, act);
    ``weights`` (B,) or None for w = 1; ``metric`` (B, act) or None: the per-dimension weights of e(s).

    ``disagreement`` lambda: v_k(s) = e(a_k(s), mean_j a_j(s)), student k's squared distance to the students'
    mean action (dims weighted by ``metric`` too). Since mean_k e_k = e(a_bar) + mean_k v_k, lambda > 0 weighs
    the between-student variance 1 + lambda times the error of the mean action; with one student v = 0."""
    err = per_state_error(student_actions, targets, metric)
    if disagreement and student_actions.shape[0] > 1:
        spread = per_state_error(student_actions, student_actions.mean(0), metric)
        err = err + disagreement * spread
    return (err if weights is None else err * weights).mean()


def query_teacher(fn: Callable[..., Any], observations: np.ndarray, chunk: int, device: torch.device,
                  desc: str, actions: np.ndarray | None = None, progress: bool = True,
                  width: int | None = None, what: str = "dataset states") -> torch.Tensor:
    """``fn(states)`` (or ``fn(states, actions)`` when ``actions`` (N, act) is given) on raw states
    ``observations`` (N, obs), ``chunk`` rows at a time, without gradients; the outputs concatenated on
    ``device``: (N, ``width``), or (N,) when ``width`` is None (a (n, 1) chunk is accepted as (n,)). A bar
    shows when ``progress`` and there is more than one chunk. An output of another shape, or one holding
    NaN or inf, is an :class:`ObdError` naming ``desc`` (and ``what`` the states are)."""
    outs = []
    for start in tqdm(range(0, len(observations), chunk), desc=desc, leave=False,
                      disable=not progress or len(observations) <= chunk):
        rows = slice(start, start + chunk)
        # a teacher that is an nn.Module may return outputs that carry its autograd graph; the distillation
        # only reads them, so no graph is built or kept
        with torch.no_grad():
            out = fn(observations[rows]) if actions is None else fn(observations[rows], actions[rows])
        outs.append(_checked_output(out, len(observations[rows]), width, desc).to(device, torch.float32))
    result = torch.cat(outs)
    finite = torch.isfinite(result).reshape(len(result), -1).all(1)
    if not bool(finite.all()):
        raise ObdError(f"{desc}: NaN or inf for {int((~finite).sum())} of {len(result)} {what}")
    return result


def _checked_output(out: Any, n: int, width: int | None, desc: str) -> torch.Tensor:
    """One chunk's teacher output as a detached tensor of shape (n, width) or (n,), else an ObdError."""
    try:
        out = torch.as_tensor(out).detach()
    except (TypeError, ValueError, RuntimeError):
        raise ObdError(f"{desc}: expected a tensor or array, got {type(out).__name__}") from None
    if width is None and tuple(out.shape) == (n, 1):
        out = out.reshape(n)
    expected = (n,) if width is None else (n, width)
    if tuple(out.shape) != expected:
        raise ObdError(f"{desc}: expected shape {expected} for {n} states, got {tuple(out.shape)}")
    return out


def teacher_mean_std(teacher: Any, states: Any) -> torch.Tensor:
    """``teacher.mean_std(states)`` as one (B, 2 act) tensor, each half checked to be (B, act)."""
    mean, std = teacher.mean_std(states)
    parts = [_checked_output(x, len(states), teacher.act_dim, ("teacher mean", "teacher std")[i])
             for i, x in enumerate((mean, std))]
    return torch.cat(parts, -1)


def teacher_sample(mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A reparameterized sample tanh(mean + std * eps), eps ~ N(0, I) from ``generator``, of a stochastic
    teacher's pi*(.|s) given its pre-tanh ``mean`` and ``std`` (B, act)."""
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return torch.tanh(mean + std * eps)


@dataclass(frozen=True)
class Objective:
    """An outer objective with its precomputed per-state tensors (all on the engine device, length N_real),
    built complete (:func:`build_objective`, or the engine once SDW's weights are known) and never changed.

    ``targets(idx, generator)`` -> (a_target (B, act), w (B,) or None) for real-state indices ``idx`` (B,).
    """

    name: str
    dataset_actions: torch.Tensor | None = None
    teacher_mean: torch.Tensor | None = None
    teacher_std: torch.Tensor | None = None
    teacher_action: torch.Tensor | None = None
    q_values: torch.Tensor | None = None
    beta: float = 0.02
    density_weights: torch.Tensor | None = None
    sdw_sampled: bool = False

    def targets(self, idx: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.name == "dbc":
            target = self.dataset_actions[idx]
        elif self.teacher_mean is not None:
            target = teacher_sample(self.teacher_mean[idx], self.teacher_std[idx], generator)
        else:
            target = self.teacher_action[idx]
        return target, self.weights(idx)

    def weights(self, idx: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor | None:
        """w (B,) for real-state indices ``idx`` (B,): beta * Q of the Q-weighted objectives (``q`` (B,)
        replaces the precomputed Q1 of those states, e.g. Q at perturbed states), times the density weights;
        None for w = 1."""
        weights = None
        if OBJECTIVES[self.name].q_weighted:
            weights = self.beta * (self.q_values[idx] if q is None else q)
        if self.density_weights is not None:
            w = self.density_weights[idx]
            weights = w if weights is None else weights * w
        return weights

    @property
    def label(self) -> str:
        """The objective's name (``dbc``, ``pbc``, ``avpbc``, ``sdw``); ``sdw-sample`` for SDW drawing its
        outer states by weight; ``<name>+weights`` for another objective given per-state weights."""
        if self.name == "sdw":
            return "sdw-sample" if self.sdw_sampled else "sdw"
        return self.name + ("+weights" if self.density_weights is not None else "")


def precompute_targets(name: str, observations: np.ndarray, dataset_actions: np.ndarray, teacher: Any,
                       device: torch.device, chunk: int = 65536, progress: bool = True,
                       clip_q: bool = False) -> dict[str, torch.Tensor]:
    """What objective ``name`` needs for every real state (raw ``observations`` (N, obs)), as the
    :class:`Objective` fields they fill: DBC ``dataset_actions`` (N, act); PBC the teacher's
    ``teacher_mean``/``teacher_std`` (N, act) each (``teacher_action`` (N, act) for a deterministic teacher);
    Av-PBC and SDW also ``q_values`` (N,) = Q1(s, teacher.act(s)), clipped at 0 when ``clip_q``.
    ``progress``: bars for the teacher queries."""
    if name == "dbc":
        return {"dataset_actions": torch.as_tensor(dataset_actions, dtype=torch.float32, device=device)}
    out: dict[str, torch.Tensor] = {}
    if teacher.stochastic:
        mean_std = query_teacher(lambda s: teacher_mean_std(teacher, s), observations, chunk, device,
                                 "teacher mean/std", progress=progress, width=2 * teacher.act_dim)
        out["teacher_mean"], out["teacher_std"] = mean_std.chunk(2, -1)
    else:
        out["teacher_action"] = query_teacher(teacher.act, observations, chunk, device, "teacher actions",
                                              progress=progress, width=teacher.act_dim)
    if OBJECTIVES[name].q_weighted:
        q = query_teacher(lambda s: teacher.q(s, teacher.act(s)), observations, chunk, device, "teacher Q",
                          progress=progress)
        out["q_values"] = q.clamp_min(0.0) if clip_q else q
    return out


def build_objective(name: str, observations: np.ndarray, dataset_actions: np.ndarray, teacher: Any,
                    device: torch.device, beta: float = 0.02, density_weights: np.ndarray | None = None,
                    chunk: int = 65536, progress: bool = True, clip_q: bool = False) -> Objective:
    """The complete :class:`Objective` ``name`` for raw ``observations`` (N, obs): the teacher's (or the
    dataset's) targets from :func:`precompute_targets`, and ``density_weights`` (N,) multiplying w (SDW's
    state-density weights in ``weight`` mode, or a caller's own)."""
    weights = None if density_weights is None else torch.as_tensor(density_weights, dtype=torch.float32,
                                                                     device=device)
    return Objective(name, beta=beta, density_weights=weights,
                     **precompute_targets(name, observations, dataset_actions, teacher, device, chunk, progress,
                                          clip_q))
