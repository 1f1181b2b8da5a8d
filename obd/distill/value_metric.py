"""Value-aware action error: each action dimension's squared error weighted by what the teacher's critic loses
when the action moves along it.

The performance difference lemma (Kakade & Langford, 2002) writes a student's return gap to a deterministic
teacher as the teacher's Q lost by the student's actions on the student's own states,

    J(pi*) - J(pi) = 1 / (1 - gamma) E_{s ~ d^pi} [ Q*(s, a*(s)) - Q*(s, pi(s)) ],

so an imitation error costs what the critic drops, not its squared length. Near a* the drop is
-g^T d - 1/2 d^T H d (g, H the critic's gradient and Hessian in the action); on the diagonal of -H, estimated by
central differences of step sigma along each action dimension j (clipped to the action box [-1, 1]),

    m_j(s) = max(0, Q(s, a*) - (Q(s, a* + d_j^+ e_j) + Q(s, a* - d_j^- e_j)) / 2) / ((d_j^+^2 + d_j^-^2) / 2),

the outer error becomes e(s) = mean_j M_j(s) (pi_j(s) - a_j(s))^2 with M = floor + (1 - floor) m / mean(m),
the mean taken over the batch's states and dimensions (``trace``: each m_j(s) replaced by mean_j m_j(s)), so
M averages 1 and no dimension is ignored where the critic happens to be flat. Near a fall a small error in the
wrong joint costs the critic a lot and the state counts for more; Av-PBC's weight beta * Q does the opposite
there (Q is lowest near a fall).

The critic is asked through the teacher's ``q(states, actions)`` only (any :class:`obd.teachers.TeacherLike`
with a critic), for the outer batch's states in one batched call of B (2 act + 1) rows per outer step; nothing
is drawn from a generator, so a resumed run is unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

from obd.distill.objectives import query_teacher


def q_curvature(teacher: Any, raw_states: torch.Tensor, actions: torch.Tensor, step: float) -> torch.Tensor:
    """m (B, act) >= 0 above: the critic's drop per squared step along each action dimension at ``actions``
    (B, act) in [-1, 1] for raw ``raw_states`` (B, obs), from one call of ``teacher.q`` on B (2 act + 1) rows."""
    n, act_dim = actions.shape
    eye = torch.eye(act_dim, device=actions.device, dtype=actions.dtype)
    up = (actions[:, None, :] + step * eye).clamp(-1.0, 1.0)  # (B, act, act): row j moved along dimension j
    down = (actions[:, None, :] - step * eye).clamp(-1.0, 1.0)
    probes = torch.cat([actions[:, None, :], up, down], 1)  # (B, 2 act + 1, act)
    states = raw_states[:, None, :].expand(n, 2 * act_dim + 1, raw_states.shape[1])
    q = query_teacher(teacher.q, states.reshape(-1, raw_states.shape[1]), len(probes) * (2 * act_dim + 1),
                      actions.device, "teacher Q at probed actions", actions=probes.reshape(-1, act_dim),
                      progress=False, what="probed states").reshape(n, 2 * act_dim + 1)
    moved_up = (up - actions[:, None, :]).diagonal(dim1=1, dim2=2)  # (B, act)
    moved_down = (actions[:, None, :] - down).diagonal(dim1=1, dim2=2)
    drop = q[:, :1] - 0.5 * (q[:, 1:act_dim + 1] + q[:, act_dim + 1:])
    size = 0.5 * (moved_up ** 2 + moved_down ** 2)
    return torch.where(size > 0, drop.clamp_min(0.0) / size.clamp_min(1e-12), torch.zeros_like(drop))


def value_metric(curvature: torch.Tensor, floor: float, kind: str = "diagonal") -> torch.Tensor:
    """M (B, act) = floor + (1 - floor) m / mean(m) for the curvature m (B, act) of :func:`q_curvature`
    (``kind`` ``trace``: m_j(s) replaced by its mean over j, so only states are reweighted); all ones where m
    is zero everywhere (a critic linear in the action)."""
    if kind == "trace":
        curvature = curvature.mean(-1, keepdim=True).expand_as(curvature)
    mean = curvature.mean()
    if not bool(mean > 0):
        return torch.ones_like(curvature)
    return floor + (1.0 - floor) * curvature / mean
