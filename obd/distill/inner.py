"""The inner loop as a pure function: T SGD steps of behavior cloning on the synthetic set, from a fresh
student, with the student's BC gradient written out by hand.

A student is a flat list ``[W1, b1, ..., WL, bL]`` with a leading student axis S (several students are
trained side by side by ``torch.bmm``; S = 1 is the paper's setting): ``W`` (S, in, out), ``b`` (S, 1, out),
so a layer is ``z = x @ W + b`` and hidden layers apply ReLU. A tanh-Gaussian student's last layer outputs
``[mean, log_std]`` (2 * act_dim), exactly as :class:`obd.distill.students.MLPStudent`, whose
``layers[l].weight`` is ``W[l][0].T``.

Why by hand: differentiating T inner steps, each itself a backward pass, through autograd's
double-backward of ``nn.Module`` calls issues tens of aten ops per layer per step. Here each inner step
is one forward plus the explicit backward (dz = dh * (z > 0), dW = x^T dz, db = sum(dz), dx = dz W^T,
through the tanh-Gaussian head and the MSE): :func:`bc_grad`. For the meta-gradient
d H / d (synthetic states, synthetic actions), the whole inner step is one autograd node
(:class:`_BCGradStep`) whose vector-Jacobian product is written by hand as well (the reverse of the hand
backward, the head's second derivatives, the reverse of the forward), about 23 batched matmuls (biases
folded into the weights) and a few
dozen elementwise ops per inner step in all; autograd only chains the T nodes. ``hand_vjp=False`` lets
autograd differentiate :func:`bc_grad` op by op instead (same numbers; the tests check both against a
naive ``autograd.grad(create_graph=True)`` loop and central finite differences).

Policy noise: eps ~ N(0, I) is drawn once per inner step (``noise`` (T, S, N, act_dim)) and stays in the
graph, so the meta-gradient is the exact gradient of the realized trajectory. The published code redraws
the noise when it recomputes the inner loop for its backward pass, so its meta-gradient belongs to a
different trajectory than the one its forward pass took.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from obd.distill.students import LOG_STD_AFFINE_INIT, OUTPUT_GAIN, MLPStudent
from obd.nn import LOG_STD_MAX, LOG_STD_MIN
from obd.nn import orthogonal as orthogonal_matrix

Params = list[torch.Tensor]


def layer_dims(obs_dim: int, act_dim: int, hidden: int, depth: int, stochastic: bool) -> list[int]:
    """``[obs_dim, hidden x depth, act_dim (x2 with a log-std head)]``."""
    return [obs_dim] + [hidden] * depth + [act_dim * (2 if stochastic else 1)]


def init_params(dims: list[int], students: int = 1, generator: torch.Generator | None = None,
                orthogonal: bool = True, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32, head: str = "corl") -> Params:
    """Fresh student parameters ``[W1, b1, ...]``, ``W`` (S, in, out), ``b`` (S, 1, out).

    ``orthogonal``: CORL's scheme as in :func:`obd.nn.orthogonal_layers_` (gain sqrt(2) for
    hidden layers, the ``head``'s gain for the output layer, zero biases), drawing the same numbers from
    ``generator`` as ``MLPStudent.reset_parameters(generator)`` when S = 1. Otherwise PyTorch's
    ``nn.Linear`` default, U(-1/sqrt(in), 1/sqrt(in)) for weights and biases. A ``paper`` head on a
    tanh-Gaussian student (``dims[-1]`` even) appends one more tensor (S, 1, 2): the learnable log-std
    (multiplier, offset), initialized to (1, -1); that odd-length list is how every function here tells it.
    """
    params: Params = []
    n = len(dims) - 1
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        if orthogonal:
            gain = OUTPUT_GAIN[head] if i == n - 1 else math.sqrt(2.0)
            weight = orthogonal_matrix((students, d_out, d_in), gain, generator, device, dtype).mT  # (S, in, out)
            params += [weight.contiguous(), torch.zeros(students, 1, d_out, device=device, dtype=dtype)]
        else:
            bound = 1.0 / math.sqrt(d_in)
            u = torch.rand((students, d_in + 1, d_out), generator=generator, device=device, dtype=dtype)
            u = u * (2 * bound) - bound
            params += [u[:, :d_in].contiguous(), u[:, d_in:].contiguous()]
    if head == "paper" and dims[-1] % 2 == 0:
        params.append(torch.tensor(LOG_STD_AFFINE_INIT, device=device, dtype=dtype).expand(students, 1, 2).clone())
    return params


def _affine(params: Params) -> torch.Tensor | None:
    """The learnable log-std (multiplier, offset) (S, 1, 2) of a ``paper`` head, None for ``corl``."""
    return params[-1] if len(params) % 2 else None


def log_std_of(params: Params, raw: torch.Tensor) -> torch.Tensor:
    """Pre-clamp log-std from the head's raw log-std columns ``raw`` (S, N, act)."""
    affine = _affine(params)
    return raw if affine is None else raw * affine[..., :1] + affine[..., 1:]


def params_from_module(student: MLPStudent) -> Params:
    """Flat parameter list (S = 1) of an :class:`MLPStudent`, detached copies."""
    out: Params = []
    for layer in student.layers:
        out += [layer.weight.detach().T.unsqueeze(0).contiguous(), layer.bias.detach().view(1, 1, -1).clone()]
    if student.log_std_affine is not None:
        out.append(student.log_std_affine.detach().view(1, 1, 2).clone())
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
    return torch.baddbmm(params[2 * n_layers - 1], x, params[2 * n_layers - 2]), inputs


def student_action(params: Params, x: torch.Tensor, act_dim: int, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Student action (S, N, act_dim) for normalized states ``x`` (N, obs): the deterministic ``tanh(mean)``,
    or with ``noise`` eps (S, N, act_dim) the reparameterized sample ``tanh(mean + exp(log_std) * eps)``
    (log-std clamped to [-20, 2]) of a tanh-Gaussian student, differentiable through mean and log-std."""
    out, _ = forward(params, x.unsqueeze(0))
    if noise is None:
        return torch.tanh(out[..., :act_dim])
    mean, raw = out.split(act_dim, -1)
    return torch.tanh(mean + log_std_of(params, raw).clamp(LOG_STD_MIN, LOG_STD_MAX).exp() * noise)


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
    grads: Params = [None] * len(params)  # type: ignore[list-item]
    affine = _affine(params)
    if noise is None:
        action = torch.tanh(out)
        d_out = torch.ops.aten.tanh_backward((action - target) * scale, action)
        if affine is not None:
            grads[-1] = torch.zeros_like(affine)
    else:
        mean, log_std_raw = out.split(act_dim, -1)
        log_std = log_std_of(params, log_std_raw)
        # hardtanh is clamp with a one-op backward (they differ only exactly on the bounds).
        scaled_noise = F.hardtanh(log_std, LOG_STD_MIN, LOG_STD_MAX).exp() * noise
        action = torch.tanh(mean + scaled_noise)
        d_mean = torch.ops.aten.tanh_backward((action - target) * scale, action)
        # d/d log_std of exp(log_std) * eps is exp(log_std) * eps; zero where the clamp is active.
        d_log_std = torch.ops.aten.hardtanh_backward(d_mean * scaled_noise, log_std, LOG_STD_MIN, LOG_STD_MAX)
        if affine is not None:  # log_std = m * raw + c
            grads[-1] = torch.cat([(d_log_std * log_std_raw).sum((1, 2), keepdim=True),
                                   d_log_std.sum((1, 2), keepdim=True)], -1)
            d_log_std = d_log_std * affine[..., :1]
        d_out = torch.cat([d_mean, d_log_std], -1)
    for i in range(len(params) // 2 - 1, -1, -1):
        h = inputs[i]
        grads[2 * i] = torch.bmm(h.transpose(1, 2), d_out)
        grads[2 * i + 1] = d_out.sum(1, keepdim=True)
        if i > 0:
            # ReLU backward: h = relu(z) is positive exactly where z is.
            d_out = torch.ops.aten.threshold_backward(torch.bmm(d_out, params[2 * i].transpose(1, 2)), h, 0)
    return grads, action


def _t(t: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """Batched transpose (S, a, b) -> (S, b, a) of the first ``rows`` rows, as one ``as_strided`` (a
    ``transpose`` is two aten ops, a transpose of a row slice four)."""
    s0, s1, s2 = t.stride()
    return t.as_strided((t.shape[0], t.shape[2], t.shape[1] if rows is None else rows), (s0, s2, s1),
                        t.storage_offset())


def _cols(t: torch.Tensor, start: int, n: int) -> torch.Tensor:
    """Columns ``start .. start + n`` of the last axis of ``t`` (S, N, c), as one ``as_strided``."""
    return t.as_strided((*t.shape[:-1], n), t.stride(), t.storage_offset() + start * t.stride(-1))


class _BCGradStep(torch.autograd.Function):
    """:func:`bc_grad` as one autograd node whose backward (the vector-Jacobian product of the hand gradient,
    i.e. the second-order step of the meta-gradient) is also written by hand, so the outer backward pass
    issues a fixed, short list of ops per inner step instead of autograd's per-op bookkeeping.

    Layout: each layer's bias is folded into its weight as a last row, ``W_i`` (S, d_i + 1, d_{i+1}), and
    every layer input carries a trailing column of ones, ``A_i = [h_i, 1]`` (S, N, d_i + 1), so one batched
    matmul gives ``z_i = A_i W_i`` and one gives the whole gradient ``A_i^T delta_i`` of weight and bias.

    Notation: h_0 = x, h_{i+1} = relu(z_i); the hand backward runs delta_{L-1} = dL/d out,
    GW_i = A_i^T delta_i, delta_{i-1} = (delta_i Wv_i^T) * [h_i > 0] with Wv_i the first d_i rows of W_i.
    Given the adjoints G_i of the GW_i, the backward first reverses that recursion (i = 0 .. L-1), then the
    head (tanh-Gaussian + MSE, second derivatives included), then the forward pass (i = L-1 .. 0).

    Inputs: ``x`` (S, N, obs) (the differentiable synthetic states), ``x_aug`` = [x, 1] and its transposed
    view ``x_aug_t`` (built once per inner loop, not differentiated here: x's adjoint is returned for
    ``x``), ``ones`` (S, N, 1), ``neg_scaled_target`` (S, N, act) = -scale * y, ``noise`` (S, N, act) or
    None, ``consts`` = (LOG_STD_MIN, LOG_STD_MAX, -2) as 0-d tensors (a Python scalar operand costs four
    extra aten ops per call) and zeros (S, N, 1), ``fused``: return theta + step instead of the step alone.
    """

    @staticmethod
    def forward(ctx, x, x_aug, x_aug_t, ones, neg_scaled_target, noise, consts, act_dim, scale, fused,
                *weights):  # type: ignore[override]
        # Not recorded by autograd, so in-place ops are safe and every op here is one aten call.
        n_layers = len(weights)
        lo, hi = consts[:2]
        a_s, a_ts, hs = [x_aug], [x_aug_t], [x]
        a = x_aug
        for i in range(n_layers - 1):
            h = torch.bmm(a, weights[i]).clamp_min_(0.0)
            a = torch.cat([h, ones], -1)
            hs.append(h)
            a_s.append(a)
            a_ts.append(_t(a))
        out = torch.bmm(a, weights[-1])
        if noise is None:
            action = out.tanh_()
            resid = torch.add(neg_scaled_target, action, alpha=scale)  # scale * (a - y)
            d_out = torch.ops.aten.tanh_backward(resid, action)
            log_std_raw = scaled_noise = d_mean = None
        else:
            mean, log_std_raw = _cols(out, 0, act_dim), _cols(out, act_dim, act_dim)
            scaled_noise = torch.clamp(log_std_raw, lo, hi).exp_().mul_(noise)
            action = torch.add(mean, scaled_noise).tanh_()
            resid = torch.add(neg_scaled_target, action, alpha=scale)
            d_mean = torch.ops.aten.tanh_backward(resid, action)
            d_log_std = torch.ops.aten.hardtanh_backward(d_mean * scaled_noise, log_std_raw, LOG_STD_MIN,
                                                         LOG_STD_MAX)
            d_out = torch.cat([d_mean, d_log_std], -1)
        deltas: list[torch.Tensor] = [d_out] * n_layers
        grads: list[torch.Tensor] = [d_out] * n_layers
        for i in range(n_layers - 1, -1, -1):
            grads[i] = torch.bmm(a_ts[i], d_out)
            if i > 0:
                d_out = torch.ops.aten.threshold_backward(torch.bmm(d_out, _t(weights[i], hs[i].shape[-1])),
                                                          hs[i], 0)
                deltas[i - 1] = d_out
        ctx.act_dim, ctx.scale, ctx.n_layers, ctx.stochastic = act_dim, scale, n_layers, noise is not None
        ctx.fused, ctx.neg_two, ctx.zeros = fused, consts[2], consts[3]
        extra = [log_std_raw, scaled_noise, d_mean] if noise is not None else []
        ctx.save_for_backward(action, resid, *extra, *hs, *a_s, *a_ts, *deltas, *weights)
        if fused:
            return tuple(gw.add_(w) for gw, w in zip(grads, weights))
        return tuple(grads)

    @staticmethod
    def backward(ctx, *g):  # type: ignore[override]
        n_layers, scale = ctx.n_layers, ctx.scale
        saved = list(ctx.saved_tensors)
        action, resid = saved[:2]
        k = 5 if ctx.stochastic else 2
        if ctx.stochastic:
            log_std_raw, scaled_noise, d_mean = saved[2:5]
        hs, a_s, a_ts, deltas, weights = (saved[k + j * n_layers:k + (j + 1) * n_layers] for j in range(5))
        dims = [h.shape[-1] for h in hs]
        zeros = ctx.zeros
        # P_i = adjoint of delta_{i-1} masked by m_i, with a zero column so that it lines up with A_i
        p_aug: list[torch.Tensor | None] = [None] * n_layers
        # 1. reverse the hand backward: GW_i = A_i^T delta_i, delta_{i-1} = (delta_i Wv_i^T) m_i; the adjoint
        # of delta_i, A_i G_i + P_i Wv_i, is one matmul of the concatenations.
        d_bar = torch.bmm(a_s[0], g[0])
        for i in range(n_layers):
            if i > 0:
                d_bar = torch.bmm(torch.cat([a_s[i], p_aug[i]], -1), torch.cat([g[i], weights[i]], 1))
            if i + 1 < n_layers:
                p_aug[i + 1] = torch.cat([torch.ops.aten.threshold_backward(d_bar, hs[i + 1], 0), zeros], -1)
        # 2. the head: d_out = tanh'(u) * scale * (a - y) (and its log-std part), second derivatives included
        if ctx.stochastic:
            d_mean_bar, d_log_std_bar = _cols(d_bar, 0, ctx.act_dim), _cols(d_bar, ctx.act_dim, ctx.act_dim)
            q = torch.ops.aten.hardtanh_backward(d_log_std_bar, log_std_raw, LOG_STD_MIN, LOG_STD_MAX)
            d_mean_bar = torch.addcmul(d_mean_bar, q, scaled_noise)
            noise_bar = q.mul_(d_mean)
        else:
            d_mean_bar = d_bar
        resid_bar = torch.ops.aten.tanh_backward(d_mean_bar, action)
        a_bar = torch.mul(action, resid).mul_(d_mean_bar).add_(resid_bar, alpha=scale / -2.0)
        u_bar = torch.ops.aten.tanh_backward(a_bar, action)  # -1/2 of d/du: sign and factor fixed below
        if ctx.stochastic:
            log_std_bar = torch.ops.aten.hardtanh_backward(
                torch.add(noise_bar, u_bar, alpha=-2.0).mul_(scaled_noise), log_std_raw, LOG_STD_MIN, LOG_STD_MAX)
            z_bar = torch.cat([u_bar.mul_(ctx.neg_two), log_std_bar], -1)
        else:
            z_bar = u_bar.mul_(ctx.neg_two)
        # 3. reverse the forward pass. A_i's adjoint (first d_i columns) gets delta_i Gv_i^T from step 1's
        # GW_i and z_bar_i Wv_i^T from z_i = A_i W_i: one matmul of the concatenations.
        weight_bars: list[torch.Tensor] = list(g)
        for i in range(n_layers - 1, -1, -1):
            if i == 0:
                w = torch.bmm(a_ts[0], z_bar)
            else:  # A_i^T z_bar_i from z_i = A_i W_i plus P_i^T delta_i from step 1's delta recursion
                w = torch.bmm(_t(torch.cat([a_s[i], p_aug[i]], 1)), torch.cat([z_bar, deltas[i]], 1))
            if ctx.fused:  # theta_{t+1} = theta_t + step: the identity path
                w.add_(g[i])
            weight_bars[i] = w
            h_bar = torch.bmm(torch.cat([deltas[i], z_bar], -1), _t(torch.cat([g[i], weights[i]], -1), dims[i]))
            if i > 0:
                z_bar = torch.ops.aten.threshold_backward(h_bar, hs[i], 0)
        return (h_bar, None, None, None, resid_bar, None, None, None, None, None, *weight_bars)


def inner_loop(params: Params, states: torch.Tensor, actions: torch.Tensor, steps: int,
               noise: torch.Tensor | None, lr: float, momentum: float = 0.0, truncate: int = 0,
               hand_vjp: bool = True) -> Params:
    """T = ``steps`` SGD steps of BC on the synthetic set from ``params``:
    ``theta_{t+1} = theta_t - lr * v_t``, ``v_t = momentum * v_{t-1} + grad_theta bc_loss(theta_t; eps_t)``
    (PyTorch SGD; plain SGD when momentum is 0).

    ``states`` (N, obs) normalized and ``actions`` (N, act) are the synthetic set; ``noise`` (T, S, N, act)
    holds eps_t for a tanh-Gaussian student (None for a deterministic one). ``truncate`` = K in (0, T)
    backpropagates only through the last K steps (the first T - K run without a graph). Returns the
    trained parameters, differentiable w.r.t. ``states`` and ``actions``. ``hand_vjp`` False lets autograd
    differentiate :func:`bc_grad` op by op instead of using :class:`_BCGradStep`'s hand-written backward
    (same numbers, many more ops; kept as a cross-check). A ``paper`` head's learnable log-std scalars
    (see :func:`init_params`) always take that autograd path: the hand-written backward does not cover them.
    """
    n, act_dim = actions.shape
    scale = -lr * 2.0 / (n * act_dim)  # the MSE's 2 / (N act_dim) and the descent step, see bc_grad
    students = params[0].shape[0]
    cut = steps - truncate if 0 < truncate < steps else 0
    if not hand_vjp or _affine(params) is not None:
        return _inner_loop_autograd(params, states, actions, steps, noise, scale, momentum, cut)
    # The hand-VJP path runs on bias-folded weights (see _BCGradStep); everything constant across the T
    # inner steps is built here once.
    dims = [w.shape[1] for w in params[0::2]]
    weights = [torch.cat([w, b], 1) for w, b in zip(params[0::2], params[1::2])]
    like = dict(dtype=states.dtype, device=states.device)
    ones = torch.ones((students, n, 1), **like)
    consts = (torch.tensor(LOG_STD_MIN, **like), torch.tensor(LOG_STD_MAX, **like), torch.tensor(-2.0, **like),
              torch.zeros((students, n, 1), **like))
    x_full = states.unsqueeze(0).expand(students, -1, -1)
    x_aug = torch.cat([x_full.detach(), ones], -1)
    x_aug_t = _t(x_aug)
    nst_full = (actions * -scale).unsqueeze(0).expand(students, -1, -1)
    x, nst = (x_full.detach(), nst_full.detach()) if cut > 0 else (x_full, nst_full)
    buf: Params | None = None
    for t in range(steps):
        with torch.set_grad_enabled(t >= cut and torch.is_grad_enabled()):
            if t == cut and cut > 0:
                x, nst = x_full, nst_full
            eps = None if noise is None else noise.as_strided(
                noise.shape[1:], noise.stride()[1:], noise.storage_offset() + t * noise.stride(0))
            if momentum == 0:
                weights = list(_BCGradStep.apply(x, x_aug, x_aug_t, ones, nst, eps, consts, act_dim, scale, True,
                                                 *weights))
                continue
            steps_ = list(_BCGradStep.apply(x, x_aug, x_aug_t, ones, nst, eps, consts, act_dim, scale, False,
                                            *weights))
            buf = steps_ if buf is None else torch._foreach_add(steps_, buf, alpha=momentum)
            weights = torch._foreach_add(weights, buf)
    return [p for w, d in zip(weights, dims) for p in (w[:, :d], w[:, d:])]


def _inner_loop_autograd(params: Params, states: torch.Tensor, actions: torch.Tensor, steps: int,
                         noise: torch.Tensor | None, scale: float, momentum: float, cut: int) -> Params:
    """:func:`inner_loop` with autograd differentiating :func:`bc_grad` op by op (the cross-check)."""
    act_dim = actions.shape[1]
    target = actions
    x = states.unsqueeze(0).expand(params[0].shape[0], -1, -1)
    buf: Params | None = None
    eps = noise.unbind(0) if noise is not None else [None] * steps
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
