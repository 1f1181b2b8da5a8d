"""Student architectures for evaluation, including the paper's cross-architecture set.

``mlpN`` is an MLP with N hidden layers of width 256 (the paper's "N-layer" students, 2/3/5/6);
``mlp3`` is exactly the distillation inner loop's student (``MLPStudent`` 3x256, tanh-Gaussian,
orthogonal init), ``mlpN_paper`` the same with the published code's head (``student.head=paper``). ``residual`` is a residual MLP: an input layer, two residual blocks
``x + W2 relu(W1 x)`` (each followed by a ReLU) and the same mean/log-std head.

Every student maps normalized states (B, obs_dim) to ``(mean, log_std)``, each (B, act_dim), so
``obd.distill.students.bc_loss`` and the ``tanh(mean)`` action rule serve all of them.
"""

from __future__ import annotations

import torch
from torch import nn

from obd.distill.students import LOG_STD_MAX, LOG_STD_MIN, MLPStudent, orthogonal_init_
from obd.errors import ObdError

WIDTH = 256
MLP_DEPTHS = {"mlp2": 2, "mlp3": 3, "mlp5": 5, "mlp6": 6}
ARCHITECTURES = (*MLP_DEPTHS, *(f"{name}_paper" for name in MLP_DEPTHS), "residual")


class ResidualStudent(nn.Module):
    """Residual MLP tanh-Gaussian student: ``obs -> 256 -> [res block] x blocks -> (mean, log_std)``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = WIDTH, blocks: int = 2):
        super().__init__()
        self.obs_dim, self.act_dim, self.hidden = obs_dim, act_dim, hidden
        self.stochastic = True
        self.inp = nn.Linear(obs_dim, hidden)
        self.blocks = nn.ModuleList(
            nn.ModuleList([nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)]) for _ in range(blocks)
        )
        self.head = nn.Linear(hidden, 2 * act_dim)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        layers = [self.inp, *(layer for block in self.blocks for layer in block), self.head]
        orthogonal_init_(layers, generator)
        with torch.no_grad():
            for _, second in self.blocks:
                # a small gain on each block's output keeps the block near the identity at init
                second.weight.mul_(0.1)

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.relu(self.inp(states))
        for first, second in self.blocks:
            x = torch.relu(x + second(torch.relu(first(x))))
        mean, log_std = self.head(x).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    @torch.no_grad()
    def act(self, states: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self(states)[0])


def make_eval_student(arch: str, obs_dim: int, act_dim: int) -> nn.Module:
    """A fresh student of architecture ``arch`` (one of :data:`ARCHITECTURES`)."""
    name, _, head = arch.partition("_")
    if name in MLP_DEPTHS and head in ("", "paper"):
        return MLPStudent(obs_dim, act_dim, hidden=WIDTH, depth=MLP_DEPTHS[name], stochastic=True,
                          orthogonal_init=True, head=head or "corl")
    if arch == "residual":
        return ResidualStudent(obs_dim, act_dim)
    raise ObdError(f"arch '{arch}' unknown; expected one of {list(ARCHITECTURES)}")
