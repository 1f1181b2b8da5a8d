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
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy.special import gammaln, logsumexp
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity, NearestNeighbors
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

from obd.device import resolve_device
from obd.errors import ObdError

log = logging.getLogger(__name__)

ESTIMATORS = ("kde", "knn", "gmm", "flow")
MODES = ("weight", "sample")
# held-out states the MAF is evaluated on at most: keeps an evaluation as cheap as a few training steps
FLOW_MAX_VALIDATION = 20_000
# Fit subsample per estimator when ``fit_samples`` is None (0 = all states). KDE scoring costs
# O(N * fit_samples) kernel sums, so it gets the smallest; the MAF only draws minibatches from it.
DEFAULT_FIT_SAMPLES = {"kde": 1_000, "knn": 20_000, "gmm": 20_000, "flow": 0}


@dataclass
class DensityConfig:
    """How SDW estimates log p(s) and turns it into weights (:mod:`obd.distill.sdw`).

    Weights: ``target_ess`` is the effective-sample-size fraction over the whole dataset that alpha is
    solved for; ``alpha`` set (in (0, 1]) overrides the solve with a fixed tempering; ``floor`` is the
    uniform share of the floor mix ``w' = floor + (1 - floor) w``; ``clip_quantile`` clips the tempered
    weight at that quantile (1 = off); ``mode`` ``weight`` multiplies the outer error by w, ``sample``
    draws the outer batch with probability proportional to w; a run warns when the outer loss's ESS
    fraction is below ``warn_ess``.

    Estimation (timings: ``scripts/bench_density.py``, README): ``fit_samples`` caps the states an
    estimator is fitted on (0 = all, None = the estimator's entry in ``DEFAULT_FIT_SAMPLES``);
    ``chunk_size`` is how many states are scored at once; ``seed`` None takes the run's seed.
    ``bandwidth`` is "scott", "silverman" (rules of thumb for unit-variance data, computed for the
    fitted states) or a positive number in normalized state units. The MAF trains at most
    ``flow_steps`` minibatch steps on ``1 - flow_holdout`` of its fitted states, evaluates the held-out
    log-likelihood every ``flow_eval_every`` steps, lowers the learning rate 3x after
    ``flow_patience // 2`` evaluations without improvement and stops after ``flow_patience``, keeping
    the best evaluated weights.
    """

    estimator: Literal["kde", "knn", "gmm", "flow"] = "gmm"
    target_ess: float = 0.5
    alpha: float | None = None
    floor: float = 0.0
    clip_quantile: float = 0.99
    mode: Literal["weight", "sample"] = "weight"
    warn_ess: float = 0.1
    fit_samples: int | None = None
    seed: int | None = None
    chunk_size: int = 50_000
    # kde
    bandwidth: float | str = "scott"
    # relative tolerance of sklearn's tree-based kernel sums: log p within about kde_rtol nats
    kde_rtol: float = 0.05
    # CPU threads for scikit-learn and its BLAS (-1 = all): on a shared machine BLAS threads that wait
    # on each other made a small GMM fit 16x slower than one thread
    n_jobs: int = 1
    # knn
    k: int = 10
    # gmm
    components: int = 16
    gmm_reg_covar: float = 1e-4
    gmm_max_iter: int = 100
    # flow (MAF)
    flow_layers: int = 5
    flow_hidden: int = 128
    flow_steps: int = 20_000
    flow_batch: int = 1024
    flow_lr: float = 1e-3
    flow_holdout: float = 0.1
    flow_eval_every: int = 250
    flow_patience: int = 8
    device: str = "auto"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ObdError` naming the first field with an invalid value."""
        if self.estimator not in ESTIMATORS:
            raise ObdError(f"density.estimator: expected one of {list(ESTIMATORS)}, got {self.estimator!r}")
        if self.mode not in MODES:
            raise ObdError(f"density.mode: expected one of {list(MODES)}, got {self.mode!r}")
        if self.alpha is not None and not (_is_number(self.alpha) and 0.0 < self.alpha <= 1.0):
            raise ObdError(f"density.alpha: expected a number in (0, 1] or null (solve for target_ess), "
                           f"got {self.alpha!r}")
        # (name, whether 0 is allowed, whether 1 is allowed)
        for name, zero, one in (("target_ess", False, False), ("floor", True, False), ("warn_ess", True, True),
                                ("flow_holdout", False, False)):
            value = getattr(self, name)
            in_range = (0.0 < value or zero and value == 0.0) and (value < 1.0 or one and value == 1.0)
            if not (_is_number(value) and in_range):
                raise ObdError(f"density.{name}: expected a number in {'[' if zero else '('}0, 1{']' if one else ')'}, "
                               f"got {value!r}")
        if not (_is_number(self.clip_quantile) and 0.0 < self.clip_quantile <= 1.0):
            raise ObdError(f"density.clip_quantile: expected a number in (0, 1], got {self.clip_quantile!r}")
        if isinstance(self.bandwidth, str):
            if self.bandwidth not in ("scott", "silverman"):
                raise ObdError(f"density.bandwidth: expected 'scott', 'silverman' or a positive number, "
                               f"got {self.bandwidth!r}")
        elif not (_is_number(self.bandwidth) and self.bandwidth > 0):
            raise ObdError(f"density.bandwidth: expected 'scott', 'silverman' or a positive number, "
                           f"got {self.bandwidth!r}")
        for name in ("fit_samples", "seed"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ObdError(f"density.{name}: expected an integer >= 0 or null, got {value!r}")
        n_jobs = self.n_jobs
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
            raise ObdError(f"density.n_jobs: expected -1 (all cores) or an integer >= 1, got {self.n_jobs!r}")
        for name, lo in (("chunk_size", 1), ("k", 1), ("components", 1),
                         ("gmm_max_iter", 1), ("flow_layers", 1), ("flow_hidden", 1), ("flow_steps", 0),
                         ("flow_batch", 1), ("flow_eval_every", 1), ("flow_patience", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ObdError(f"density.{name}: expected an integer >= {lo}, got {value!r}")
        for name in ("kde_rtol", "gmm_reg_covar", "flow_lr"):
            value = getattr(self, name)
            if not (_is_number(value) and value >= 0):
                raise ObdError(f"density.{name}: expected a finite number >= 0, got {value!r}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                raise ObdError(f"density.device: expected 'auto', 'cpu' or 'cuda[:i]', "
                               f"got {self.device!r}") from None

    @property
    def rng_seed(self) -> int:
        """The seed the estimators draw from (0 when ``seed`` is null outside a run)."""
        return 0 if self.seed is None else self.seed


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
