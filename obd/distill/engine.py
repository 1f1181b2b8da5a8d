"""The bi-level distillation engine: DBC / PBC / Av-PBC (optionally SDW-weighted) with a hand-differentiated
inner loop.

    D_syn* = argmin_D  H(theta_T(D), D_off),   theta_T(D) = T steps of BC on D from a fresh init theta_0

One outer step (:meth:`Distiller.step`):

1. draw B real-state indices (uniformly with replacement, or in proportion to the SDW weights in SDW's
   ``sample`` mode: :class:`obd.distill.sdw.OuterSampler`) from tensors already on the device, and the
   objective's targets/weights for them (see :mod:`obd.distill.objectives`);
2. draw a fresh student theta_0 (orthogonal init) and the inner noise eps_1..T from the engine's seeded
   ``torch.Generator``;
3. run the inner loop (:func:`obd.distill.inner.inner_loop`), T SGD steps on the full synthetic batch;
4. H on the B real states; backpropagate through the unrolled inner loop into the synthetic states
   (normalized space) and actions; clip their joint gradient norm; one outer optimizer step.

Everything that does not change during distillation (normalized real states, teacher mean/std and
actions, Q values, SDW weights) is computed once in the constructor. ``DistillConfig(...).create(dataset,
teacher).fit(outer_steps)`` returns the :class:`SyntheticDataset`; the run folder and resume logic live
in :mod:`obd.distill.run`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from obd.config import coerce_nested, config_to_dict
from obd.data.dataset import TransitionDataset
from obd.device import resolve_device
from obd.distill.density import DensityConfig
from obd.distill.init import INITS, initial_pairs
from obd.distill.inner import init_params, inner_loop, layer_dims, student_action
from obd.distill.objectives import NEEDS_TEACHER, OBJECTIVES, build_objective, outer_loss, query_teacher
from obd.distill.sdw import OuterSampler, SDWSetup
from obd.distill.students import HEADS, STUDENT_KINDS
from obd.distill.synthetic import SyntheticDataset
from obd.errors import ObdError

OUTER_OPTIMIZERS = ("sgd", "adam")
OUTER_SCHEDULES = ("constant", "cosine")
OUTER_ACTIONS = ("mean", "sample")
SYNTHETIC_ACTIONS = ("free", "clamp")


@dataclass
class StudentConfig:
    """The student trained in the inner loop: ``tanh_gaussian`` (paper) or ``deterministic`` MLP. ``head``:
    ``corl`` (output gain 1e-2, log-std = raw output) or ``paper`` (the published code's: output gain sqrt 2,
    log-std = m * raw + c with learnable m = 1, c = -1 at init), see :data:`obd.distill.students.HEADS`."""

    kind: str = "tanh_gaussian"
    hidden: int = 256
    depth: int = 3
    orthogonal_init: bool = True
    head: str = "corl"


@dataclass
class InnerConfig:
    """T SGD steps (lr, momentum) of BC on the full synthetic batch; ``students`` trained side by side per
    outer step (H averaged over them); ``truncate`` = K > 0 backpropagates through the last K steps only."""

    steps: int = 100
    lr: float = 0.1
    momentum: float = 0.0
    students: int = 1
    truncate: int = 0


@dataclass
class OuterConfig:
    """Optimizer on the synthetic (states, actions): ``adam`` (default, the fast preset's) or ``sgd`` (with
    ``momentum``; the paper's: ``sgd``, lr 0.1, momentum 0.9, ``constant``); joint
    gradient-norm clip (0 = off); ``batch`` real states per outer step. ``schedule``: ``constant`` lr (the
    paper's) or ``cosine``, lr_k = lr_min + (lr - lr_min) (1 + cos(pi min(k, K) / K)) / 2 at outer step k
    with K = ``decay_steps`` (0 resolves to the run's ``outer_steps`` when the config is validated, so a
    resumed run that extends ``outer_steps`` keeps its original horizon). ``action``: the trained student's
    action the outer error is measured on, ``mean`` = tanh(mean) (the action it is evaluated with) or
    ``sample`` = a reparameterized sample tanh(mean + std eps) drawn fresh per real state (the published
    code's; tanh-Gaussian students only)."""

    optimizer: str = "adam"
    lr: float = 0.01
    momentum: float = 0.0
    clip: float = 2.0
    batch: int = 2560
    schedule: str = "cosine"
    lr_min: float = 0.0
    decay_steps: int = 0
    action: str = "mean"

    def lr_at(self, step: int) -> float:
        """The outer learning rate for outer step ``step`` (0-based)."""
        if self.schedule == "constant" or self.decay_steps <= 0:
            return self.lr
        progress = min(step, self.decay_steps) / self.decay_steps
        return self.lr_min + (self.lr - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class DistillConfig:
    """Everything a distillation run needs. Defaults are the fast Av-PBC preset (``obd/configs/fast_avpbc.yaml``:
    the paper's student and inner loop, an Adam outer optimizer with cosine decay, 3,000 outer steps), the
    CPU default; the paper's settings are the ``paper_avpbc`` preset. Nested sections may be given as dicts
    (``DistillConfig(inner=dict(steps=5))``). ``logger``: extra metric sinks besides ``metrics.jsonl``,
    comma-separated, ``tensorboard`` and/or ``wandb`` (see :mod:`obd.loggers`).

    ``dataset``: a D4RL/Minari id or file for ``obd.data.load_dataset``; ``teacher``: a teacher file for
    ``obd.teachers.Teacher.load`` (needed by PBC, Av-PBC and the ``topq`` init); ``sdw`` turns on
    state-density weighting configured by ``density`` (:class:`obd.distill.density.DensityConfig`; null =
    its defaults; its ``seed`` defaults to the run's).
    ``checkpoint_every`` K writes a checkpoint every K outer steps (0 = only at the end). ``eval_every``
    must stay 0: evaluation of checkpoints is ``obd.evaluate``'s job (``python -m obd.evaluate``).
    ``q_clip``: Av-PBC weights beta * max(Q, 0) instead of beta * Q (the published code does not clip, so a
    state with Q < 0 pushes the student away from the teacher). ``synthetic_actions``: ``free`` (the paper's)
    or ``clamp``, projected onto [-1, 1] at init and after every outer step, the range of the env's actions.
    """

    dataset: str = ""
    teacher: str | None = None
    objective: str = "avpbc"
    beta: float = 0.02
    sdw: bool = False
    density: DensityConfig | None = None
    n_syn: int = 256
    init: str = "random"
    student: StudentConfig = field(default_factory=StudentConfig)
    inner: InnerConfig = field(default_factory=InnerConfig)
    outer: OuterConfig = field(default_factory=OuterConfig)
    outer_steps: int = 3000
    checkpoint_every: int = 100
    eval_every: int = 0
    seed: int = 0
    device: str = "auto"
    teacher_chunk: int = 65536
    q_clip: bool = False
    synthetic_actions: str = "free"
    logger: str = ""

    def __post_init__(self) -> None:
        coerce_nested(self)

    def needs_teacher(self) -> bool:
        return NEEDS_TEACHER.get(self.objective, False) or self.init == "topq"

    def validate(self) -> None:
        """Check the config alone (no files read); raise a one-line :class:`ObdError` naming the key."""
        _choice("objective", self.objective, OBJECTIVES)
        _choice("init", self.init, INITS)
        _choice("student.kind", self.student.kind, STUDENT_KINDS)
        _choice("outer.optimizer", self.outer.optimizer, OUTER_OPTIMIZERS)
        _choice("outer.schedule", self.outer.schedule, OUTER_SCHEDULES)
        _choice("student.head", self.student.head, HEADS)
        _choice("outer.action", self.outer.action, OUTER_ACTIONS)
        _choice("synthetic_actions", self.synthetic_actions, SYNTHETIC_ACTIONS)
        if self.outer.action == "sample" and self.student.kind != "tanh_gaussian":
            raise ObdError("config key 'outer.action': 'sample' needs student.kind tanh_gaussian, got "
                           f"{self.student.kind!r}")
        for key, value in (("n_syn", self.n_syn), ("student.hidden", self.student.hidden),
                           ("student.depth", self.student.depth), ("inner.steps", self.inner.steps),
                           ("inner.students", self.inner.students), ("outer.batch", self.outer.batch),
                           ("teacher_chunk", self.teacher_chunk)):
            if not value > 0:
                raise ObdError(f"config key '{key}': expected an integer > 0, got {value}")
        for key, value in (("outer_steps", self.outer_steps), ("checkpoint_every", self.checkpoint_every),
                           ("inner.truncate", self.inner.truncate), ("outer.decay_steps", self.outer.decay_steps)):
            if value < 0:
                raise ObdError(f"config key '{key}': expected an integer >= 0, got {value}")
        for key, value in (("inner.lr", self.inner.lr), ("outer.lr", self.outer.lr)):
            if not (math.isfinite(value) and value > 0):
                raise ObdError(f"config key '{key}': expected a number > 0, got {value}")
        for key, value in (("inner.momentum", self.inner.momentum), ("outer.momentum", self.outer.momentum)):
            if not 0 <= value < 1:
                raise ObdError(f"config key '{key}': expected a number in [0, 1), got {value}")
        if self.inner.truncate > self.inner.steps:
            raise ObdError(f"config key 'inner.truncate': {self.inner.truncate} exceeds inner.steps "
                           f"{self.inner.steps}")
        if not (math.isfinite(self.outer.lr_min) and 0 <= self.outer.lr_min <= self.outer.lr):
            raise ObdError(f"config key 'outer.lr_min': expected a number in [0, outer.lr = {self.outer.lr}], got "
                           f"{self.outer.lr_min}")
        if self.outer.schedule == "cosine" and self.outer.decay_steps == 0:
            self.outer.decay_steps = self.outer_steps
        if not (math.isfinite(self.outer.clip) and self.outer.clip >= 0):
            raise ObdError(f"config key 'outer.clip': expected a number >= 0 (0 = off), got {self.outer.clip}")
        if self.eval_every != 0:
            raise ObdError(f"config key 'eval_every': expected 0; evaluate checkpoints with "
                           f"'python -m obd.evaluate RUN/checkpoints/step_XXXXXXX.hdf5', got {self.eval_every}")
        if self.density is not None:
            if not isinstance(self.density, DensityConfig):
                raise ObdError(f"config key 'density': expected a mapping of DensityConfig fields, "
                               f"got {self.density!r}")
            if not self.sdw:
                # configs saved before the section was typed hold an empty mapping for runs without SDW
                if self.density != DensityConfig():
                    raise ObdError("config key 'density': set only with sdw=true")
                self.density = None
            else:
                self.density.validate()
        resolve_device(self.device)
        from obd.loggers import parse_loggers

        parse_loggers(self.logger)

    def density_config(self) -> DensityConfig:
        """The SDW :class:`obd.distill.density.DensityConfig` (defaults when ``density`` is null) with its
        seed resolved (default: the run's)."""
        density = self.density or DensityConfig()
        return dataclasses.replace(density, seed=self.seed if density.seed is None else density.seed)

    def create(self, dataset: TransitionDataset | str | None = None, teacher: Any = None, *,
               progress: bool = True) -> Distiller:
        """Build a :class:`Distiller`; ``dataset`` / ``teacher`` default to loading ``self.dataset`` /
        ``self.teacher`` (a teacher given as a path is loaded too)."""
        self.validate()
        if teacher is None and not self.teacher and self.needs_teacher():
            need = f"objective '{self.objective}'" if NEEDS_TEACHER[self.objective] else "init 'topq'"
            raise ObdError(f"config key 'teacher': {need} needs a teacher file, none given")
        if dataset is None or isinstance(dataset, str):
            dataset = load_dataset_spec(dataset or self.dataset)
        if isinstance(teacher, str) or (teacher is None and self.teacher and self.needs_teacher()):
            teacher = load_teacher(teacher or self.teacher, resolve_device(self.device))
        return Distiller(self, dataset, teacher, progress=progress)


def inputs_fingerprint(dataset: TransitionDataset, teacher: Any = None) -> dict[str, str]:
    """sha256 of what a run's trajectory depends on besides its config: the dataset's observations and
    actions, and the teacher's weights (when it is an obd :class:`~obd.teachers.Teacher`). Stored in every
    checkpoint so that a resume on a rebuilt dataset or a retrained teacher fails instead of silently
    continuing a different run."""
    found = {"dataset": dataset.fingerprint()}
    modules = [getattr(teacher, name, None) for name in ("actor", "critic")]
    if teacher is not None and any(isinstance(m, torch.nn.Module) for m in modules):
        digest = hashlib.sha256()
        for module in modules:
            if isinstance(module, torch.nn.Module):
                for name, tensor in sorted(module.state_dict().items()):
                    digest.update(name.encode())
                    digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        found["teacher"] = digest.hexdigest()
    return found


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ObdError(f"config key '{key}': expected one of {list(allowed)}, got {value!r}")


def load_dataset_spec(spec: str) -> TransitionDataset:
    if not spec:
        raise ObdError("config key 'dataset': expected a D4RL/Minari id or a dataset file, got nothing")
    from obd.data import load_dataset

    return load_dataset(spec)


def load_teacher(path: str, device: torch.device) -> Any:
    from obd.teachers import Teacher

    return Teacher.load(path, device=device)


class Distiller:
    """Holds the synthetic set, the outer optimizer, the seeded generator and the precomputed targets.

    ``step()`` runs one outer step and returns its metrics; ``fit(outer_steps)`` runs to that many outer
    steps (with a tqdm bar) and returns the :class:`SyntheticDataset`. ``density_weights`` (N_real,)
    overrides SDW's estimated weights (e.g. ones precomputed elsewhere).
    """

    def __init__(self, config: DistillConfig, dataset: TransitionDataset, teacher: Any = None,
                 density_weights: np.ndarray | None = None, progress: bool = True):
        config.validate()
        self.config = cfg = config
        self.device = resolve_device(cfg.device)
        self.dataset_source = dataset.source or cfg.dataset
        self.task = dataset.task
        self._check_inputs(dataset, teacher)
        self.normalizer = dataset.normalizer
        self.obs_dim, self.act_dim = dataset.obs_dim, dataset.act_dim
        self.progress = progress
        if teacher is not None:
            teacher = teacher.to(self.device) or teacher

        normalized = np.asarray(self.normalizer.normalize(dataset.observations), dtype=np.float32)
        self.real_states = torch.as_tensor(normalized, device=self.device)
        if density_weights is not None and len(density_weights) != len(dataset):
            raise ObdError(f"density weights: {len(density_weights)} given for {len(dataset)} real states")
        #: SDW's weights split by mode and their diagnostics (None without SDW)
        self.sdw: SDWSetup | None = None
        density = cfg.density_config()
        if cfg.sdw or density_weights is not None:
            self.sdw = SDWSetup.create(normalized, density if cfg.sdw else None, density_weights, progress)
        self.objective = build_objective(cfg.objective, dataset.observations, dataset.actions, teacher, self.device,
                                         cfg.beta, self.sdw.loss_weights if self.sdw else None, cfg.teacher_chunk,
                                         progress, cfg.q_clip)
        self.sampler = OuterSampler(len(self.real_states), self.device, self.sdw.sampler_weights if self.sdw else None)
        if self.sdw is not None:
            self.objective.sdw_sampled = self.sdw.sampler_weights is not None
            self.sdw.record_outer_ess(self.objective.q_values)
            self.sdw.announce(density.warn_ess)

        q_data = None
        if cfg.init == "topq":
            q_data = query_teacher(teacher.q, dataset.observations, cfg.teacher_chunk, torch.device("cpu"),
                                   "teacher Q of dataset pairs", dataset.actions, progress).numpy()
        states, actions = initial_pairs(cfg.init, normalized, dataset.actions, cfg.n_syn, cfg.seed, q_data)
        if cfg.synthetic_actions == "clamp":
            actions = actions.clip(-1.0, 1.0)
        self.states = torch.tensor(states, device=self.device, requires_grad=True)
        self.actions = torch.tensor(actions, device=self.device, requires_grad=True)
        if cfg.outer.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                [self.states, self.actions], lr=cfg.outer.lr, momentum=cfg.outer.momentum)
        else:
            self.optimizer = torch.optim.Adam([self.states, self.actions], lr=cfg.outer.lr)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.dims = layer_dims(self.obs_dim, self.act_dim, cfg.student.hidden, cfg.student.depth,
                               cfg.student.kind == "tanh_gaussian")
        self.outer_step = 0
        self.wall_time = 0.0
        # process CPU seconds in outer steps: with one torch thread this is what the wall time would be on an
        # otherwise idle core, so runs made on a shared machine stay comparable
        self.cpu_time = 0.0
        self.inputs = inputs_fingerprint(dataset, teacher)
        self.teacher_label = cfg.teacher or (teacher.metadata.get("source", "") if teacher is not None
                                              and isinstance(getattr(teacher, "metadata", None), dict) else "")

    def _check_inputs(self, dataset: TransitionDataset, teacher: Any) -> None:
        cfg = self.config
        where = dataset.source or "dataset"
        if cfg.n_syn > len(dataset):
            raise ObdError(f"config key 'n_syn': {cfg.n_syn} exceeds the {len(dataset)} transitions of {where}")
        if teacher is None:
            if cfg.needs_teacher():
                need = f"objective '{cfg.objective}'" if NEEDS_TEACHER[cfg.objective] else "init 'topq'"
                raise ObdError(f"config key 'teacher': {need} needs a teacher file, none given")
            return
        if (teacher.obs_dim, teacher.act_dim) != (dataset.obs_dim, dataset.act_dim):
            raise ObdError(f"teacher {cfg.teacher or ''}: dims (obs {teacher.obs_dim}, act {teacher.act_dim}) do "
                           f"not match {where} (obs {dataset.obs_dim}, act {dataset.act_dim})")
        if teacher.task and dataset.task and teacher.task != dataset.task:
            raise ObdError(f"teacher {cfg.teacher or ''}: trained on task '{teacher.task}' but {where} is "
                           f"'{dataset.task}'")

    # ------------------------------------------------------------------ one outer step
    def meta_loss(self) -> torch.Tensor:
        """H(theta_T(D_syn)) for a fresh student and a fresh batch of real states (draws from the generator)."""
        cfg, g = self.config, self.generator
        idx = self.sampler.draw(cfg.outer.batch, g)
        targets, weights = self.objective.targets(idx, g)
        params = init_params(self.dims, cfg.inner.students, g, cfg.student.orthogonal_init, self.device,
                             head=cfg.student.head)
        noise = None
        if cfg.student.kind == "tanh_gaussian":
            noise = torch.randn((cfg.inner.steps, cfg.inner.students, cfg.n_syn, self.act_dim), generator=g,
                                device=self.device)
        trained = inner_loop(params, self.states, self.actions, cfg.inner.steps, noise, cfg.inner.lr,
                             cfg.inner.momentum, cfg.inner.truncate)
        outer_noise = None
        if cfg.outer.action == "sample":
            outer_noise = torch.randn((cfg.inner.students, cfg.outer.batch, self.act_dim), generator=g,
                                      device=self.device)
        return outer_loss(student_action(trained, self.real_states[idx], self.act_dim, outer_noise), targets, weights)

    def step(self) -> dict[str, float]:
        """One outer step; returns ``{"step", "loss", "grad_norm", "sec", "cpu_sec"}``."""
        start, cpu_start = time.perf_counter(), time.process_time()
        loss = self.meta_loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        tensors = [self.states, self.actions]
        if self.config.outer.clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(tensors, self.config.outer.clip)
        else:
            grad_norm = torch.linalg.vector_norm(torch.stack([t.grad.norm() for t in tensors]))
        if self.config.outer.schedule != "constant":
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.outer.lr_at(self.outer_step)
        self.optimizer.step()
        if self.config.synthetic_actions == "clamp":
            with torch.no_grad():
                self.actions.clamp_(-1.0, 1.0)
        self.outer_step += 1
        loss_value = loss.item()  # synchronizes a GPU before the clocks stop
        sec, cpu_sec = time.perf_counter() - start, time.process_time() - cpu_start
        self.wall_time += sec
        self.cpu_time += cpu_sec
        return {"step": self.outer_step, "loss": loss_value, "grad_norm": float(grad_norm), "sec": sec,
                "cpu_sec": cpu_sec}

    def fit(self, outer_steps: int | None = None, callback: Callable[[Distiller, dict], None] | None = None,
            ) -> SyntheticDataset:
        """Run outer steps until ``outer_steps`` (default: the config's) have been done; ``callback(self,
        metrics)`` after each. Returns the synthetic set."""
        total = self.config.outer_steps if outer_steps is None else outer_steps
        bar = tqdm(total=total, initial=self.outer_step, desc=f"distill {self.objective.label}",
                   disable=not self.progress, dynamic_ncols=True)
        with bar:
            while self.outer_step < total:
                metrics = self.step()
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4g}", grad=f"{metrics['grad_norm']:.3g}", refresh=False)
                if callback is not None:
                    callback(self, metrics)
        return self.synthetic()

    # ------------------------------------------------------------------ results and state
    def synthetic(self) -> SyntheticDataset:
        """The current synthetic set (CPU copy) with its metadata."""
        cfg = self.config
        meta = {"method": self.objective.label, "objective": cfg.objective, "sdw": cfg.sdw, "init": cfg.init,
                "source_dataset": self.dataset_source, "teacher": self.teacher_label, "seed": cfg.seed,
                "outer_step": self.outer_step, "config": config_to_dict(cfg)}
        return SyntheticDataset(self.states.detach().cpu().clone(), self.actions.detach().cpu().clone(),
                                self.normalizer, self.task, meta)

    def state_dict(self) -> dict[str, Any]:
        """Everything that makes a resumed run bit-identical: synthetic tensors, optimizer, generator."""
        return {"outer_step": self.outer_step, "wall_time": self.wall_time, "cpu_time": self.cpu_time,
                "states": self.states.detach().cpu().clone(), "actions": self.actions.detach().cpu().clone(),
                "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                "inputs": dict(self.inputs)}

    def load_state_dict(self, state: dict[str, Any], where: str = "checkpoint") -> None:
        for key in ("outer_step", "states", "actions", "optimizer", "generator"):
            if key not in state:
                raise ObdError(f"{where}: missing key '{key}'")
        if tuple(state["states"].shape) != tuple(self.states.shape) or \
                tuple(state["actions"].shape) != tuple(self.actions.shape):
            raise ObdError(f"{where}: synthetic set {tuple(state['states'].shape)}/{tuple(state['actions'].shape)} "
                           f"does not match the config's {tuple(self.states.shape)}/{tuple(self.actions.shape)}")
        for key, saved in state.get("inputs", {}).items():  # checkpoints written before fingerprints have none
            if key in self.inputs and saved != self.inputs[key]:
                raise ObdError(f"{where}: the {key} differs from the one this run started with (sha256 "
                               f"{saved[:12]}... then, {self.inputs[key][:12]}... now); resuming would not "
                               f"continue the same run")
        with torch.no_grad():
            self.states.copy_(state["states"])
            self.actions.copy_(state["actions"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.outer_step = int(state["outer_step"])
        self.wall_time = float(state.get("wall_time", 0.0))
        self.cpu_time = float(state.get("cpu_time", 0.0))

