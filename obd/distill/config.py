"""The distillation's hyperparameters: :class:`DistillConfig` and its sections, loadable from YAML with
``key=value`` overrides, and the run's inputs (:class:`RunInputs`: dataset and teacher specs) kept beside it.

A config holds hyperparameters only; the dataset and teacher are objects given to
:meth:`DistillConfig.create` (d3rlpy's way), or specs in :class:`RunInputs` that the command line and a run
folder's ``config.yaml`` carry and that are loaded at the edge (:mod:`obd.distill.run`). Choices are
``Literal`` types; :meth:`DistillConfig.validate` checks a config without changing it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from obd.config import (
    DEVICE_NAME,
    check_types,
    coerce_nested,
    config_to_dict,
    is_number,
    load_config,
    merge_config,
    parse_overrides,
    read_config_sections,
    with_objective,
    with_task,
)
from obd.distill.density_config import DensityConfig
from obd.distill.inner_config import InnerConfig
from obd.distill.registry import OBJECTIVES, ObjectiveName
from obd.distill.student_config import StudentConfig
from obd.errors import ObdError

#: the keys of a run's config file that name its inputs rather than hyperparameters
INPUT_KEYS = ("dataset", "teacher")


@dataclass
class CoverageConfig:
    """State coverage (:mod:`obd.distill.coverage`): outer states and initial synthetic states beyond the data,
    labelled by the teacher (PBC, Av-PBC, SDW).

    ``scale`` sigma of the outer batch's perturbation in normalized state units (``mixup``: the largest
    interpolation weight, at most 1); 0 = off, the papers' objective. ``clean`` share of each outer batch
    kept at its real states. ``kind``: ``gaussian`` noise around real states, ``mixup`` towards another real
    state, ``synthetic`` noise around the synthetic set's own states. ``shape``: ``isotropic`` or
    ``covariance`` (noise with the normalized data's covariance). ``q``: the Q in Av-PBC's weight at a
    perturbed state, ``perturbed`` Q1(s~, pi*(s~)), ``clean`` the source state's, ``none`` the dataset mean.
    ``init_scale``: Gaussian noise of that sigma on the initial synthetic states (shaped by ``shape``),
    whose initial actions are then the teacher's there; 0 = the init's own pairs.
    """

    scale: float = 0.0
    clean: float = 0.0
    kind: Literal["gaussian", "mixup", "synthetic"] = "gaussian"
    shape: Literal["isotropic", "covariance"] = "isotropic"
    q: Literal["perturbed", "clean", "none"] = "perturbed"
    init_scale: float = 0.0

    @property
    def outer_enabled(self) -> bool:
        return self.scale > 0 and self.clean < 1

    def validate(self) -> None:
        """Raise :class:`ObdError` naming the first ``coverage.*`` key with an invalid value (the choices are
        checked with every config's types, :func:`obd.config.check_types`)."""
        for name in ("scale", "init_scale"):
            value = getattr(self, name)
            if not (is_number(value) and value >= 0):
                raise ObdError(f"config key 'coverage.{name}': expected a number >= 0 (0 = off), got {value!r}")
        if self.kind == "mixup" and self.scale > 1:
            raise ObdError(f"config key 'coverage.scale': with kind mixup it is the largest interpolation weight, "
                           f"expected a number in [0, 1], got {self.scale!r}")
        if not (is_number(self.clean) and 0 <= self.clean <= 1):
            raise ObdError(f"config key 'coverage.clean': expected a share in [0, 1], got {self.clean!r}")


@dataclass
class ValueMetricConfig:
    """Value-aware action error (:mod:`obd.distill.value_metric`): each action dimension's squared error in H
    weighted by the teacher critic's drop along it. ``step`` sigma of the central differences in action
    units (0 = off, the papers' plain squared error); ``floor`` the share of the weight every dimension keeps
    whatever the critic's curvature, in [0, 1]; ``at``: the metric of a perturbed outer state (state
    coverage) is the critic's there (``perturbed``) or its clean source state's (``clean``: the critic is
    least reliable off the data); ``kind``: ``diagonal`` weights each dimension by its own curvature,
    ``trace`` weights a state's dimensions alike by their mean (only states are reweighted)."""

    step: float = 0.0
    floor: float = 0.1
    at: Literal["perturbed", "clean"] = "perturbed"
    kind: Literal["diagonal", "trace"] = "diagonal"

    def validate(self) -> None:
        """Raise :class:`ObdError` naming the first ``value_metric.*`` key with an invalid value."""
        if not (is_number(self.step) and 0 <= self.step <= 1):
            raise ObdError(f"config key 'value_metric.step': expected a number in [0, 1] (0 = off), got "
                           f"{self.step!r}")
        if not (is_number(self.floor) and 0 <= self.floor <= 1):
            raise ObdError(f"config key 'value_metric.floor': expected a share in [0, 1], got {self.floor!r}")


@dataclass
class OnPolicyConfig:
    """On-policy states (:mod:`obd.distill.onpolicy`): the outer objective also scores the student on states
    its rollouts visit, labelled by the teacher (PBC, Av-PBC, SDW; the dataset's task must be a simulator obd
    knows). ``share`` of every outer batch drawn from the buffer of visited states (0 = off); every ``every``
    outer steps the inner loop's trained student plays ``episodes`` episodes (at most ``max_steps`` env steps
    each, 0 = the task's limit); the buffer keeps the last ``capacity`` visited states. ``q``: the Q in
    Av-PBC's weight at a visited state, ``state`` Q1(s, pi*(s)) there or ``mean`` the dataset's mean Q.
    ``novelty`` q in (0, 1) gates the visited states by their distance to the data against the q-quantile
    of the data's own nearest-neighbour distances (0 = no gate): with ``gate`` ``off_data`` a drawn visited
    state takes its batch row only when it lies beyond that distance, with ``on_data`` only when it lies
    within it; otherwise the data row stays. ``teacher_share`` of every outer batch drawn from the states
    of ``teacher_episodes`` episodes the teacher plays once, before the first outer step (0 = off).
    ``optional``: a dataset whose task obd cannot simulate is distilled without rollout states (a note says
    so) instead of refused, so a preset can turn them on for every dataset. ``share_end``: the share at the
    last outer step, reached linearly from ``share`` at the first (None = ``share`` throughout)."""

    share: float = 0.0
    share_end: float | None = None
    every: int = 25
    episodes: int = 1
    max_steps: int = 0
    capacity: int = 20_000
    q: Literal["state", "mean"] = "mean"
    novelty: float = 0.0
    gate: Literal["off_data", "on_data"] = "off_data"
    teacher_share: float = 0.0
    teacher_episodes: int = 5
    optional: bool = False

    @property
    def enabled(self) -> bool:
        """Whether any rollout states enter the outer batch."""
        return self.share > 0 or self.teacher_share > 0

    @property
    def key(self) -> str:
        """The key that turned the rollout states on, for error messages."""
        return "onpolicy.share" if self.share > 0 or self.teacher_share == 0 else "onpolicy.teacher_share"

    def validate(self) -> None:
        """Raise :class:`ObdError` naming the first ``onpolicy.*`` key with an invalid value."""
        if not (is_number(self.share) and 0 <= self.share < 1):
            raise ObdError(f"config key 'onpolicy.share': expected a share in [0, 1) (0 = off), got {self.share!r}")
        if self.share_end is not None and not (is_number(self.share_end) and 0 <= self.share_end < 1
                                               and self.share > 0):
            raise ObdError(f"config key 'onpolicy.share_end': expected a share in [0, 1) with onpolicy.share > 0 "
                           f"(null = onpolicy.share throughout), got {self.share_end!r} with onpolicy.share "
                           f"{self.share!r}")
        if not (is_number(self.novelty) and 0 <= self.novelty < 1):
            raise ObdError(f"config key 'onpolicy.novelty': expected a quantile in [0, 1) (0 = off), got "
                           f"{self.novelty!r}")
        most = max(self.share, self.share_end or 0.0)
        if not (is_number(self.teacher_share) and 0 <= self.teacher_share < 1 - most):
            raise ObdError(f"config key 'onpolicy.teacher_share': expected a share in [0, 1 - onpolicy.share) "
                           f"(0 = off; share_end counts too), got {self.teacher_share!r} with onpolicy.share "
                           f"{most!r}")
        for name, low in (("every", 1), ("episodes", 1), ("capacity", 1), ("max_steps", 0),
                          ("teacher_episodes", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ObdError(f"config key 'onpolicy.{name}': expected an integer >= {low}, got {value!r}")


@dataclass
class SelectConfig:
    """Set selection (:mod:`obd.distill.selection`): every ``every`` outer steps, and at the last, the set the
    run would return is scored in the simulator by ``students`` fresh students trained as the protocol trains
    them, ``episodes`` episodes each (at most ``max_steps`` env steps, 0 = the task's limit); the run returns
    the set that scored highest (their mean normalized score) instead of the last. 0 = off. The students and
    episodes are seeded apart from ``obd evaluate``'s, so a selected set's score there is a fresh draw."""

    every: int = 0
    students: int = 8
    episodes: int = 2
    max_steps: int = 0

    #: the key an error about the simulator names
    key = "select.every"

    def validate(self) -> None:
        """Raise :class:`ObdError` naming the first ``select.*`` key with an invalid value."""
        for name, low in (("every", 0), ("students", 1), ("episodes", 1), ("max_steps", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ObdError(f"config key 'select.{name}': expected an integer >= {low}, got {value!r}")


@dataclass
class OuterConfig:
    """Optimizer on the synthetic (states, actions): ``adam`` (default, the fast preset's) or ``sgd`` (with
    ``momentum``; the paper's: ``sgd``, lr 0.1, momentum 0.9, ``constant``); joint
    gradient-norm clip (0 = off); ``batch`` real states per outer step. ``schedule``: ``constant`` lr (the
    paper's) or ``cosine``, lr_k = lr_min + (lr - lr_min) (1 + cos(pi min(k, K) / K)) / 2 at outer step k
    with K = ``decay_steps`` (0: the run's ``outer_steps``, fixed when the run starts, so a resumed run that
    extends ``outer_steps`` keeps its original horizon). ``action``: the trained student's
    action the outer error is measured on, ``mean`` = tanh(mean) (the action it is evaluated with) or
    ``sample`` = a reparameterized sample tanh(mean + std eps) drawn fresh per real state (the published
    code's; tanh-Gaussian students only). ``skip_spikes``: skip the outer step (the synthetic set and the
    optimizer state stay as they are) when the gradient norm is not finite or exceeds ``skip_spikes`` times
    the running mean of the accepted steps' norms (exponential, weight ``engine.SPIKE_EMA`` on the newest); 0 = off.
    Why: at a large inner lr some student inits make the unrolled inner loop chaotic, and its meta-gradient
    grows by orders of magnitude; even clipped, such a step moves the set in an arbitrary direction and
    inflates Adam's second moment, which then damps the steps that follow. ``ema``: the run returns and
    checkpoints the exponential moving average of the synthetic set over outer steps (Polyak averaging,
    ``x_bar_k = ema x_bar_{k-1} + (1 - ema) x_k``, bias-corrected by ``1 - ema^k``) instead of the set of the
    last step; the optimizer keeps stepping the raw set. 0 = off. Why: the set of one outer step is one point
    of a noisy trajectory (each step sees one student init and one batch), and students trained on the
    average of nearby points score higher on the data measured (docs/results.md, "Averaging the set").
    ``disagreement`` lambda >= 0 (needs ``inner.students`` K >= 2): H also counts lambda times the variance of
    the K students' actions around their mean, weighted like the error (:func:`obd.distill.objectives.outer_loss`);
    0 = off. Why: students of one set differ by their init alone, and the error of their mean is not what
    makes some of them fall (docs/results.md, "Students that agree"). ``state_lr_scale`` s >= 0: the synthetic
    states step at s times the outer lr, the actions at the lr (1 = the paper's; 0 = the states stay where
    ``init`` put them and only their actions are distilled, as label distillation does)."""

    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 0.01
    momentum: float = 0.0
    clip: float = 2.0
    batch: int = 2560
    schedule: Literal["constant", "cosine"] = "cosine"
    lr_min: float = 0.0
    decay_steps: int = 0
    action: Literal["mean", "sample"] = "mean"
    skip_spikes: float = 0.0
    ema: float = 0.0
    disagreement: float = 0.0
    state_lr_scale: float = 1.0

    def lr_at(self, step: int) -> float:
        """The outer learning rate for outer step ``step`` (0-based)."""
        if self.schedule == "constant" or self.decay_steps <= 0:
            return self.lr
        progress = min(step, self.decay_steps) / self.decay_steps
        return self.lr_min + (self.lr - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class DistillConfig:
    """The hyperparameters of a distillation. Defaults are the fast Av-PBC preset
    (``obd/configs/fast.yaml``: the paper's student and inner loop, an Adam outer optimizer with cosine
    decay, 3,000 outer steps), the CPU default; the paper's settings are the ``paper_avpbc`` preset. Nested
    sections may be given as dicts (``DistillConfig(inner=dict(steps=5))``). ``logger``: extra metric sinks
    besides ``metrics.jsonl``, comma-separated, ``tensorboard`` and/or ``wandb`` (see :mod:`obd.loggers`).

    ``objective``: ``dbc``, ``pbc``, ``avpbc`` or ``sdw``, the paper's SDW: Av-PBC (teacher targets, weights
    beta * Q) with each state's weight multiplied by its state-density weight, or, in ``density.mode:
    sample``, Av-PBC with the outer batch drawn in proportion to those weights. ``density``
    (:class:`DensityConfig`; null = its defaults; its ``seed`` defaults to the run's) configures the weights
    and is set only with ``sdw``. PBC, Av-PBC, SDW and the ``topq`` and ``teacher`` inits need a teacher
    (:meth:`needs_teacher`). ``init_fallback``: the init used, with a note on stderr, when ``init: teacher``
    finds no simulator for the dataset's task (null: refuse), so a preset can start every set it can on the
    teacher's states. ``init_share``: with ``init: teacher``, the share of the n_syn initial pairs drawn from
    the teacher's rollouts; the rest are distinct real pairs drawn uniformly (``random``), so the set starts on
    both the teacher's gait and the data's breadth (1 = all the teacher's). ``init_max_steps`` H: with ``init:
    teacher``, each of the teacher's episodes stops after H steps, so the set starts on the first H steps of
    more episodes, where a student that falls early spends its time (0 = the task's limit). ``init_noise``
    sigma: with ``init: teacher``, the teacher plays its action plus N(0, sigma^2) noise per action dimension in
    those rollouts (DART, Laskey et al. 2017), its states labelled by its noise-free action, so the set starts
    on the teacher's recoveries from perturbed actions as well as its gait (0 = its own action).
    ``checkpoint_every`` K writes a checkpoint every K outer steps (0 = only at the end); evaluating
    checkpoints is ``obd evaluate``'s job.
    ``q_clip``: Av-PBC (and SDW) weight by beta * max(Q, 0) instead of beta * Q (the published code does not
    clip, so a state with Q < 0 pushes the student away from the teacher). ``synthetic_actions``: ``free``
    (the paper's) or ``clamp``, projected onto [-1, 1] at init and after every outer step, the range of the
    env's actions. ``coverage`` (:class:`CoverageConfig`): outer and initial states beyond the data;
    ``value_metric`` (:class:`ValueMetricConfig`): each action dimension's error weighted by the teacher
    critic's curvature; ``onpolicy`` (:class:`OnPolicyConfig`): states the students' own rollouts visit,
    labelled by the teacher; ``select`` (:class:`SelectConfig`): the run returns the set its validation
    rollouts scored highest.
    """

    objective: ObjectiveName = "avpbc"
    beta: float = 0.02
    density: DensityConfig | None = None
    n_syn: int = 256
    init: Literal["random", "kmeans", "topq", "teacher"] = "random"
    init_fallback: Literal["random", "kmeans"] | None = None
    init_share: float = 1.0
    init_max_steps: int = 0
    init_noise: float = 0.0
    student: StudentConfig = field(default_factory=StudentConfig)
    inner: InnerConfig = field(default_factory=InnerConfig)
    outer: OuterConfig = field(default_factory=OuterConfig)
    outer_steps: int = 3000
    checkpoint_every: int = 100
    seed: int = 0
    device: str = "auto"
    teacher_chunk: int = 65536
    q_clip: bool = False
    synthetic_actions: Literal["free", "clamp"] = "free"
    coverage: CoverageConfig = field(default_factory=CoverageConfig)
    value_metric: ValueMetricConfig = field(default_factory=ValueMetricConfig)
    onpolicy: OnPolicyConfig = field(default_factory=OnPolicyConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    logger: str = ""

    def __post_init__(self) -> None:
        coerce_nested(self)
        check_types(self)

    def needs_teacher(self) -> bool:
        spec = OBJECTIVES.get(self.objective)
        return (spec is not None and spec.needs_teacher) or self.init in ("topq", "teacher")

    def validate(self) -> None:
        """Check the config alone (no files read, nothing changed); raise a one-line :class:`ObdError`
        naming the key."""
        check_types(self)
        if self.outer.action == "sample" and self.student.kind != "tanh_gaussian":
            raise ObdError("config key 'outer.action': 'sample' needs student.kind tanh_gaussian, got "
                           f"{self.student.kind!r}")
        if self.student.family != "mlp":
            raise ObdError(f"config key 'student.family': the inner loop trains mlp students only, got "
                           f"{self.student.family!r}")
        # outer_steps 0 would write the undistilled initial set as if it were distilled
        for key, value in (("n_syn", self.n_syn), ("outer_steps", self.outer_steps),
                           ("inner.steps", self.inner.steps),
                           ("inner.students", self.inner.students), ("outer.batch", self.outer.batch),
                           ("teacher_chunk", self.teacher_chunk)):
            if not value > 0:
                raise ObdError(f"config key '{key}': expected an integer > 0, got {value}")
        for key, value in (("checkpoint_every", self.checkpoint_every), ("init_max_steps", self.init_max_steps),
                           ("inner.truncate", self.inner.truncate), ("outer.decay_steps", self.outer.decay_steps)):
            if value < 0:
                raise ObdError(f"config key '{key}': expected an integer >= 0, got {value}")
        for key, value in (("inner.lr", self.inner.lr), ("outer.lr", self.outer.lr)):
            if not (math.isfinite(value) and value > 0):
                raise ObdError(f"config key '{key}': expected a number > 0, got {value}")
        for key, value in (("inner.momentum", self.inner.momentum), ("outer.momentum", self.outer.momentum)):
            if not 0 <= value < 1:
                raise ObdError(f"config key '{key}': expected a number in [0, 1), got {value}")
        for key, value in (("inner.pool", self.inner.pool), ("inner.pool_max_steps", self.inner.pool_max_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ObdError(f"config key '{key}': expected an integer >= 0, got {value!r}")
        if self.inner.pool and self.inner.pool_max_steps < self.inner.steps:
            raise ObdError(f"config key 'inner.pool_max_steps': {self.inner.pool_max_steps} is below inner.steps "
                           f"{self.inner.steps}, so no pool member would outlive one outer step")
        if self.inner.random_unroll and self.inner.truncate == 0:
            raise ObdError("config key 'inner.random_unroll': needs inner.truncate K > 0, the window "
                           "backpropagated through")
        if self.inner.truncate > self.inner.steps:
            raise ObdError(f"config key 'inner.truncate': {self.inner.truncate} exceeds inner.steps "
                           f"{self.inner.steps}")
        if not 0 < self.init_share <= 1:
            raise ObdError(f"config key 'init_share': expected a number in (0, 1], got {self.init_share!r}")
        if not self.init_noise >= 0:
            raise ObdError(f"config key 'init_noise': expected a number >= 0, got {self.init_noise!r}")
        for key, changed in (("init_share", self.init_share < 1), ("init_max_steps", self.init_max_steps != 0),
                             ("init_noise", self.init_noise > 0)):
            if changed and self.init != "teacher":
                raise ObdError(f"config key '{key}': shapes the teacher's initial states, so it is set only with "
                               f"init=teacher, got init={self.init}")
        if not (math.isfinite(self.outer.lr_min) and 0 <= self.outer.lr_min <= self.outer.lr):
            raise ObdError(f"config key 'outer.lr_min': expected a number in [0, outer.lr = {self.outer.lr}], got "
                           f"{self.outer.lr_min}")
        if not 0 <= self.outer.ema < 1:
            raise ObdError(f"config key 'outer.ema': expected a number in [0, 1) (0 = off), got {self.outer.ema}")
        lam = self.outer.disagreement
        if not (is_number(lam) and math.isfinite(lam) and lam >= 0):
            raise ObdError(f"config key 'outer.disagreement': expected a number >= 0 (0 = off), got {lam!r}")
        if lam > 0 and self.inner.students < 2:
            raise ObdError(f"config key 'outer.disagreement': the students' disagreement needs inner.students >= 2, "
                           f"got inner.students={self.inner.students}")
        scale = self.outer.state_lr_scale
        if not (is_number(scale) and math.isfinite(scale) and scale >= 0):
            raise ObdError(f"config key 'outer.state_lr_scale': expected a number >= 0 (0 = states fixed), got "
                           f"{scale!r}")
        spikes = self.outer.skip_spikes
        if not (math.isfinite(spikes) and (spikes == 0 or spikes > 1)):
            raise ObdError(f"config key 'outer.skip_spikes': expected 0 (off) or a factor > 1, got {spikes}")
        if not (math.isfinite(self.outer.clip) and self.outer.clip >= 0):
            raise ObdError(f"config key 'outer.clip': expected a number >= 0 (0 = off), got {self.outer.clip}")
        if self.density is not None:
            if not isinstance(self.density, DensityConfig):
                raise ObdError(f"config key 'density': expected a mapping of DensityConfig fields, "
                               f"got {self.density!r}")
            # configs saved before the section was typed hold an empty mapping for runs without SDW
            if self.objective != "sdw" and self.density != DensityConfig():
                raise ObdError(f"config key 'density': set only with objective=sdw (its state-density weights), "
                               f"got objective={self.objective}")
            self.density.validate()
        self.coverage.validate()
        if (self.coverage.outer_enabled or self.coverage.init_scale > 0) and \
                not OBJECTIVES[self.objective].needs_teacher:
            teacher_based = [name for name, spec in OBJECTIVES.items() if spec.needs_teacher]
            raise ObdError(f"config key 'coverage': perturbed states are labelled by the teacher, so they need "
                           f"objective {'/'.join(teacher_based)}, got objective={self.objective}")
        self.onpolicy.validate()
        if self.onpolicy.enabled and not OBJECTIVES[self.objective].needs_teacher:
            raise ObdError(f"config key '{self.onpolicy.key}': visited states are labelled by the teacher, so they "
                           f"need a teacher-based objective, got objective={self.objective}")
        self.select.validate()
        self.value_metric.validate()
        if self.value_metric.step > 0 and not OBJECTIVES[self.objective].needs_teacher:
            raise ObdError(f"config key 'value_metric.step': the metric is the teacher critic's, so it needs a "
                           f"teacher-based objective, got objective={self.objective}")
        if not DEVICE_NAME.match(str(self.device)):
            raise ObdError(f"config key 'device': expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        from obd.loggers import parse_loggers

        parse_loggers(self.logger)

    def resolved(self) -> DistillConfig:
        """A validated copy with what the run fixes when it starts: a cosine schedule's ``decay_steps`` 0 set
        to ``outer_steps``, and the ``density`` section dropped unless the objective is ``sdw``. A config this
        returned is returned as it is, so a config is validated once however many layers resolve it."""
        if getattr(self, "_resolved", False):
            return self
        self.validate()
        cfg = dataclasses.replace(self, student=dataclasses.replace(self.student),
                                  inner=dataclasses.replace(self.inner), outer=dataclasses.replace(self.outer),
                                  coverage=dataclasses.replace(self.coverage),
                                  onpolicy=dataclasses.replace(self.onpolicy),
                                  select=dataclasses.replace(self.select))
        if cfg.outer.schedule == "cosine" and cfg.outer.decay_steps == 0:
            cfg.outer.decay_steps = cfg.outer_steps
        if cfg.objective != "sdw":
            cfg.density = None
        # an attribute, not a field: it is not saved, and dataclasses.replace (any change) drops it
        object.__setattr__(cfg, "_resolved", True)
        return cfg

    def density_config(self) -> DensityConfig:
        """The SDW :class:`DensityConfig` (defaults when ``density`` is null) with its
        seed resolved (default: the run's)."""
        density = self.density or DensityConfig()
        return dataclasses.replace(density, seed=self.seed if density.seed is None else density.seed)

    def create(self, dataset: Any, teacher: Any = None, *, progress: bool = True) -> Any:
        """A :class:`obd.distill.engine.Distiller` for ``dataset`` (a :class:`~obd.data.TransitionDataset`,
        or a spec for :func:`obd.data.load_dataset`) and ``teacher`` (a ``TeacherLike``, a teacher file or
        shipped name, or None for DBC)."""
        from obd.distill.engine import Distiller, load_inputs

        device = _resolve_device(self.device)
        dataset, teacher, label = load_inputs(dataset, teacher, device)
        return Distiller(self, dataset, teacher, progress=progress, teacher_label=label, device=device)


@dataclass
class RunInputs:
    """What a run distills from, as specs: ``dataset`` (a D4RL/Minari id or file for
    :func:`obd.data.load_dataset`) and ``teacher`` (a teacher file or shipped name for
    :meth:`obd.teachers.Teacher.load`; None for DBC). Kept in a run's ``config.yaml`` beside the config."""

    dataset: str = ""
    teacher: str | None = None


def split_inputs(raw: dict[str, Any], where: str) -> tuple[dict[str, Any], RunInputs]:
    """A config file's mapping -> (the hyperparameters' mapping, the :class:`RunInputs`); errors name
    ``where``."""
    raw = dict(raw)
    inputs = {k: raw.pop(k) for k in INPUT_KEYS if k in raw}
    for key, value in inputs.items():
        if value is not None and not isinstance(value, str):
            raise ObdError(f"{where}: config key '{key}': expected a dataset or teacher spec (text), got {value!r}")
    return raw, RunInputs(**inputs)


def load_run_config(path: Any = None, overrides: list[str] | None = None, base: dict[str, Any] | None = None,
                    task: str | None = None) -> tuple[DistillConfig, RunInputs]:
    """:class:`DistillConfig` and :class:`RunInputs` from ``base`` <- the YAML file or preset at ``path`` <-
    the entry of the dataset's task in their ``tasks:`` <- ``key=value`` overrides (``dataset=`` and
    ``teacher=`` among them), like :func:`obd.config.load_config`. The task is ``task``, else the one the
    ``dataset`` spec names (:func:`obd.data.dataset_task`, without reading its arrays); unknown: no entry."""
    where = str(path) if path is not None else "config"
    raw: dict[str, Any] = dict(base or {})
    extra = parse_overrides(overrides)
    if path is not None:
        file_raw, sections = read_config_sections(path)
        raw = merge_config(raw, with_objective(file_raw, sections, extra.get("objective"), where=f"config '{path}'"))
    tasks = raw.get("tasks")
    if tasks is not None and task is None:
        from obd.data import dataset_task

        spec = extra.get("dataset", raw.get("dataset"))
        task = dataset_task(spec) if spec else None
    hyper, inputs = split_inputs(merge_config(with_task(raw, task, where=where), extra), where)
    cfg = load_config(DistillConfig, base=hyper)
    for name, entry in (tasks or {}).items():
        if name != task:  # a misspelt key in another task's entry fails here, not on that task's first run
            try:
                load_config(DistillConfig, base=merge_config(hyper, entry), prefix=f"tasks.{name}.")
            except ObdError as exc:
                raise ObdError(f"{where}: {exc}") from None
    return cfg, inputs


def run_config_dict(cfg: DistillConfig, inputs: RunInputs) -> dict[str, Any]:
    """What a run's ``config.yaml`` holds: the inputs first, then the config."""
    return {**dataclasses.asdict(inputs), **config_to_dict(cfg)}


def _resolve_device(name: str):
    from obd.device import resolve_device

    return resolve_device(name)
