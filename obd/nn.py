"""Network building blocks shared by every stage: the log-std bounds, CORL's orthogonal init, MLPs, the
fused ensemble linear layer and the twin (ensemble) critic built on it, the actor (deterministic or
tanh-Gaussian) and the tanh-Gaussian sampling and log-density, Adam and Polyak averaging.

Collection (SAC behavior policies), teachers, the distillation students and the evaluation students all
build from here, so an init scheme or a bound is changed in one place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from obd.errors import ObdError

#: bounds every tanh-Gaussian policy clamps its log-std to (CORL's and the published OBD code's)
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
ACTOR_KINDS = ("deterministic", "tanh_gaussian")


def orthogonal(shape: Sequence[int], gain: float, generator: torch.Generator | None = None,
               device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A (semi-)orthogonal matrix of ``shape`` (..., out, in) times ``gain``, batched over leading dims.

    The same draws and QR sign fix as ``torch.nn.init.orthogonal_``: ``randn`` of ``shape``, QR of it (of
    its transpose when wide), columns signed by ``diag(R)``; a (1, out, in) batch draws the numbers of one
    (out, in) matrix.
    """
    w = torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    wide = w.shape[-2] < w.shape[-1]
    q, r = torch.linalg.qr(w.mT if wide else w)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    return (q.mT if wide else q) * gain


def orthogonal_layers_(layers: Sequence[nn.Linear], generator: torch.Generator | None = None,
                       output_gain: float = 1e-2) -> None:
    """CORL's student scheme on a stack of linear layers: gain sqrt(2) for hidden layers, ``output_gain``
    for the last, zero biases."""
    with torch.no_grad():
        for i, layer in enumerate(layers):
            gain = output_gain if i == len(layers) - 1 else math.sqrt(2.0)
            layer.weight.copy_(orthogonal(layer.weight.shape, gain, generator, layer.weight.device))
            layer.bias.zero_()


def default_linear_(layers: Sequence[nn.Linear], generator: torch.Generator | None = None) -> None:
    """PyTorch's ``nn.Linear`` default, U(-1/sqrt(in), 1/sqrt(in)) for weights and biases, drawn from
    ``generator`` so a seed fixes it: per layer one (in + 1, out) draw, the weight's rows then the bias, the
    numbers :func:`obd.distill.inner.init_params` draws for one student."""
    with torch.no_grad():
        for layer in layers:
            d_out, d_in = layer.weight.shape
            bound = 1.0 / math.sqrt(d_in)
            u = torch.rand((d_in + 1, d_out), generator=generator, device=layer.weight.device) * (2 * bound) - bound
            layer.weight.copy_(u[:d_in].T)
            layer.bias.copy_(u[d_in])


class EnsembleLinear(nn.Module):
    """``E`` independent linear layers applied as one batched matmul: (E, B, in) -> (E, B, out).

    ``weight`` (E, in, out) is the transpose of ``nn.Linear``'s; PyTorch's default init per member.
    """

    def __init__(self, ensemble: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, d_out))
        bound = 1.0 / math.sqrt(d_in)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


def orthogonal_init_(module: nn.Module, gain: float = math.sqrt(2.0)) -> nn.Module:
    """Orthogonal weights (``gain``) and zero biases on every linear layer of ``module``, ensemble members
    each on their own (CORL's Cal-QL ``orthogonal_init``)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                m.weight.copy_(orthogonal(m.weight.shape, gain))
                nn.init.zeros_(m.bias)
            elif isinstance(m, EnsembleLinear):
                for member in m.weight:   # (in, out): the transpose of nn.Linear's (out, in)
                    member.copy_(orthogonal(member.shape[::-1], gain).T)
                nn.init.zeros_(m.bias)
    return module


def mlp(d_in: int, hidden: Sequence[int], d_out: int) -> nn.Sequential:
    """``Linear, ReLU`` per hidden width, then a final ``Linear`` (PyTorch's default init, as CORL's)."""
    dims = [d_in, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(dims[-1], d_out))
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """Policy: ``forward(states (B, obs)) -> (mean (B, act), log_std (B, act) or None)``.

    ``deterministic`` (TD3+BC): the action is ``tanh(mean)``. ``tanh_gaussian`` (IQL, Cal-QL): the head
    outputs ``[mean, raw_log_std]``; ``log_std = clamp(multiplier * raw + offset, -20, 2)`` (CORL's
    ``TanhGaussianPolicy``; multiplier 1 and offset 0 unless given or imported) and the action is
    ``tanh(mean + exp(log_std) * eps)``, deterministically ``tanh(mean)``. With ``learn_log_std_affine``
    the multiplier and offset are trained parameters (CORL's Cal-QL); either way they are saved under
    the same names, so a teacher file loads into the buffer form. Layers under ``net`` map one to one
    onto CORL's ``base_network.{0,2,4,6}``.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256),
                 kind: str = "deterministic", log_std_min: float = LOG_STD_MIN, log_std_max: float = LOG_STD_MAX,
                 log_std_offset: float = 0.0, learn_log_std_affine: bool = False):
        super().__init__()
        if kind not in ACTOR_KINDS:
            raise ObdError(f"actor kind '{kind}' unknown; expected one of {list(ACTOR_KINDS)}")
        self.obs_dim, self.act_dim, self.hidden, self.kind = obs_dim, act_dim, [int(h) for h in hidden], kind
        self.log_std_min, self.log_std_max = float(log_std_min), float(log_std_max)
        self.net = mlp(obs_dim, self.hidden, act_dim * (2 if self.stochastic else 1))
        for name, value in (("log_std_multiplier", 1.0), ("log_std_offset", float(log_std_offset))):
            if learn_log_std_affine:
                self.register_parameter(name, nn.Parameter(torch.tensor(value)))
            else:
                self.register_buffer(name, torch.tensor(value))

    @property
    def stochastic(self) -> bool:
        return self.kind == "tanh_gaussian"

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.net(states)
        if not self.stochastic:
            return out, None
        mean, raw = out.chunk(2, dim=-1)
        log_std = (self.log_std_multiplier * raw + self.log_std_offset).clamp(self.log_std_min, self.log_std_max)
        return mean, log_std

    def arch(self) -> dict[str, Any]:
        return {"kind": self.kind, "hidden": list(self.hidden), "log_std_min": self.log_std_min,
                "log_std_max": self.log_std_max}


class EnsembleQ(nn.Module):
    """``E`` Q-networks on ``cat(state, action)`` run as one batched matmul: ``(B, obs), (B, act) -> (E, B)``.

    ``ensemble=2`` is the twin critic of SAC, TD3+BC, IQL and Cal-QL. Index 0 is the first critic Q1.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), ensemble: int = 2):
        super().__init__()
        self.obs_dim, self.act_dim, self.hidden, self.ensemble = obs_dim, act_dim, [int(h) for h in hidden], ensemble
        dims = [obs_dim + act_dim, *self.hidden, 1]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(EnsembleLinear(ensemble, a, b))
            if i < len(dims) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        x = torch.cat([states, actions], dim=-1).unsqueeze(0).expand(self.ensemble, -1, -1)
        return self.net(x).squeeze(-1)

    def q1(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The first critic alone, (B,): half the work of ``forward`` where only Q1 is needed (TD3+BC's
        actor loss, a teacher's ``q``)."""
        x = torch.cat([states, actions], dim=-1)
        for m in self.net:
            x = torch.addmm(m.bias[0], x, m.weight[0]) if isinstance(m, EnsembleLinear) else m(x)
        return x.squeeze(-1)

    def linear_layers(self) -> list[EnsembleLinear]:
        return [m for m in self.net if isinstance(m, EnsembleLinear)]

    def arch(self) -> dict[str, Any]:
        return {"hidden": list(self.hidden), "ensemble": self.ensemble}


class ValueNet(nn.Module):
    """State value ``V(s)``: states (B, obs) -> (B,) (IQL's expectile value function)."""

    def __init__(self, obs_dim: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.net = mlp(obs_dim, hidden, 1)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.net(states).squeeze(-1)


def tanh_gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor,
                           eps: float = 1e-6) -> torch.Tensor:
    """``log pi(a|s)`` of a tanh-Gaussian at given actions: ``log N(atanh(a); mean, std) - sum log(1 - a^2)``.

    Actions on the bounds (common in D4RL) are pulled in by ``eps`` so ``atanh`` stays finite.
    Shapes: (B, act) each -> (B,).
    """
    a = actions.clamp(-1.0 + eps, 1.0 - eps)
    pre = torch.atanh(a)
    logp = -0.5 * ((pre - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    return (logp - torch.log1p(-a * a + eps)).sum(-1)


def tanh_jacobian_log_det(pre: torch.Tensor) -> torch.Tensor:
    """``log |d tanh(u) / du| = 2 (log 2 - u - softplus(-2u))`` elementwise (torch's ``TanhTransform``),
    finite where ``tanh(u)`` rounds to +-1."""
    return 2.0 * (math.log(2.0) - pre - F.softplus(-2.0 * pre))


def tanh_gaussian_sample(mean: torch.Tensor, log_std: torch.Tensor, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``samples`` reparameterized draws ``a = tanh(mean + std * eps)`` and their ``log pi(a|s)``.

    The log-density uses the pre-tanh value, ``log N(u; mean, std) - sum log|tanh'(u)|``
    (:func:`tanh_jacobian_log_det`). Shapes: mean, log_std (B, act) -> actions (samples, B, act),
    log-probs (samples, B).
    """
    noise = torch.randn((samples, *mean.shape), dtype=mean.dtype, device=mean.device)
    pre = mean + log_std.exp() * noise
    logp = -0.5 * noise ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    logp = logp - tanh_jacobian_log_det(pre)
    return torch.tanh(pre), logp.sum(-1)


def adam(params: Any, lr: float | None = None) -> torch.optim.Adam:
    """Adam with PyTorch's fused kernel: one pass over all tensors instead of a per-tensor loop of small
    ops, which dominates the optimizer's cost for 2 x 256 networks on CPU. ``params``: tensors or
    param-group dicts."""
    return torch.optim.Adam(params, **({} if lr is None else {"lr": lr}), fused=True)


def soft_update_(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- (1 - tau) target + tau source`` as one fused ``_foreach_lerp_``."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)
