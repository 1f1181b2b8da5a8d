"""SDW's hyperparameters: :class:`DensityConfig`, the ``density`` section of a distillation config.

Torch-free, so config checks and ``--help`` stay fast; the estimators themselves are :mod:`obd.distill.density`,
the weights :mod:`obd.distill.sdw`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from obd.config import DEVICE_NAME, check_types, is_number
from obd.errors import ObdError

ESTIMATORS = ("kde", "knn", "gmm", "flow")
MODES = ("weight", "sample")


@dataclass
class DensityConfig:
    """How SDW (``objective: sdw``) estimates log p(s) and turns it into weights (:mod:`obd.distill.sdw`).

    Weights: ``target_ess`` is the effective-sample-size fraction over the whole dataset that alpha is
    solved for; ``alpha`` set (in (0, 1]) overrides the solve with a fixed tempering; ``floor`` is the
    uniform share of the floor mix ``w' = floor + (1 - floor) w``; ``clip_quantile`` clips the tempered
    weight at that quantile (1 = off); ``mode`` ``weight`` multiplies the outer error by w, ``sample``
    draws the outer batch with probability proportional to w; a run warns when the outer loss's ESS
    fraction is below ``warn_ess``. ``value_bands`` K >= 2 makes the weighting value-neutral: the states
    are split into K equal-count bands of the teacher's Q1(s, a_det) (the Av-PBC factor) and the
    weights are rescaled to mean 1 inside each band, so SDW moves weight only between states of similar
    value and the outer batch keeps Av-PBC's distribution of Q (0 = off).

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
    value_bands: int = 0
    fit_samples: int | None = None
    seed: int | None = None
    chunk_size: int = 50_000
    # kde
    bandwidth: float | str = "scott"
    # relative tolerance of sklearn's tree-based kernel sums: log p within about kde_rtol nats
    kde_rtol: float = 0.05
    # CPU threads for scikit-learn and its BLAS (-1 = all): one, since on a shared machine BLAS threads
    # that wait on each other slow a GMM fit down many times over
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
        check_types(self, "density.")
        if self.alpha is not None and not (is_number(self.alpha) and 0.0 < self.alpha <= 1.0):
            raise ObdError(f"density.alpha: expected a number in (0, 1] or null (solve for target_ess), "
                           f"got {self.alpha!r}")
        # (name, whether 0 is allowed, whether 1 is allowed)
        for name, zero, one in (("target_ess", False, False), ("floor", True, False), ("warn_ess", True, True),
                                ("flow_holdout", False, False)):
            value = getattr(self, name)
            in_range = (0.0 < value or zero and value == 0.0) and (value < 1.0 or one and value == 1.0)
            if not (is_number(value) and in_range):
                raise ObdError(f"density.{name}: expected a number in {'[' if zero else '('}0, 1{']' if one else ')'}, "
                               f"got {value!r}")
        if not (is_number(self.clip_quantile) and 0.0 < self.clip_quantile <= 1.0):
            raise ObdError(f"density.clip_quantile: expected a number in (0, 1], got {self.clip_quantile!r}")
        if isinstance(self.bandwidth, str):
            if self.bandwidth not in ("scott", "silverman"):
                raise ObdError(f"density.bandwidth: expected 'scott', 'silverman' or a positive number, "
                               f"got {self.bandwidth!r}")
        elif not (is_number(self.bandwidth) and self.bandwidth > 0):
            raise ObdError(f"density.bandwidth: expected 'scott', 'silverman' or a positive number, "
                           f"got {self.bandwidth!r}")
        if isinstance(self.value_bands, bool) or not isinstance(self.value_bands, int) or self.value_bands < 0 \
                or self.value_bands == 1:
            raise ObdError(f"density.value_bands: expected 0 (off) or an integer >= 2, got {self.value_bands!r}")
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
            if not (is_number(value) and value >= 0):
                raise ObdError(f"density.{name}: expected a finite number >= 0, got {value!r}")
        if self.device != "auto" and not DEVICE_NAME.match(str(self.device)):
            raise ObdError(f"density.device: expected 'auto', 'cpu' or 'cuda[:i]', got {self.device!r}")

    @property
    def rng_seed(self) -> int:
        """The seed the estimators draw from (0 when ``seed`` is null outside a run)."""
        return 0 if self.seed is None else self.seed
