"""The inner loop as a pure function: T SGD steps of behavior cloning on the synthetic set, from a fresh
student, with the student's BC gradient written out by hand.

A student is a flat list ``[W1, b1, ..., WL, bL]`` with a leading student axis S (several students are
trained side by side by ``torch.bmm``; S = 1 is the paper's setting): ``W`` (S, in, out), ``b`` (S, 1, out),
so a layer is ``z = x @ W + b`` and hidden layers apply ReLU. A tanh-Gaussian student's last layer outputs
``[mean, log_std]`` (2 * act_dim), exactly as :class:`obd.distill.students.MLPStudent`, whose
``layers[l].weight`` is ``W[l][0].T``.

Why by hand: differentiating T inner steps, each itself a backward pass, through autograd's
double-backward of ``nn.Module`` calls issues tens of aten ops per layer per step. Here each inner step is
one forward plus the explicit backward (dz = dh * (z > 0), dW = x^T dz, db = sum(dz), dx = dz W^T, through
the tanh-Gaussian head and the MSE), a few dozen ops, and autograd differentiates that unrolled
computation once for the meta-gradient d H / d (synthetic states, synthetic actions).

Policy noise: eps ~ N(0, I) is drawn once per inner step (``noise`` (T, S, N, act_dim)) and stays in the
graph, so the meta-gradient is the exact gradient of the realized trajectory. The published code redraws
the noise when it recomputes the inner loop for its backward pass, so its meta-gradient belongs to a
different trajectory than the one its forward pass took.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from obd.distill.students import LOG_STD_MAX, LOG_STD_MIN, MLPStudent

Params = list[torch.Tensor]


def layer_dims(obs_dim: int, act_dim: int, hidden: int, depth: int, stochastic: bool) -> list[int]:
    """``[obs_dim, hidden x depth, act_dim (x2 with a log-std head)]``."""
    return [obs_dim] + [hidden] * depth + [act_dim * (2 if stochastic else 1)]


def init_params(dims: list[int], students: int = 1, generator: torch.Generator | None = None,
                orthogonal: bool = True, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32) -> Params:
    """Fresh student parameters ``[W1, b1, ...]``, ``W`` (S, in, out), ``b`` (S, 1, out).

    ``orthogonal``: CORL's scheme as in :func:`obd.distill.students.orthogonal_init_` (gain sqrt(2) for
    hidden layers, 1e-2 for the output layer, zero biases), drawing the same numbers from ``generator``
    as ``MLPStudent.reset_parameters(generator)`` when S = 1. Otherwise PyTorch's ``nn.Linear`` default,
    U(-1/sqrt(in), 1/sqrt(in)) for weights and biases.
    """
    params: Params = []
    n = len(dims) - 1
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        if orthogonal:
            gain = 1e-2 if i == n - 1 else math.sqrt(2.0)
            w = torch.randn((students, d_out, d_in), generator=generator, device=device, dtype=dtype)
            wide = d_out < d_in
            q, r = torch.linalg.qr(w.transpose(1, 2) if wide else w)
            q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
            weight = q if wide else q.transpose(1, 2)  # (S, in, out) = nn.Linear weight transposed
            params += [(weight * gain).contiguous(), torch.zeros(students, 1, d_out, device=device, dtype=dtype)]
        else:
            bound = 1.0 / math.sqrt(d_in)
            u = torch.rand((students, d_in + 1, d_out), generator=generator, device=device, dtype=dtype)
            u = u * (2 * bound) - bound
            params += [u[:, :d_in].contiguous(), u[:, d_in:].contiguous()]
    return params


def params_from_module(student: MLPStudent) -> Params:
    """Flat parameter list (S = 1) of an :class:`MLPStudent`, detached copies."""
    out: Params = []
    for layer in student.layers:
        out += [layer.weight.detach().T.unsqueeze(0).contiguous(), layer.bias.detach().view(1, 1, -1).clone()]
    return out


def forward(params: Params, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """MLP output (S, N, out) for states ``x`` (S, N, in) (or (1, N, in), broadcast over students), and the
    inputs of every layer (the activations the hand backward needs)."""
    n_layers = len(params) // 2
    if x.shape[0] != params[0].shape[0]:
        x = x.expand(params[0].shape[0], -1, -1)
    inputs = [x]
    for i in range(n_layers - 1):
        x = torch.relu(torch.baddbmm(params[2 * i + 1], x, params[2 * i]))
        inputs.append(x)
    return torch.baddbmm(params[-1], x, params[-2]), inputs


def student_action(params: Params, x: torch.Tensor, act_dim: int) -> torch.Tensor:
    """Deterministic student action ``tanh(mean)`` (S, N, act_dim) for normalized states ``x`` (N, obs)."""
    out, _ = forward(params, x.unsqueeze(0))
    return torch.tanh(out[..., :act_dim])


def bc_grad(params: Params, x: torch.Tensor, target: torch.Tensor, noise: torch.Tensor | None,
            act_dim: int, scale: float = 1.0) -> tuple[Params, torch.Tensor]:
    """``scale * (N * act_dim / 2) * grad bc_loss`` for every student, by hand, and the sampled actions.

    ``bc_loss = mean((tanh(mean + exp(log_std) * eps) - target)^2)`` with ``log_std`` clamped to
    [-20, 2] (``tanh(mean)`` for a deterministic student, ``noise`` None). The MSE's 2 / (N act_dim) and
    the caller's ``-lr`` go into ``scale``, applied once to the output gradient, so an SGD step is a plain
    add. Shapes: ``x`` (S, N, obs), ``target`` (N, act), ``noise`` (S, N, act) -> grads like ``params``,
    actions (S, N, act).
    """
    out, inputs = forward(params, x)
    if noise is None:
        action = torch.tanh(out)
        d_out = torch.ops.aten.tanh_backward((action - target) * scale, action)
    else:
        mean, log_std_raw = out.split(act_dim, -1)
        # hardtanh is clamp with a one-op backward (they differ only exactly on the bounds).
        scaled_noise = F.hardtanh(log_std_raw, LOG_STD_MIN, LOG_STD_MAX).exp() * noise
        action = torch.tanh(mean + scaled_noise)
        d_mean = torch.ops.aten.tanh_backward((action - target) * scale, action)
        # d/d log_std of exp(log_std) * eps is exp(log_std) * eps; zero where the clamp is active.
        d_log_std = torch.ops.aten.hardtanh_backward(d_mean * scaled_noise, log_std_raw, LOG_STD_MIN, LOG_STD_MAX)
        d_out = torch.cat([d_mean, d_log_std], -1)
    grads: Params = [None] * len(params)  # type: ignore[list-item]
    for i in range(len(params) // 2 - 1, -1, -1):
        h = inputs[i]
        grads[2 * i] = torch.bmm(h.transpose(1, 2), d_out)
        grads[2 * i + 1] = d_out.sum(1, keepdim=True)
        if i > 0:
            # ReLU backward: h = relu(z) is positive exactly where z is.
            d_out = torch.ops.aten.threshold_backward(torch.bmm(d_out, params[2 * i].transpose(1, 2)), h, 0)
    return grads, action


def inner_loop(params: Params, states: torch.Tensor, actions: torch.Tensor, steps: int,
               noise: torch.Tensor | None, lr: float, momentum: float = 0.0, truncate: int = 0) -> Params:
    """T = ``steps`` SGD steps of BC on the synthetic set from ``params``:
    ``theta_{t+1} = theta_t - lr * v_t``, ``v_t = momentum * v_{t-1} + grad_theta bc_loss(theta_t; eps_t)``
    (PyTorch SGD; plain SGD when momentum is 0).

    ``states`` (N, obs) normalized and ``actions`` (N, act) are the synthetic set; ``noise`` (T, S, N, act)
    holds eps_t for a tanh-Gaussian student (None for a deterministic one). ``truncate`` = K in (0, T)
    backpropagates only through the last K steps (the first T - K run without a graph). Returns the
    trained parameters, differentiable w.r.t. ``states`` and ``actions``.
    """
    n, act_dim = actions.shape
    scale = -lr * 2.0 / (n * act_dim)  # the MSE's 2 / (N act_dim) and the descent step, see bc_grad
    target = actions
    x = states.unsqueeze(0).expand(params[0].shape[0], -1, -1)
    buf: Params | None = None
    eps = noise.unbind(0) if noise is not None else [None] * steps
    cut = steps - truncate if 0 < truncate < steps else 0
    for t in range(steps):
        with torch.set_grad_enabled(t >= cut and torch.is_grad_enabled()):
            if t < cut:
                x, target = x.detach(), target.detach()
            elif t == cut and cut > 0:
                x, target = states.unsqueeze(0).expand(params[0].shape[0], -1, -1), actions
            steps_, _ = bc_grad(params, x, target, eps[t], act_dim, scale)
            if momentum != 0:
                buf = steps_ if buf is None else torch._foreach_add(steps_, buf, alpha=momentum)
                steps_ = buf
            params = torch._foreach_add(params, steps_)
    return params
