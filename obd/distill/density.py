"""State-density weights for SDW (state-density weighted distillation; Lei, Cheng, Tao 2025).

SDW multiplies each real state's outer objective by a weight that falls with the state's density
under the offline dataset, so rare states count more and the synthetic set covers more of the state
space. A raw ``1 / p(s)`` is unusable (the 1%-99% log-density spread of a flow model on D4RL is
27-60 nats), so the weight is tempered, clipped and normalized, all in log space:

    z_i = -alpha * log p(s_i)                      (alpha in (0, 1])
    c   = the clip_quantile order statistic of z    (np.quantile, method "inverted_cdf")
    w_i = exp(min(z_i, c) - c)                      (in (0, 1]: the clip level becomes 1)
    w_i = w_i / mean(w)                             (mean 1 over the dataset)

So what is clipped is the *tempered, unnormalized* weight ``p(s)^-alpha``: every state whose weight
exceeds its ``clip_quantile`` quantile gets that quantile's value; the final maximum weight is
exactly ``1 / mean(clipped weights)`` and at least a ``1 - clip_quantile`` fraction of states hold
it. ``clip_quantile = 1`` disables clipping.

``log p(s)`` comes from one of four estimators on *normalized* states, fitted on a seeded subsample
of ``fit_samples`` states and scored on every state in chunks:

- ``kde``: Gaussian kernel density (scikit-learn ``KernelDensity``). Cross-fitted: the subsample is
  split in halves A and B; states in A are scored by the KDE of B and vice versa, all others by the
  average of both, so no state is scored by a kernel centred on itself. Cost O(N * fit_samples).
- ``knn``: k-nearest-neighbour density ``p = k / (M V_d r_k^d)`` with ``r_k`` the distance to the
  k-th neighbour among the M fitted states (scikit-learn ``NearestNeighbors``); a fitted state skips
  itself.
- ``gmm``: Gaussian mixture with full covariances (scikit-learn ``GaussianMixture``), cross-fitted like
  the KDE: a component collapsed onto one isolated fitted state would otherwise give it a huge density.
- ``flow``: a masked autoregressive flow (MAF: a stack of MADE layers with reversed orderings,
  Papamakarios et al. 2017) trained by maximum likelihood in torch on cuda when available.

Weights are computed once per dataset (:func:`sdw_weights`); :func:`sdw_weights_with_stats` also
returns diagnostics (effective sample size, maximum weight, log-density spread).
"""

from __future__ import annotations

import contextvars
import logging
import math
import time
from dataclasses import dataclass

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
# Fit subsample per estimator when ``fit_samples`` is None (0 = all states). KDE scoring costs
# O(N * fit_samples) kernel sums, so it gets the smallest; the MAF only draws minibatches from it.
DEFAULT_FIT_SAMPLES = {"kde": 1_000, "knn": 20_000, "gmm": 20_000, "flow": 0}


@dataclass
class DensityConfig:
    """How SDW weights are estimated.

    Defaults, timed by ``scripts/bench_density.py`` on 200k x 17 states and extrapolated to 1M, on a
    2-core machine shared with about 8 busy processes (n_jobs=1): gmm ~20 s, kde ~100 s, knn ~120 s,
    flow ~35 s with 1 torch thread (about 13 s of it the 500 training steps; 2 torch threads on the
    busy machine made each step 10x slower). The KDE's 1,000-state fit keeps its Scott bandwidth
    wide (0.72 in 17-d), so its log-density spread and the weights' spread are the smallest of the four.

    ``fit_samples`` caps the states an estimator is fitted on (0 = all, None = the estimator's entry in
    ``DEFAULT_FIT_SAMPLES``); ``chunk_size`` is how many states are scored at once. ``bandwidth`` is
    "scott", "silverman" (rules of thumb for unit-variance data, computed for the fitted states) or a
    positive number in normalized state units.
    """

    estimator: str = "knn"
    alpha: float = 0.5
    clip_quantile: float = 0.99
    fit_samples: int | None = None
    seed: int = 0
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
    flow_steps: int = 500
    flow_batch: int = 1024
    flow_lr: float = 1e-3
    device: str = "auto"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ObdError` naming the first field with an invalid value."""
        if self.estimator not in ESTIMATORS:
            raise ObdError(f"density.estimator: expected one of {list(ESTIMATORS)}, got {self.estimator!r}")
        if not (isinstance(self.alpha, (int, float)) and 0.0 < self.alpha <= 1.0):
            raise ObdError(f"density.alpha: expected a number in (0, 1], got {self.alpha!r}")
        if not (isinstance(self.clip_quantile, (int, float)) and 0.0 < self.clip_quantile <= 1.0):
            raise ObdError(f"density.clip_quantile: expected a number in (0, 1], got {self.clip_quantile!r}")
        if isinstance(self.bandwidth, str):
            if self.bandwidth not in ("scott", "silverman"):
                raise ObdError(f"density.bandwidth: expected 'scott', 'silverman' or a positive number, "
                               f"got {self.bandwidth!r}")
        elif not (math.isfinite(self.bandwidth) and self.bandwidth > 0):
            raise ObdError(f"density.bandwidth: expected 'scott', 'silverman' or a positive number, "
                           f"got {self.bandwidth!r}")
        if self.fit_samples is not None and (isinstance(self.fit_samples, bool)
                                             or not isinstance(self.fit_samples, int) or self.fit_samples < 0):
            raise ObdError(f"density.fit_samples: expected an integer >= 0 or None, got {self.fit_samples!r}")
        n_jobs = self.n_jobs
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
            raise ObdError(f"density.n_jobs: expected -1 (all cores) or an integer >= 1, got {self.n_jobs!r}")
        for name, lo in (("chunk_size", 1), ("k", 1), ("components", 1),
                         ("gmm_max_iter", 1), ("flow_layers", 1), ("flow_hidden", 1), ("flow_steps", 0),
                         ("flow_batch", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ObdError(f"density.{name}: expected an integer >= {lo}, got {value!r}")
        for name in ("kde_rtol", "gmm_reg_covar", "flow_lr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ObdError(f"density.{name}: expected a finite number >= 0, got {value!r}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                raise ObdError(f"density.device: expected 'auto', 'cpu' or 'cuda[:i]', "
                               f"got {self.device!r}") from None


@dataclass
class SDWStats:
    """Diagnostics of one set of SDW weights (all weights have mean 1).

    ``ess_fraction`` = (sum w)^2 / (N sum w^2): the effective sample size of a weighted batch as a
    fraction of its size. ``clipped_fraction``: states holding the clip level (= ``max_weight``).
    ``log_density_q01`` / ``q99``: 1% and 99% quantiles of log p(s) (nats; kNN up to its bias).
    """

    estimator: str
    num_states: int
    alpha: float
    clip_quantile: float
    max_weight: float
    min_weight: float
    ess_fraction: float
    clipped_fraction: float
    log_density_q01: float
    log_density_q99: float
    seconds: float

    def summary(self) -> str:
        return (f"SDW[{self.estimator}] N={self.num_states} alpha={self.alpha} clip_q={self.clip_quantile}: "
                f"w in [{self.min_weight:.3g}, {self.max_weight:.3g}], ESS {100 * self.ess_fraction:.1f}%, "
                f"clipped {100 * self.clipped_fraction:.2f}%, log p 1%-99% "
                f"[{self.log_density_q01:.1f}, {self.log_density_q99:.1f}] ({self.seconds:.1f} s)")


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
    return np.sort(np.random.default_rng(cfg.seed).choice(n, size=m, replace=False))


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
    perm = np.random.default_rng(cfg.seed + 1).permutation(idx)
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
                                             random_state=cfg.seed).fit(rows),
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


def _flow_log_density(x: np.ndarray, cfg: DensityConfig) -> np.ndarray:
    n, d = x.shape
    device = _device(cfg)
    idx = _fit_indices(n, cfg)
    fit = torch.as_tensor(x[idx], dtype=torch.float32, device=device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        flow = MAF(d, cfg.flow_layers, cfg.flow_hidden).to(device)
    opt = torch.optim.Adam(flow.parameters(), lr=cfg.flow_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.flow_steps, 1))
    batches = np.random.default_rng(cfg.seed + 2).integers(0, idx.size, size=(cfg.flow_steps, cfg.flow_batch))
    for b in _bar(batches, "MAF fit", len(batches), cfg.flow_steps > 50):
        loss = -flow.log_prob(fit[torch.as_tensor(b, device=device)]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    out = np.empty(n)
    with torch.no_grad():
        for s in _chunks(n, cfg, "MAF log p(s)"):
            e = min(n, s + cfg.chunk_size)
            block = torch.as_tensor(x[s:e], dtype=torch.float32, device=device)
            out[s:e] = flow.log_prob(block).double().cpu().numpy()
    if not np.isfinite(out).all():
        raise ObdError(f"density.flow_lr: the MAF diverged (non-finite log p); lower flow_lr (got {cfg.flow_lr})")
    return out


_ESTIMATE = {"kde": _kde_log_density, "knn": _knn_log_density, "gmm": _gmm_log_density, "flow": _flow_log_density}


def log_density(normalized_states: np.ndarray | torch.Tensor, cfg: DensityConfig | None = None,
                progress: bool = True) -> np.ndarray:
    """Estimate ``log p(s)`` (nats) of every state under the dataset the states form.

    ``normalized_states`` (N, d): states in normalized space (dataset mean/std), numpy or torch.
    Returns (N,) float64. The kNN estimate is biased by a constant that cancels in the weights.
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


def weights_from_log_density(log_p: np.ndarray, alpha: float = 0.5, clip_quantile: float = 0.99) -> np.ndarray:
    """SDW weights ``p^-alpha``, clipped at their ``clip_quantile`` quantile, mean 1: (N,) -> (N,) float32.

    Computed on ``z = -alpha log p``: with ``c`` the ``clip_quantile`` order statistic of z
    (``inverted_cdf``, so clipping z equals clipping ``exp(z)``), ``w = exp(min(z, c) - c) / mean``.
    """
    DensityConfig(alpha=alpha, clip_quantile=clip_quantile)  # field checks, named as in the config
    log_p = np.asarray(log_p, dtype=np.float64)
    if log_p.ndim != 1 or log_p.size == 0 or not np.isfinite(log_p).all():
        raise ObdError(f"log_density: expected a non-empty 1-D array of finite values, got shape {log_p.shape}")
    z = -alpha * log_p
    c = np.quantile(z, clip_quantile, method="inverted_cdf")
    w = np.exp(np.minimum(z, c) - c)
    return (w / w.mean()).astype(np.float32)


def sdw_weights_with_stats(normalized_states: np.ndarray | torch.Tensor,
                           cfg: DensityConfig | None = None, progress: bool = True) -> tuple[np.ndarray, SDWStats]:
    """SDW weights (N,) float32 with mean 1 (see the module docstring) and their :class:`SDWStats`."""
    cfg = cfg or DensityConfig()
    t0 = time.perf_counter()
    log_p = log_density(normalized_states, cfg, progress)
    w = weights_from_log_density(log_p, cfg.alpha, cfg.clip_quantile)
    w64 = w.astype(np.float64)
    q01, q99 = np.quantile(log_p, [0.01, 0.99])
    stats = SDWStats(estimator=cfg.estimator, num_states=int(w.size), alpha=float(cfg.alpha),
                     clip_quantile=float(cfg.clip_quantile), max_weight=float(w.max()), min_weight=float(w.min()),
                     ess_fraction=float(w64.sum() ** 2 / (w.size * (w64 ** 2).sum())),
                     clipped_fraction=float(np.mean(w == w.max())), log_density_q01=float(q01),
                     log_density_q99=float(q99), seconds=time.perf_counter() - t0)
    log.info(stats.summary())
    return w, stats


def sdw_weights(normalized_states: np.ndarray | torch.Tensor, cfg: DensityConfig | None = None,
                progress: bool = True) -> np.ndarray:
    """SDW weights ``w_i ~ p(s_i)^-alpha`` for (N, d) normalized states: (N,) float32, clipped, mean 1."""
    return sdw_weights_with_stats(normalized_states, cfg, progress)[0]
