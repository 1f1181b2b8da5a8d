"""Density estimators for SDW: ``log p(s)`` of every real state under the offline dataset.

SDW (state-density weighted distillation; Lei, Cheng, Tao 2025) weights each real state's outer
objective by a tempered inverse density; :mod:`obd.distill.sdw` turns the log-densities computed here
into weights. ``log p(s)`` comes from one of four estimators on *normalized* states, fitted on a
seeded subsample of ``fit_samples`` states and scored on every state in chunks:

- ``kde``: Gaussian kernel density (scikit-learn ``KernelDensity``). Cross-fitted: the subsample is
  split in halves A and B; states in A are scored by the KDE of B and vice versa, all others by the
  average of both, so no state is scored by a kernel centred on itself. Cost O(N * fit_samples).
- ``knn``: k-nearest-neighbour density ``p = k / (M V_d r_k^d)`` with ``r_k`` the distance to the
  k-th neighbour among the M fitted states (scikit-learn ``NearestNeighbors``); a fitted state skips
  itself.
- ``gmm``: Gaussian mixture with full covariances (scikit-learn ``GaussianMixture``), cross-fitted like
  the KDE: a component collapsed onto one isolated fitted state would otherwise give it a huge density.
- ``flow``: a masked autoregressive flow (MAF: a stack of MADE layers with reversed orderings,
  Papamakarios et al. 2017) trained by maximum likelihood in torch (cuda when available) with a
  held-out split and early stopping.

:func:`fit_log_density` also reports each estimator's held-out log-likelihood.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.special import gammaln, logsumexp
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity, NearestNeighbors
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

from obd.device import resolve_device
from obd.distill.density_config import DensityConfig
from obd.errors import ObdError

# Fit subsample per estimator when ``fit_samples`` is None (0 = all states). KDE scoring costs
# O(N * fit_samples) kernel sums, so it gets the smallest; the MAF only draws minibatches from it.
DEFAULT_FIT_SAMPLES = {"kde": 1_000, "knn": 20_000, "gmm": 20_000, "flow": 0}

log = logging.getLogger(__name__)

# held-out states the MAF is evaluated on at most: keeps an evaluation as cheap as a few training steps
FLOW_MAX_VALIDATION = 20_000


def _check_states(states: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(states, torch.Tensor):
        states = states.detach().cpu().numpy()
    states = np.asarray(states)
    if states.ndim != 2 or states.shape[0] < 2 or states.shape[1] < 1:
        raise ObdError(f"normalized_states: expected an (N, obs_dim) array with N >= 2, got shape {states.shape}")
    if not np.issubdtype(states.dtype, np.number):
        raise ObdError(f"normalized_states: expected numbers, got dtype {states.dtype}")
    states = states.astype(np.float64, copy=False)
    bad = ~np.isfinite(states).all(axis=1)
    if bad.any():
        raise ObdError(f"normalized_states: {int(bad.sum())} rows hold NaN or inf "
                       f"(first: row {int(np.argmax(bad))})")
    return states


def _fit_indices(n: int, cfg: DensityConfig) -> np.ndarray:
    """Sorted seeded subsample of ``min(n, fit_samples)`` row indices (all rows when fit_samples is 0)."""
    want = DEFAULT_FIT_SAMPLES[cfg.estimator] if cfg.fit_samples is None else cfg.fit_samples
    m = n if want == 0 else min(n, want)
    if m == n:
        return np.arange(n)
    return np.sort(np.random.default_rng(cfg.rng_seed).choice(n, size=m, replace=False))


# whether estimators may show progress bars: set by log_density for the duration of one estimate, so the
# option need not be threaded through every estimator
_PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar("obd_density_progress", default=True)


def _bar(items, desc: str, total: int, long: bool):
    """A tqdm bar over ``items`` when progress is on and the work is ``long`` (None: tqdm hides it off a TTY)."""
    return tqdm(items, desc=desc, total=total, leave=False, disable=None if long and _PROGRESS.get() else True)


def _chunks(n: int, cfg: DensityConfig, desc: str):
    starts = range(0, n, cfg.chunk_size)
    return _bar(starts, desc, len(starts), len(starts) > 4)


def kde_bandwidth(cfg: DensityConfig, num_fit: int, dim: int) -> float:
    """Scott ``n^(-1/(d+4))`` or Silverman ``(n (d+2) / 4)^(-1/(d+4))`` for unit-variance data, or the float."""
    if cfg.bandwidth == "scott":
        return float(num_fit ** (-1.0 / (dim + 4)))
    if cfg.bandwidth == "silverman":
        return float((num_fit * (dim + 2) / 4.0) ** (-1.0 / (dim + 4)))
    return float(cfg.bandwidth)


def _cross_fit_log_density(x: np.ndarray, cfg: DensityConfig, fit, desc: str) -> np.ndarray:
    """Score every state with models that never saw it: ``fit(rows) -> model with .score_samples``.

    The fitted subsample is split into random halves A and B with a model each; states in A are scored
    by B's model and vice versa, every other state by the size-weighted mixture of both (for a KDE that
    is exactly the KDE of the whole subsample). Without this, a kernel centred on a fitted state, or a
    mixture component collapsed onto it, makes exactly the isolated fitted states look dense.
    """
    n = x.shape[0]
    idx = _fit_indices(n, cfg)
    perm = np.random.default_rng(cfg.rng_seed + 1).permutation(idx)
    halves = (np.sort(perm[: idx.size // 2]), np.sort(perm[idx.size // 2:]))
    models = [fit(x[h]) for h in halves]
    side = np.full(n, -1, dtype=np.int8)
    side[halves[0]], side[halves[1]] = 0, 1
    sizes = np.array([[halves[0].size], [halves[1].size]], dtype=np.float64)
    out = np.empty(n)
    for s in _chunks(n, cfg, desc):
        e = min(n, s + cfg.chunk_size)
        block, blk_side = x[s:e], side[s:e]
        lp = np.empty(e - s)
        for h in (0, 1):
            own = blk_side == h
            if own.any():
                lp[own] = models[1 - h].score_samples(block[own])
        rest = blk_side < 0
        if rest.any():
            both = np.stack([m.score_samples(block[rest]) for m in models])
            lp[rest] = logsumexp(both, axis=0, b=sizes) - math.log(idx.size)
        out[s:e] = lp
    return out


def _kde_log_density(x: np.ndarray, cfg: DensityConfig) -> np.ndarray:
    num_fit = _fit_indices(x.shape[0], cfg).size
    if num_fit < 4:
        raise ObdError(f"density.fit_samples: KDE needs at least 4 fitted states, got {num_fit}")
    bw = kde_bandwidth(cfg, num_fit, x.shape[1])
    return _cross_fit_log_density(
        x, cfg, lambda rows: KernelDensity(kernel="gaussian", bandwidth=bw, rtol=cfg.kde_rtol).fit(rows),
        "KDE log p(s)")


def _knn_log_density(x: np.ndarray, cfg: DensityConfig) -> np.ndarray:
    n, d = x.shape
    idx = _fit_indices(n, cfg)
    if cfg.k + 1 > idx.size:
        raise ObdError(f"density.k: expected k < fitted states ({idx.size}), got {cfg.k}")
    nn_index = NearestNeighbors(n_neighbors=cfg.k + 1, n_jobs=cfg.n_jobs).fit(x[idx])
    in_fit = np.zeros(n, dtype=bool)
    in_fit[idx] = True
    r_k = np.empty(n)
    for s in _chunks(n, cfg, "kNN log p(s)"):
        e = min(n, s + cfg.chunk_size)
        dist, _ = nn_index.kneighbors(x[s:e])
        # a fitted state finds itself at distance 0 first, so its k-th neighbour is column k
        r_k[s:e] = np.where(in_fit[s:e], dist[:, cfg.k], dist[:, cfg.k - 1])
    positive = r_k[r_k > 0]
    # k exact duplicates give r_k = 0 (infinite density); floor it far below any real spacing
    floor = 1e-6 * (np.median(positive) if positive.size else 1.0)
    r_k = np.maximum(r_k, floor)
    log_unit_ball = 0.5 * d * math.log(math.pi) - gammaln(0.5 * d + 1.0)
    return math.log(cfg.k) - math.log(idx.size) - log_unit_ball - d * np.log(r_k)


def _gmm_log_density(x: np.ndarray, cfg: DensityConfig) -> np.ndarray:
    num_fit = _fit_indices(x.shape[0], cfg).size
    if cfg.components > num_fit // 2:
        raise ObdError(f"density.components: expected at most half the fitted states ({num_fit // 2}), "
                       f"got {cfg.components}")
    return _cross_fit_log_density(
        x, cfg, lambda rows: GaussianMixture(n_components=cfg.components, covariance_type="full",
                                             reg_covar=cfg.gmm_reg_covar, max_iter=cfg.gmm_max_iter,
                                             random_state=cfg.rng_seed).fit(rows),
        "GMM log p(s)")


class _MaskedLinear(nn.Linear):
    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor):
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Autoregressive ``x (B, d) -> (mu, log_scale)`` each (B, d): output i depends on x_<i only.

    Masks from degrees (Germain et al. 2015): inputs 1..d, hidden units cycle through 1..d-1, a hidden
    unit sees inputs of degree <= its own and output i sees hidden units of degree < i.
    """

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        deg_in = torch.arange(1, dim + 1)
        deg_h = torch.arange(hidden) % max(dim - 1, 1) + 1
        m1 = (deg_h[:, None] >= deg_in[None, :]).float()
        m2 = (deg_h[:, None] >= deg_h[None, :]).float()
        m3 = (deg_in[:, None] > deg_h[None, :]).float().repeat(2, 1)
        self.net = nn.Sequential(_MaskedLinear(dim, hidden, m1), nn.ReLU(), _MaskedLinear(hidden, hidden, m2),
                                 nn.ReLU(), _MaskedLinear(hidden, 2 * dim, m3))
        # start as the identity map so early training steps see the standard-normal base density
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, a = self.net(x).chunk(2, dim=-1)
        # soft clamp keeps each layer's scale in [e^-5, e^5] so training cannot blow up
        return mu, 5.0 * torch.tanh(a / 5.0)


class MAF(nn.Module):
    """Masked autoregressive flow: ``log p(x) = log N(u; 0, I) - sum_layers sum_i log_scale_i``.

    Each layer maps ``u_i = (x_i - mu_i(x_<i)) * exp(-log_scale_i(x_<i))`` and the feature order is
    reversed between layers. ``log_prob(x (B, d)) -> (B,)``.
    """

    def __init__(self, dim: int, layers: int = 5, hidden: int = 128):
        super().__init__()
        self.dim = dim
        self.layers = nn.ModuleList(MADE(dim, hidden) for _ in range(layers))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        log_det = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        for layer in self.layers:
            mu, a = layer(x)
            x = ((x - mu) * torch.exp(-a)).flip(-1)
            log_det = log_det - a.sum(-1)
        return -0.5 * (x.pow(2).sum(-1) + self.dim * math.log(2 * math.pi)) + log_det


def _device(cfg: DensityConfig) -> torch.device:
    return resolve_device(cfg.device, "density.device")


def _flow_log_density(x: np.ndarray, cfg: DensityConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Train a MAF on ``1 - flow_holdout`` of the fitted states with early stopping on the rest
    (:class:`DensityConfig`), then score every state with the best evaluated weights."""
    n, d = x.shape
    device = _device(cfg)
    idx = np.random.default_rng(cfg.rng_seed + 1).permutation(_fit_indices(n, cfg))
    num_val = min(max(1, round(cfg.flow_holdout * idx.size)), FLOW_MAX_VALIDATION)
    if idx.size - num_val < 2:
        raise ObdError(f"density.flow_holdout: leaves {idx.size - num_val} training states of {idx.size}")
    train = torch.as_tensor(x[np.sort(idx[num_val:])], dtype=torch.float32, device=device)
    val = torch.as_tensor(x[np.sort(idx[:num_val])], dtype=torch.float32, device=device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.rng_seed)
        flow = MAF(d, cfg.flow_layers, cfg.flow_hidden).to(device)
    opt = torch.optim.Adam(flow.parameters(), lr=cfg.flow_lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=1 / 3, threshold=1e-3,
                                                       threshold_mode="abs", patience=max(cfg.flow_patience // 2, 1))
    rng = np.random.default_rng(cfg.rng_seed + 2)

    def heldout() -> float:
        with torch.no_grad():
            return float(torch.cat([flow.log_prob(val[s:s + cfg.chunk_size])
                                    for s in range(0, num_val, cfg.chunk_size)]).double().mean())

    best_ll, best_step, best_state = heldout(), 0, copy.deepcopy(flow.state_dict())
    curve = [(0, best_ll)]
    step = 0
    bar = _bar(range(cfg.flow_steps), "MAF fit", cfg.flow_steps, cfg.flow_steps > 50)
    for step in bar:
        batch = train[torch.as_tensor(rng.integers(0, len(train), cfg.flow_batch), device=device)]
        loss = -flow.log_prob(batch).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        if done % cfg.flow_eval_every and done != cfg.flow_steps:
            continue
        ll = heldout()
        curve.append((done, ll))
        if ll > best_ll + 1e-3:
            best_ll, best_step, best_state = ll, done, copy.deepcopy(flow.state_dict())
        sched.step(ll)
        if done - best_step >= cfg.flow_patience * cfg.flow_eval_every:
            break
    flow.load_state_dict(best_state)
    out = np.empty(n)
    with torch.no_grad():
        for s in _chunks(n, cfg, "MAF log p(s)"):
            e = min(n, s + cfg.chunk_size)
            block = torch.as_tensor(x[s:e], dtype=torch.float32, device=device)
            out[s:e] = flow.log_prob(block).double().cpu().numpy()
    if not np.isfinite(out).all():
        raise ObdError(f"density.flow_lr: the MAF diverged (non-finite log p); lower flow_lr (got {cfg.flow_lr})")
    converged = curve[-1][0] < cfg.flow_steps
    if not converged:
        log.warning("MAF: held-out log-likelihood still rising after density.flow_steps = %d steps",
                    cfg.flow_steps)
    return out, {"heldout_log_likelihood": best_ll, "heldout_states": int(num_val), "flow_best_step": best_step,
                 "flow_steps_run": int(curve[-1][0]), "flow_early_stopped": converged,
                 "flow_curve": [[int(k), round(v, 4)] for k, v in curve]}


def _cross_fitted(estimate: Callable[[np.ndarray, DensityConfig], np.ndarray]):
    """Wrap an estimator whose every state is scored by a model that did not fit on it: its held-out
    log-likelihood is the mean over all states."""
    def run(x: np.ndarray, cfg: DensityConfig) -> tuple[np.ndarray, dict[str, Any]]:
        lp = estimate(x, cfg)
        return lp, {"heldout_log_likelihood": float(np.mean(lp)), "heldout_states": int(len(lp))}
    return run


_ESTIMATE = {"kde": _cross_fitted(_kde_log_density), "knn": _cross_fitted(_knn_log_density),
             "gmm": _cross_fitted(_gmm_log_density), "flow": _flow_log_density}


def fit_log_density(normalized_states: np.ndarray | torch.Tensor, cfg: DensityConfig | None = None,
                    progress: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """``log p(s)`` (N,) float64 (nats) of every state under the dataset the states form, and what the
    fit reports: ``heldout_log_likelihood`` (mean log p of states the model did not fit on: every state
    for the cross-fitted KDE/GMM and the leave-one-out kNN, the ``flow_holdout`` split for the MAF) and
    ``heldout_states``; the MAF adds its training curve.

    ``normalized_states`` (N, d): states in normalized space (dataset mean/std), numpy or torch. The kNN
    estimate is only asymptotically normalized; its bias is a constant that cancels in the weights.
    """
    cfg = cfg or DensityConfig()
    cfg.validate()
    x = _check_states(normalized_states)
    token = _PROGRESS.set(progress)
    try:
        with threadpool_limits(limits=None if cfg.n_jobs == -1 else cfg.n_jobs):
            return _ESTIMATE[cfg.estimator](x, cfg)
    finally:
        _PROGRESS.reset(token)


def log_density(normalized_states: np.ndarray | torch.Tensor, cfg: DensityConfig | None = None,
                progress: bool = True) -> np.ndarray:
    """``log p(s)`` (N,) float64 of (N, d) normalized states (:func:`fit_log_density` without its report)."""
    return fit_log_density(normalized_states, cfg, progress)[0]
