"""Student architectures for evaluation: the paper's names, the residual student, and building a student.

A :class:`~obd.distill.student_config.StudentConfig` describes every student's shape: ``mlp``
(``MLPStudent``: ``depth`` hidden layers of width ``hidden``, ReLU, tanh-Gaussian or deterministic head, the
distillation inner loop's student) or ``residual`` (:class:`ResidualStudent`: an input layer, ``depth``
residual blocks ``x + W2 relu(W1 x)`` each followed by a ReLU, and the same mean/log-std head). The paper's
names still work: ``mlpN`` is an MLP with N hidden layers (its "N-layer" students, 2/3/5/6), ``residual`` a
residual MLP with two blocks; :func:`parse_arch` turns a name plus optional width/depth into a
StudentConfig, :func:`arch_from_name` reads back its ``name``, :func:`make_eval_student` builds it.

Every student maps normalized states (B, obs_dim) to ``(mean, log_std)``, each (B, act_dim) (``log_std``
None for a deterministic MLP), so ``obd.distill.students.bc_loss`` and the ``tanh(mean)`` action rule serve
all of them.
"""

from __future__ import annotations

import re
from dataclasses import replace

import torch
from torch import nn

from obd.distill.student_config import StudentConfig
from obd.distill.students import MLPStudent
from obd.errors import ObdError
from obd.nn import LOG_STD_MAX, LOG_STD_MIN, orthogonal_layers_

WIDTH = 256
MLP_DEPTHS = {"mlp2": 2, "mlp3": 3, "mlp5": 5, "mlp6": 6}
ARCHITECTURES = (*MLP_DEPTHS, "residual")
RESIDUAL_BLOCKS = 2


def parse_arch(arch: str | None = None, hidden: int | None = None, layers: int | None = None,
               base: StudentConfig | None = None) -> StudentConfig:
    """``base`` (default: the paper's 3x256 tanh-Gaussian MLP) with the family and depth an ``arch`` name
    implies (one of :data:`ARCHITECTURES`, or ``mlp``), then ``hidden`` and ``layers`` (depth) when given;
    head kind and init stay the base's."""
    out = StudentConfig() if base is None else base
    if arch is not None:
        if arch in MLP_DEPTHS:
            out = replace(out, family="mlp", depth=MLP_DEPTHS[arch])
        elif arch == "residual":
            out = replace(out, family="residual", depth=RESIDUAL_BLOCKS, kind="tanh_gaussian", head="corl")
        elif arch != "mlp":
            raise ObdError(f"arch '{arch}' unknown; expected one of {[*ARCHITECTURES, 'mlp']}")
        else:
            out = replace(out, family="mlp")
    if hidden is not None:
        out = replace(out, hidden=hidden)
    if layers is not None:
        out = replace(out, depth=layers)
    return out


def arch_from_name(name: str) -> StudentConfig:
    """Inverse of :attr:`StudentConfig.name` (``mlp3x128``, ``residual2x256-det``...); paper names accepted."""
    if name in ARCHITECTURES:
        return parse_arch(name)
    m = re.fullmatch(r"(mlp|residual)(\d+)x(\d+)(-det)?(-default-init)?(-paper-head)?", name)
    if m is None:
        raise ObdError(f"arch '{name}' unknown; expected one of {list(ARCHITECTURES)} or e.g. 'mlp3x128'")
    return StudentConfig(m.group(1), "deterministic" if m.group(4) else "tanh_gaussian", int(m.group(3)),
                         int(m.group(2)), m.group(5) is None, "paper" if m.group(6) else "corl")


class ResidualStudent(nn.Module):
    """Residual MLP tanh-Gaussian student: ``obs -> hidden -> [res block] x blocks -> (mean, log_std)``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = WIDTH, blocks: int = RESIDUAL_BLOCKS):
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
        orthogonal_layers_(layers, generator)
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


def make_eval_student(arch: str | StudentConfig, obs_dim: int, act_dim: int) -> nn.Module:
    """A fresh student of ``arch``: a :class:`StudentConfig`, or a name (:data:`ARCHITECTURES`, ``mlp3x128``)."""
    shape = arch if isinstance(arch, StudentConfig) else arch_from_name(arch)
    if shape.family == "residual":
        return ResidualStudent(obs_dim, act_dim, hidden=shape.hidden, blocks=shape.depth)
    return MLPStudent(obs_dim, act_dim, hidden=shape.hidden, depth=shape.depth, stochastic=shape.stochastic,
                      orthogonal_init=shape.orthogonal_init, head=shape.head)
