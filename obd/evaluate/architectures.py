"""Student architectures for evaluation, including the paper's cross-architecture set.

A :class:`StudentArch` names a student's shape: ``mlp`` (``MLPStudent``: ``depth`` hidden layers of width
``hidden``, ReLU, tanh-Gaussian or deterministic head, the distillation inner loop's student) or
``residual`` (an input layer, ``depth`` residual blocks ``x + W2 relu(W1 x)`` each followed by a ReLU, and
the same mean/log-std head). The paper's names still work: ``mlpN`` is an MLP with N hidden layers (its
"N-layer" students, 2/3/5/6), ``residual`` a residual MLP with two blocks; ``parse_arch`` turns a name
plus optional width/depth into a :class:`StudentArch`.

Every student maps normalized states (B, obs_dim) to ``(mean, log_std)``, each (B, act_dim) (``log_std``
None for a deterministic MLP), so ``obd.distill.students.bc_loss`` and the ``tanh(mean)`` action rule serve
all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import torch
from torch import nn

from obd.distill.students import LOG_STD_MAX, LOG_STD_MIN, STUDENT_KINDS, MLPStudent, orthogonal_init_
from obd.errors import ObdError

WIDTH = 256
MLP_DEPTHS = {"mlp2": 2, "mlp3": 3, "mlp5": 5, "mlp6": 6}
ARCHITECTURES = (*MLP_DEPTHS, "residual")
FAMILIES = ("mlp", "residual")
RESIDUAL_BLOCKS = 2


@dataclass(frozen=True)
class StudentArch:
    """A student's shape: ``family`` (``mlp`` or ``residual``), ``hidden`` width, ``depth`` (hidden layers
    of an MLP, residual blocks of a residual MLP), head ``kind`` (``tanh_gaussian`` or, MLP only,
    ``deterministic``) and whether the init is CORL's orthogonal one."""

    family: str = "mlp"
    hidden: int = WIDTH
    depth: int = 3
    kind: str = "tanh_gaussian"
    orthogonal_init: bool = True

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ObdError(f"student family '{self.family}' unknown; expected one of {list(FAMILIES)}")
        if self.kind not in STUDENT_KINDS:
            raise ObdError(f"student kind '{self.kind}' unknown; expected one of {list(STUDENT_KINDS)}")
        if self.family == "residual" and self.kind != "tanh_gaussian":
            raise ObdError("residual students are tanh-Gaussian only")
        for key in ("hidden", "depth"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ObdError(f"student {key} must be an integer >= 1, got {value!r}")

    @property
    def name(self) -> str:
        """``mlp3x256``, ``residual2x256``; ``-det`` for a deterministic head, ``-default-init`` without
        the orthogonal init."""
        suffix = ("-det" if self.kind == "deterministic" else "") + ("" if self.orthogonal_init else "-default-init")
        return f"{self.family}{self.depth}x{self.hidden}{suffix}"

    def build(self, obs_dim: int, act_dim: int) -> nn.Module:
        """A fresh student of this shape."""
        if self.family == "residual":
            return ResidualStudent(obs_dim, act_dim, hidden=self.hidden, blocks=self.depth)
        return MLPStudent(obs_dim, act_dim, hidden=self.hidden, depth=self.depth,
                          stochastic=self.kind == "tanh_gaussian", orthogonal_init=self.orthogonal_init)


def parse_arch(arch: str | None = None, hidden: int | None = None, layers: int | None = None,
               base: StudentArch = StudentArch()) -> StudentArch:
    """``base`` with the family and depth an ``arch`` name implies (one of :data:`ARCHITECTURES`, or
    ``mlp``), then ``hidden`` and ``layers`` (depth) when given; head kind and init stay the base's."""
    out = base
    if arch is not None:
        if arch in MLP_DEPTHS:
            out = replace(base, family="mlp", depth=MLP_DEPTHS[arch])
        elif arch == "residual":
            out = replace(base, family="residual", depth=RESIDUAL_BLOCKS, kind="tanh_gaussian")
        elif arch != "mlp":
            raise ObdError(f"arch '{arch}' unknown; expected one of {[*ARCHITECTURES, 'mlp']}")
        else:
            out = replace(base, family="mlp")
    if hidden is not None:
        out = replace(out, hidden=hidden)
    if layers is not None:
        out = replace(out, depth=layers)
    return out


def arch_from_name(name: str) -> StudentArch:
    """Inverse of :attr:`StudentArch.name` (``mlp3x128``, ``residual2x256-det``...); paper names accepted."""
    if name in ARCHITECTURES:
        return parse_arch(name)
    m = re.fullmatch(r"(mlp|residual)(\d+)x(\d+)(-det)?(-default-init)?", name)
    if m is None:
        raise ObdError(f"arch '{name}' unknown; expected one of {list(ARCHITECTURES)} or e.g. 'mlp3x128'")
    return StudentArch(m.group(1), int(m.group(3)), int(m.group(2)),
                       "deterministic" if m.group(4) else "tanh_gaussian", m.group(5) is None)


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


def make_eval_student(arch: str | StudentArch, obs_dim: int, act_dim: int) -> nn.Module:
    """A fresh student of ``arch``: a :class:`StudentArch`, or a name (:data:`ARCHITECTURES`, ``mlp3x128``)."""
    return (arch if isinstance(arch, StudentArch) else arch_from_name(arch)).build(obs_dim, act_dim)
