"""Student policies: what is trained by behavior cloning on a synthetic set (inner loop and evaluation).

The paper's student is a tanh-Gaussian MLP (3 hidden layers x 256, ReLU, orthogonal init) whose head
outputs a mean and a log-std; its BC loss is the MSE between a *sampled* action
``tanh(mean + exp(log_std) * eps)`` and the synthetic action, and its evaluation action is ``tanh(mean)``.
A deterministic tanh-MLP student (no log-std head) is also offered.

All students map *normalized* states (B, obs_dim) to ``(mean, log_std)`` with ``log_std = None`` for
deterministic students, so one loss and one action rule serve both.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from obd.distill.student_config import HEADS
from obd.errors import ObdError
from obd.nn import LOG_STD_MAX, LOG_STD_MIN, default_linear_, orthogonal_layers_

#: the output layer's orthogonal gain per head (see :data:`obd.distill.student_config.HEADS`)
OUTPUT_GAIN = {"corl": 1e-2, "paper": math.sqrt(2.0)}
LOG_STD_AFFINE_INIT = (1.0, -1.0)


class MLPStudent(nn.Module):
    """MLP ``obs_dim -> hidden x depth -> act_dim`` (or ``2 * act_dim`` with a log-std head).

    ``forward(states)`` returns ``(mean, log_std)``, each (B, act_dim); ``log_std`` is None when
    ``stochastic`` is False. ``depth`` counts hidden layers (the paper's student has depth 3). ``head``
    is one of :data:`HEADS`; a stochastic ``paper`` head holds the learnable ``log_std_affine`` (2,) =
    (multiplier, offset).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, depth: int = 3,
                 stochastic: bool = True, orthogonal_init: bool = True, head: str = "corl"):
        super().__init__()
        if depth < 1 or hidden < 1:
            raise ObdError(f"student: depth and hidden must be >= 1, got depth={depth} hidden={hidden}")
        if head not in HEADS:
            raise ObdError(f"student head '{head}' unknown; expected one of {list(HEADS)}")
        self.obs_dim, self.act_dim, self.hidden, self.depth = obs_dim, act_dim, hidden, depth
        self.stochastic = stochastic
        self.orthogonal_init = orthogonal_init
        self.head = head
        dims = [obs_dim] + [hidden] * depth + [act_dim * (2 if stochastic else 1)]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.log_std_affine = nn.Parameter(torch.tensor(LOG_STD_AFFINE_INIT)) \
            if stochastic and head == "paper" else None
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        if self.orthogonal_init:
            orthogonal_layers_(list(self.layers), generator, OUTPUT_GAIN[self.head])
        else:
            default_linear_(list(self.layers), generator)
        if self.log_std_affine is not None:
            with torch.no_grad():
                self.log_std_affine.copy_(torch.tensor(LOG_STD_AFFINE_INIT))

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = states
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        out = self.layers[-1](x)
        if not self.stochastic:
            return out, None
        mean, log_std = out.chunk(2, dim=-1)
        if self.log_std_affine is not None:
            log_std = log_std * self.log_std_affine[0] + self.log_std_affine[1]
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    @torch.no_grad()
    def act(self, states: torch.Tensor) -> torch.Tensor:
        """Deterministic evaluation action ``tanh(mean)``, (B, act_dim)."""
        return torch.tanh(self(states)[0])


def policy_action(mean: torch.Tensor, log_std: torch.Tensor | None, noise: torch.Tensor | None) -> torch.Tensor:
    """``tanh(mean + exp(log_std) * noise)``; ``tanh(mean)`` when deterministic or ``noise`` is None."""
    if log_std is None or noise is None:
        return torch.tanh(mean)
    return torch.tanh(mean + log_std.exp() * noise)


def bc_loss(mean: torch.Tensor, log_std: torch.Tensor | None, target: torch.Tensor,
            noise: torch.Tensor | None) -> torch.Tensor:
    """Inner-loop BC loss: ``F.mse_loss`` (mean over batch and action dims) as in the published code,
    which its lr of 0.1 was tuned for. Shapes: ``mean``/``log_std``/``noise``/``target`` (B, act_dim) -> scalar.
    """
    return ((policy_action(mean, log_std, noise) - target) ** 2).mean()
