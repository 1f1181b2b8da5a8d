"""SDW weights from state log-densities: tempering chosen by effective sample size, floor, clip, and
the outer-batch sampler (state-density weighted distillation; Lei, Cheng, Tao 2025).

SDW (``objective: sdw``) makes rare states count more in Av-PBC's outer objective. From ``log p(s_i)``
(:mod:`obd.distill.density`) the weight of real state i is, all in log space:

    z_i = -alpha * log p(s_i)                    (tempering, alpha in (0, 1])
    c   = the clip_quantile order statistic of z  (np.quantile, method "inverted_cdf"; 1 = no clip)
    v_i = exp(min(z_i, c) - c) / mean(exp(min(z, c) - c))
    w_i = floor + (1 - floor) * v_i               (floor mix: every state keeps at least ``floor``)

so ``mean(w) = 1`` over the dataset. With ``value_bands`` K (value-neutral SDW), the states are split
into K equal-count bands b(i) of the teacher's Q1(s_i, a_det) and v is renormalized inside each band,
``v_i <- v_i / mean_{j: b(j) = b(i)} v_j``: every band keeps its uniform share of the weight, so the
outer batch holds as much of each value level as Av-PBC's and rare states gain weight only against
states of similar value. A fixed alpha is a poor knob: how much of the batch it leaves effective depends
on the data (measured: docs/results.md, "Figures that code comments once quoted"). Instead alpha is
*solved* so that the weights keep a
target effective sample size fraction over the whole dataset,

    ESS(w) = (sum_i w_i)^2 / (N sum_i w_i^2)     (= 1 / mean(w^2) at mean 1).

ESS falls monotonically as alpha grows (with clip level c scaling with alpha, ``log mean(e^{alpha y})``
is convex in alpha, and the floor mix maps ``mean(v^2)`` monotonically to ``mean(w^2)``), so the
root is found by :func:`scipy.optimize.brentq` on (0, 1]; when even alpha = 1 keeps the ESS above
the target, alpha = 1 is used. An explicit ``alpha`` skips the solve.

The weights enter the outer loop in one of two ways (``DensityConfig.mode``): ``weight`` multiplies
each state's outer error by w (states drawn uniformly), ``sample`` draws the B outer states with
probability ``w_i / sum w`` (:class:`OuterSampler`, ``torch.multinomial`` on the device, from the
engine's generator) and leaves the error unweighted; both have the same expected outer objective.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import brentq

from obd.distill.density import fit_log_density
from obd.distill.density_config import DensityConfig
from obd.errors import ObdError

#: weight quantiles reported in :class:`SDWStats` (fractions)
WEIGHT_QUANTILES = (0.01, 0.05, 0.5, 0.95, 0.99)


def clean_log_density(log_p: np.ndarray) -> np.ndarray:
    """``log p`` (N,) as float64 with ``-inf`` / ``+inf`` replaced by the smallest / largest finite value.

    A density estimate that underflows (``-inf``) marks the rarest states, which then share the largest
    weight instead of an infinite one. NaN, or no finite value at all, is an error.
    """
    log_p = np.asarray(log_p, dtype=np.float64)
    if log_p.ndim != 1 or log_p.size == 0 or np.isnan(log_p).any():
        raise ObdError(f"log_density: expected a non-empty 1-D array without NaN, got shape {log_p.shape}"
                       + (" with NaN" if log_p.size and np.isnan(log_p).any() else ""))
    finite = np.isfinite(log_p)
    if finite.all():
        return log_p
    if not finite.any():
        return np.zeros_like(log_p)  # all infinite alike: no state is rarer than another
    return np.clip(log_p, log_p[finite].min(), log_p[finite].max())


def value_band_labels(values: np.ndarray, bands: int) -> np.ndarray:
    """Band index in [0, bands) of each of ``values`` (N,): equal-count bands by rank (ties broken by
    position), band 0 the lowest values."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or not np.isfinite(values).all():
        raise ObdError(f"SDW value bands: expected finite teacher Q values (N,), got shape {values.shape}"
                       + ("" if values.ndim != 1 else " with non-finite entries"))
    if not 2 <= bands <= values.size:
        raise ObdError(f"density.value_bands: expected 2 to {values.size} bands (the number of states), got {bands}")
    ranks = np.empty(values.size, dtype=np.int64)
    ranks[np.argsort(values, kind="stable")] = np.arange(values.size)
    return ranks * bands // values.size


def _unit_weights(log_p: np.ndarray, alpha: float, clip_quantile: float,
                  bands: np.ndarray | None = None) -> np.ndarray:
    """``v`` of the module docstring, float64 with mean 1 (and mean 1 in every band of ``bands`` (N,));
    ``log_p`` already cleaned."""
    z = -alpha * log_p
    c = np.quantile(z, clip_quantile, method="inverted_cdf")
    v = np.exp(np.minimum(z, c) - c)  # in (0, 1]: the clip level (or the maximum) becomes 1, nothing overflows
    if bands is not None:
        v = v / (np.bincount(bands, v) / np.bincount(bands))[bands]
    return v / v.mean()


def ess_fraction(weights: np.ndarray) -> float:
    """``(sum w)^2 / (N sum w^2)`` in (0, 1] for non-negative ``weights`` (N,)."""
    w = np.asarray(weights, dtype=np.float64)
    return float(w.sum() ** 2 / (w.size * np.square(w).sum()))


def _check_weight_args(alpha: float, clip_quantile: float, floor: float) -> None:
    # the same checks, named the same way, as the config fields
    DensityConfig(alpha=alpha, clip_quantile=clip_quantile, floor=floor)


def weights_from_log_density(log_p: np.ndarray, alpha: float = 0.5, clip_quantile: float = 0.99,
                             floor: float = 0.0, bands: np.ndarray | None = None) -> np.ndarray:
    """SDW weights ``w`` (N,) float32, mean 1, from ``log_p`` (N,) for a fixed ``alpha`` (module docstring);
    ``bands`` (N,) int: value-band labels (:func:`value_band_labels`) to renormalize within."""
    _check_weight_args(alpha, clip_quantile, floor)
    v = _unit_weights(clean_log_density(log_p), alpha, clip_quantile, bands)
    return (floor + (1.0 - floor) * v).astype(np.float32)


def solve_alpha(log_p: np.ndarray, target_ess: float, clip_quantile: float = 1.0, floor: float = 0.0,
                xtol: float = 1e-6, bands: np.ndarray | None = None) -> float:
    """The alpha in (0, 1] whose weights have ``ess_fraction == target_ess`` over all of ``log_p`` (N,)
    (renormalized within ``bands`` (N,) when given).

    Returns 1.0 when alpha = 1 still keeps the ESS at or above the target (a nearly flat density, or a
    floor too high for the target). With bands the ESS need not be monotone in alpha; the root found
    is one where the ESS crosses the target.
    """
    _check_weight_args(0.5, clip_quantile, floor)
    if not 0.0 < target_ess < 1.0:
        raise ObdError(f"density.target_ess: expected a number in (0, 1), got {target_ess!r}")
    log_p = clean_log_density(log_p)

    def gap(alpha: float) -> float:
        v = _unit_weights(log_p, alpha, clip_quantile, bands)
        # mean(w^2) of the floor mix, from mean(v^2) (both have mean 1)
        second = 1.0 + (1.0 - floor) ** 2 * (np.mean(np.square(v)) - 1.0)
        return math.log(1.0 / second) - math.log(target_ess)

    if gap(1.0) >= 0.0:
        return 1.0
    return float(brentq(gap, 1e-12, 1.0, xtol=xtol))


@dataclass
class SDWStats:
    """Diagnostics of one set of SDW weights over the whole dataset (all weights have mean 1).

    ``ess_fraction``: ESS / N of the density weights. ``outer_ess_fraction``: the same for what the outer
    loss effectively weights: with Av-PBC's Q factor q, ``(sum w q)^2 / (N sum w^2 q^2)`` in ``weight``
    mode and ``(sum w q)^2 / (sum w  sum w q^2)`` (the ESS of q under draws proportional to w) in
    ``sample`` mode; None until the engine fills it in. ``weight_quantiles``: ``{"q01": ..., "q99": ...}``.
    ``rare5_share``: share of the total weight held by the 5% of states with the lowest log p.
    ``clipped_fraction``: states holding the maximum weight. ``log_density_q01``/``q99``: 1%/99% quantiles
    of log p (nats; kNN up to its bias). ``heldout_log_likelihood``: mean log p of states the estimator
    did not fit on (see :func:`obd.distill.density.fit_log_density`); None for weights given directly.
    ``value_bands``: the number of teacher-Q bands the weights were renormalized in (0: none).
    ``q_shift``: how far the weights move the mean teacher Q of the outer states, ``(E_w[Q] - E[Q]) / std(Q)``
    (negative: SDW favours low-value states); None until the engine fills it in.
    """

    estimator: str
    mode: str
    num_states: int
    alpha: float
    alpha_solved: bool
    target_ess: float | None
    floor: float
    clip_quantile: float
    ess_fraction: float
    max_weight: float
    min_weight: float
    weight_quantiles: dict[str, float]
    rare5_share: float | None
    clipped_fraction: float
    log_density_q01: float | None
    log_density_q99: float | None
    heldout_log_likelihood: float | None
    seconds: float
    outer_ess_fraction: float | None = None
    value_bands: int = 0
    q_shift: float | None = None
    estimator_info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        how = (f"alpha {self.alpha:.4g} solved for ESS {self.target_ess:g}" if self.alpha_solved
               else f"alpha {self.alpha:.4g}")
        q = self.weight_quantiles
        text = (f"SDW[{self.estimator}, {self.mode}] N={self.num_states} {how}, floor {self.floor:g}, "
                f"clip_q {self.clip_quantile:g}" + (f", {self.value_bands} value bands" if self.value_bands else "")
                + f": ESS {100 * self.ess_fraction:.1f}%")
        if self.outer_ess_fraction is not None:
            text += f" (outer loss {100 * self.outer_ess_fraction:.1f}%)"
        text += (f"; w 1/5/50/95/99% {q['q01']:.3g}/{q['q05']:.3g}/{q['q50']:.3g}/{q['q95']:.3g}/{q['q99']:.3g}, "
                 f"max {self.max_weight:.3g}")
        if self.rare5_share is not None:
            text += f", rarest 5% hold {100 * self.rare5_share:.1f}%"
        if self.q_shift is not None:
            text += f"; teacher Q shift {self.q_shift:+.2f} std"
        if self.heldout_log_likelihood is not None:
            text += f"; held-out log-lik {self.heldout_log_likelihood:.2f}"
        return text + f" ({self.seconds:.1f} s)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def weight_stats(weights: np.ndarray, log_p: np.ndarray | None = None, **fields: Any) -> SDWStats:
    """:class:`SDWStats` of ``weights`` (N,) (and the ``log_p`` (N,) they came from, when known);
    ``fields`` fill the descriptive entries (estimator, mode, alpha, ...)."""
    w = np.asarray(weights, dtype=np.float64)
    qs = np.quantile(w, WEIGHT_QUANTILES)
    rare5 = q01 = q99 = None
    if log_p is not None:
        lp = clean_log_density(log_p)
        k = max(1, int(math.ceil(0.05 * w.size)))
        rarest = np.argpartition(lp, k - 1)[:k]
        rare5 = float(w[rarest].sum() / w.sum())
        q01, q99 = (float(v) for v in np.quantile(lp, [0.01, 0.99]))
    defaults = {"estimator": "given", "mode": "weight", "alpha": float("nan"), "alpha_solved": False,
                "target_ess": None, "floor": 0.0, "clip_quantile": 1.0, "heldout_log_likelihood": None,
                "seconds": 0.0}
    return SDWStats(num_states=int(w.size), ess_fraction=ess_fraction(w), max_weight=float(w.max()),
                    min_weight=float(w.min()),
                    weight_quantiles={f"q{round(100 * p):02d}": float(v) for p, v in zip(WEIGHT_QUANTILES, qs)},
                    rare5_share=rare5, clipped_fraction=float(np.mean(w >= w.max() * (1 - 1e-6))),
                    log_density_q01=q01, log_density_q99=q99, **{**defaults, **fields})


def sdw_weights_with_stats(normalized_states: np.ndarray | torch.Tensor, cfg: DensityConfig | None = None,
                           progress: bool = True, values: np.ndarray | None = None) -> tuple[np.ndarray, SDWStats]:
    """SDW weights (N,) float32, mean 1, for (N, d) normalized states, and their :class:`SDWStats`.

    ``cfg.alpha`` set: that alpha; otherwise alpha solved for ``cfg.target_ess`` (:func:`solve_alpha`).
    ``values`` (N,): the teacher's Q of each state, needed when ``cfg.value_bands`` is set.
    """
    cfg = cfg or DensityConfig()
    bands = None
    if cfg.value_bands:
        if values is None:
            raise ObdError("density.value_bands: needs the teacher's Q of every state (objective sdw with a teacher)")
        bands = value_band_labels(values, cfg.value_bands)
    t0 = time.perf_counter()
    log_p, info = fit_log_density(normalized_states, cfg, progress)
    solved = cfg.alpha is None
    alpha = (solve_alpha(log_p, cfg.target_ess, cfg.clip_quantile, cfg.floor, bands=bands) if solved
             else float(cfg.alpha))
    w = weights_from_log_density(log_p, alpha, cfg.clip_quantile, cfg.floor, bands)
    stats = weight_stats(w, log_p, estimator=cfg.estimator, mode=cfg.mode, alpha=alpha, alpha_solved=solved,
                         target_ess=cfg.target_ess if solved else None, floor=cfg.floor,
                         clip_quantile=cfg.clip_quantile, heldout_log_likelihood=info["heldout_log_likelihood"],
                         seconds=time.perf_counter() - t0, value_bands=cfg.value_bands, estimator_info=info)
    return w, stats


def sdw_weights(normalized_states: np.ndarray | torch.Tensor, cfg: DensityConfig | None = None,
                progress: bool = True, values: np.ndarray | None = None) -> np.ndarray:
    """SDW weights (N,) float32, mean 1, for (N, d) normalized states (see :func:`sdw_weights_with_stats`)."""
    return sdw_weights_with_stats(normalized_states, cfg, progress, values)[0]


class OuterSampler:
    """Draws the B real-state indices of an outer step from the engine's generator.

    Uniform with replacement (``torch.randint``) without ``probabilities``; otherwise
    ``torch.multinomial`` with replacement over ``probabilities`` (N,) (any non-negative scale, kept on
    ``device``), so a resumed run that restores the generator draws the same batches.
    """

    # torch.multinomial's limit on the number of categories
    MAX_CATEGORIES = 2 ** 24

    def __init__(self, num_states: int, device: torch.device, probabilities: np.ndarray | None = None):
        self.num_states = num_states
        self.probabilities = None
        if probabilities is not None:
            p = np.asarray(probabilities, dtype=np.float64)
            if p.shape != (num_states,) or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
                raise ObdError(f"SDW sampling: expected {num_states} finite non-negative weights with a positive "
                               f"sum, got shape {p.shape}")
            if num_states > self.MAX_CATEGORIES:
                raise ObdError(f"density.mode: 'sample' draws from at most {self.MAX_CATEGORIES} states "
                               f"(torch.multinomial), the dataset has {num_states}; use mode 'weight'")
            # float64: with float32 probabilities torch.multinomial under-draws the last of ~10^6 categories
            self.probabilities = torch.as_tensor(p / p.sum(), dtype=torch.float64, device=device)
        self.device = device

    def draw(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """(batch,) int64 indices into the real states."""
        if self.probabilities is None:
            return torch.randint(self.num_states, (batch,), generator=generator, device=self.device)
        return torch.multinomial(self.probabilities, batch, replacement=True, generator=generator)


@dataclass
class SDWSetup:
    """What SDW hands the engine: ``loss_weights`` (N,) for ``weight`` mode or None, the
    :class:`OuterSampler`, and the :class:`SDWStats` logged at the start of every run."""

    loss_weights: np.ndarray | None
    sampler_weights: np.ndarray | None
    stats: SDWStats

    @classmethod
    def create(cls, normalized_states: np.ndarray, cfg: DensityConfig | None, weights: np.ndarray | None,
               progress: bool = True, values: np.ndarray | None = None) -> SDWSetup:
        """Estimate the weights from ``cfg`` (with the teacher's Q ``values`` (N,) for value bands) or take
        ``weights`` (N,) as given (then ``cfg`` may be None: ``weight`` mode); split them by mode."""
        if weights is None:
            weights, stats = sdw_weights_with_stats(normalized_states, cfg, progress, values)
        else:
            weights = np.asarray(weights, dtype=np.float32)
            stats = weight_stats(weights, mode=cfg.mode if cfg else "weight")
        sample = stats.mode == "sample"
        return cls(None if sample else weights, weights if sample else None, stats)

    def record_outer_ess(self, q_values: torch.Tensor | None) -> None:
        """Fill ``stats.outer_ess_fraction`` (and ``stats.q_shift``) from the objective's per-state factor
        ``q_values`` (N,) (None: 1)."""
        w = np.asarray(self.loss_weights if self.loss_weights is not None else self.sampler_weights,
                       dtype=np.float64)
        q = np.ones_like(w) if q_values is None else q_values.detach().cpu().double().numpy()
        if q_values is not None and q.std() > 0:
            self.stats.q_shift = float(((w * q).sum() / w.sum() - q.mean()) / q.std())
        if self.stats.mode == "sample":
            value = (w * q).sum() ** 2 / (w.sum() * (w * q * q).sum())
        else:
            value = (w * q).sum() ** 2 / (w.size * np.square(w * q).sum())
        self.stats.outer_ess_fraction = float(value)

    def announce(self, warn_below: float) -> str:
        """Print the summary on stderr, with a warning line when the outer ESS is below ``warn_below``;
        returns the warning ('' if none)."""
        print(self.stats.summary(), file=sys.stderr)
        ess = self.stats.outer_ess_fraction if self.stats.outer_ess_fraction is not None else self.stats.ess_fraction
        if ess >= warn_below:
            return ""
        warning = (f"warning: SDW leaves an effective sample size of {100 * ess:.1f}% of each outer batch "
                   f"(below density.warn_ess = {100 * warn_below:g}%): the outer gradient is dominated by a few "
                   f"states; raise density.target_ess or density.floor")
        print(warning, file=sys.stderr)
        return warning
