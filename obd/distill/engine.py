"""The bi-level distillation engine: DBC / PBC / Av-PBC / SDW (Av-PBC weighted by state density) with a
hand-differentiated inner loop.

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
in :mod:`obd.distill.run`, the config in :mod:`obd.distill.config`.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from obd.config import config_to_dict
from obd.data.dataset import TransitionDataset
from obd.device import resolve_device
from obd.distill.coverage import OuterCoverage, noise_factor, perturbed_initial_pairs
from obd.distill.init import TEACHER_MAX_EPISODES, initial_pairs, teacher_init_pairs, teacher_init_problem
from obd.distill.inner import init_params, inner_loop, layer_dims, student_action
from obd.distill.objectives import Objective, outer_loss, precompute_targets, query_teacher
from obd.distill.onpolicy import onpolicy_states, teacher_rollout_seed
from obd.distill.registry import OBJECTIVES
from obd.distill.sdw import OuterSampler, SDWSetup
from obd.distill.selection import SetSelection
from obd.distill.synthetic import SyntheticDataset
from obd.distill.value_metric import q_curvature, value_metric
from obd.errors import ObdError
from obd.run_folder import check_inputs

if TYPE_CHECKING:  # the config module builds a Distiller (DistillConfig.create), so no import back at run time
    from obd.distill.config import DistillConfig

#: weight of the newest accepted gradient norm in the running mean that ``outer.skip_spikes`` compares against
SPIKE_EMA = 0.05


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


def teacher_data_notice(teacher: Any, dataset_fingerprint: str, where: str, label: str = "") -> str:
    """A one-line notice when ``teacher``'s metadata names the fingerprint of the data it was trained on
    (``dataset_sha256``, written by ``obd teacher``) and it is not ``dataset_fingerprint`` (:meth:`TransitionDataset.
    fingerprint` of the data distilled, from ``where``); '' otherwise. A teacher trained on another build of a
    dataset still runs (it may be what the user means), but its labels and Q were fitted to other states."""
    metadata = getattr(teacher, "metadata", None)
    trained_on = metadata.get("dataset_sha256") if isinstance(metadata, dict) else None
    if not trained_on or trained_on == dataset_fingerprint:
        return ""
    return (f"note: teacher {label or 'given'} was trained on data with fingerprint {str(trained_on)[:12]}, not on "
            f"{where} ({dataset_fingerprint[:12]}); distilling with it as it is")


def load_dataset_spec(spec: str) -> TransitionDataset:
    if not spec:
        raise ObdError("config key 'dataset': expected a D4RL/Minari id or a dataset file, got nothing")
    from obd.data import load_dataset

    return load_dataset(spec)


def load_teacher(path: str, device: torch.device) -> Any:
    from obd.teachers import Teacher

    return Teacher.load(path, device=device)


def load_inputs(dataset: Any, teacher: Any, device: torch.device) -> tuple[TransitionDataset, Any, str]:
    """(dataset, teacher, teacher label): a dataset spec loaded by :func:`obd.data.load_dataset`, a teacher
    file or shipped name by :meth:`obd.teachers.Teacher.load` (labelled by that spec); objects pass through."""
    if dataset is None or isinstance(dataset, (str, os.PathLike)):
        dataset = load_dataset_spec(str(dataset or ""))
    label = ""
    if isinstance(teacher, (str, os.PathLike)):
        label = str(teacher)
        teacher = load_teacher(label, device)
    return dataset, teacher, label


class NonFiniteStep(ObdError):
    """An outer step whose loss or gradient norm is NaN or infinite; the synthetic set was left as it was."""

    def __init__(self, step: int, loss: float, grad_norm: float):
        self.step, self.loss, self.grad_norm = step, loss, grad_norm
        bad = [f"{name} is {value}" for name, value in (("loss", loss), ("grad_norm", grad_norm))
               if not math.isfinite(value)]
        super().__init__(f"outer step {step}: {' and '.join(bad)}; stopped (lower outer.lr or inner.lr, or check "
                         f"the data and teacher for extreme values)")


class Distiller:
    """Holds the synthetic set, the outer optimizer, the seeded generator and the precomputed targets.

    ``step()`` runs one outer step and returns its metrics; ``fit(outer_steps)`` runs to that many outer
    steps (with a tqdm bar) and returns the :class:`SyntheticDataset`. ``density_weights`` (N_real,) are
    per-state weights used instead of SDW's estimated ones (e.g. precomputed elsewhere); with an objective
    other than ``sdw`` they multiply its outer error (``weight`` mode).
    """

    def __init__(self, config: DistillConfig, dataset: TransitionDataset, teacher: Any = None,
                 density_weights: np.ndarray | None = None, progress: bool = True, teacher_label: str = "",
                 device: torch.device | None = None):
        self.config = cfg = config.resolved()
        self.device = device if device is not None else resolve_device(cfg.device)
        self.dataset_source = dataset.source
        self.task = dataset.task
        metadata = getattr(teacher, "metadata", None)
        self.teacher_label = teacher_label or (metadata.get("source", "") if isinstance(metadata, dict) else "")
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
        #: the per-state weights (SDW's, or ``density_weights``) split by mode and their diagnostics; None
        #: without either
        self.sdw: SDWSetup | None = None
        density = cfg.density_config()
        is_sdw = cfg.objective == "sdw"
        targets = precompute_targets(cfg.objective, dataset.observations, dataset.actions, teacher, self.device,
                                     cfg.teacher_chunk, progress, cfg.q_clip)
        loss_weights = None
        if is_sdw or density_weights is not None:
            # SDW's value bands rank states by the teacher's Q, so the weights come after the targets
            q = targets.get("q_values")
            self.sdw = SDWSetup.create(normalized, density if is_sdw else None, density_weights, progress,
                                       None if q is None else q.cpu().numpy())
            if self.sdw.loss_weights is not None:
                loss_weights = torch.as_tensor(self.sdw.loss_weights, dtype=torch.float32, device=self.device)
        self.objective = Objective(cfg.objective, beta=cfg.beta, density_weights=loss_weights,
                                   sdw_sampled=self.sdw is not None and self.sdw.sampler_weights is not None,
                                   **targets)
        self.sampler = OuterSampler(len(self.real_states), self.device, self.sdw.sampler_weights if self.sdw else None)
        if self.sdw is not None:
            self.sdw.record_outer_ess(self.objective.q_values)
            self.sdw.announce(density.warn_ess)

        init = cfg.init
        problem = teacher_init_problem(dataset.task, self.obs_dim, self.act_dim) if init == "teacher" else ""
        if problem and not cfg.init_fallback:
            raise ObdError(problem)
        if problem:
            print(f"note: {problem}; starting from init '{cfg.init_fallback}' (init_fallback)", file=sys.stderr)
            init = cfg.init_fallback
        q_data = None
        if init == "topq":
            q_data = query_teacher(teacher.q, dataset.observations, cfg.teacher_chunk, torch.device("cpu"),
                                   "teacher Q of dataset pairs", dataset.actions, progress).numpy()
        if init == "teacher":
            states, actions = teacher_init_pairs(teacher, dataset.task, self.normalizer, normalized, dataset.actions,
                                                 cfg.n_syn, cfg.init_share, cfg.seed,
                                                 teacher_rollout_seed(cfg.seed, TEACHER_MAX_EPISODES),
                                                 cfg.init_max_steps or None, cfg.init_noise)
        else:
            states, actions = initial_pairs(init, normalized, dataset.actions, cfg.n_syn, cfg.seed, q_data)
        coverage = cfg.coverage
        # one covariance estimate for the initial set and the outer batches (mixup draws no noise)
        noisy = coverage.init_scale > 0 or (coverage.outer_enabled and coverage.kind != "mixup")
        factor = noise_factor(coverage.shape, normalized, seed=cfg.seed) if noisy else None
        if coverage.init_scale > 0:
            states, actions = perturbed_initial_pairs(states, coverage, teacher, self.normalizer, factor, cfg.seed)
        #: ``coverage``: the outer batch's perturbed states and their teacher targets (None when off)
        self.coverage = OuterCoverage(coverage, teacher, self.normalizer, self.real_states, self.objective,
                                      cfg.q_clip, factor) if coverage.outer_enabled else None
        #: ``onpolicy``: the buffer of states the students' rollouts visit, with teacher labels (None when off)
        self.onpolicy = onpolicy_states(cfg.onpolicy, dataset.task, self.obs_dim, self.act_dim, teacher=teacher,
                                        normalizer=self.normalizer, objective=self.objective, seed=cfg.seed,
                                        device=self.device, q_clip=cfg.q_clip, real_states=self.real_states,
                                        outer_steps=cfg.outer_steps)
        self.rollout_metrics: dict[str, float] = {}
        #: ``select``: the best set the validation rollouts have scored (None when off)
        self.selection = SetSelection(cfg.select, dataset.task, self.obs_dim, self.act_dim, cfg.seed, self.device) \
            if cfg.select.every else None
        if cfg.synthetic_actions == "clamp":
            actions = actions.clip(-1.0, 1.0)
        #: ``value_metric``: the teacher whose critic weighs each action dimension of H (None when off), and the
        #: normalizer's mean and std on the device, to ask it at raw states
        self.metric_teacher = teacher if cfg.value_metric.step > 0 else None
        self.raw_mean = torch.as_tensor(self.normalizer.mean, device=self.device, dtype=torch.float32)
        self.raw_std = torch.as_tensor(self.normalizer.std, device=self.device, dtype=torch.float32)
        scale = cfg.outer.state_lr_scale
        self.states = torch.tensor(states, device=self.device, requires_grad=scale > 0)
        self.actions = torch.tensor(actions, device=self.device, requires_grad=True)
        #: what the outer optimizer steps: one group (states and actions) at the paper's equal lr, else a group per
        #: tensor with its lr multiplier (``outer.state_lr_scale``; states fixed at 0)
        groups: list[dict[str, Any]] = [{"params": [self.states, self.actions], "lr_scale": 1.0}]
        if scale != 1:
            groups = [{"params": [self.actions], "lr_scale": 1.0}]
            if scale > 0:
                groups.append({"params": [self.states], "lr_scale": scale})
        for group in groups:
            group["lr"] = cfg.outer.lr * group["lr_scale"]
        if cfg.outer.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(groups, lr=cfg.outer.lr,
                                                                     momentum=cfg.outer.momentum)
        else:
            self.optimizer = torch.optim.Adam(groups, lr=cfg.outer.lr)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        #: ``outer.ema``: the running sums ema * sum + (1 - ema) * x of the synthetic states and actions (zero
        #: at step 0; :meth:`synthetic` divides by 1 - ema^k); None when off
        self.ema: list[torch.Tensor] | None = None
        if cfg.outer.ema > 0:
            self.ema = [torch.zeros_like(self.states), torch.zeros_like(self.actions)]
        self.dims = layer_dims(self.obs_dim, self.act_dim, cfg.student.hidden, cfg.student.depth,
                               cfg.student.kind == "tanh_gaussian")
        self.outer_step = 0
        self.wall_time = 0.0
        # process CPU seconds in outer steps: with one torch thread this is what the wall time would be on an
        # otherwise idle core, so runs made on a shared machine stay comparable
        self.cpu_time = 0.0
        #: ``outer.skip_spikes``: running mean of the accepted steps' gradient norms, and the steps skipped
        self.grad_norm_mean: float | None = None
        self.skipped_steps = 0
        self.inputs = inputs_fingerprint(dataset, teacher)
        notice = teacher_data_notice(teacher, self.inputs["dataset"], self.dataset_source or "the dataset",
                                     self.teacher_label)
        if notice:
            print(notice, file=sys.stderr)
        #: ``inner.pool``: the members' parameters (None until first drawn or after a reset) and inner steps
        self.pool: list[list[torch.Tensor] | None] = [None] * cfg.inner.pool
        self.pool_stage = [0] * cfg.inner.pool

    def _check_inputs(self, dataset: TransitionDataset, teacher: Any) -> None:
        cfg = self.config
        where = dataset.source or "dataset"
        if teacher is None and cfg.needs_teacher():
            need = f"objective '{cfg.objective}'" if OBJECTIVES[cfg.objective].needs_teacher else "init 'topq'"
            raise ObdError(f"teacher: {need} needs a teacher (teacher=FILE or a shipped name), none given")
        if cfg.n_syn > len(dataset):
            raise ObdError(f"config key 'n_syn': {cfg.n_syn} exceeds the {len(dataset)} transitions of {where}")
        if teacher is None:
            return
        label = self.teacher_label or type(teacher).__name__
        missing = [name for name in ("obs_dim", "act_dim", "stochastic", "act") if not hasattr(teacher, name)]
        if not missing and teacher.stochastic and not callable(getattr(teacher, "mean_std", None)):
            missing.append("mean_std")
        if missing:
            raise ObdError(f"teacher {label}: not a TeacherLike (no {', '.join(missing)}; see "
                           f"obd.teachers.TeacherLike)")
        if (OBJECTIVES[cfg.objective].q_weighted or cfg.init == "topq") and \
                (not callable(getattr(teacher, "q", None)) or getattr(teacher, "critic", True) is None):
            need = f"objective '{cfg.objective}'" if OBJECTIVES[cfg.objective].q_weighted else "init 'topq'"
            raise ObdError(f"teacher {label}: {need} weights states by the teacher's Q, but it has no critic "
                           f"(q(states, actions))")
        if cfg.value_metric.step > 0 and \
                (not callable(getattr(teacher, "q", None)) or getattr(teacher, "critic", True) is None):
            raise ObdError(f"teacher {label}: config key 'value_metric.step' weighs action errors by the teacher's "
                           f"critic, but it has no critic (q(states, actions))")
        if (teacher.obs_dim, teacher.act_dim) != (dataset.obs_dim, dataset.act_dim):
            raise ObdError(f"teacher {self.teacher_label}: dims (obs {teacher.obs_dim}, act {teacher.act_dim}) do "
                           f"not match {where} (obs {dataset.obs_dim}, act {dataset.act_dim})")
        if teacher.task and dataset.task and teacher.task != dataset.task:
            raise ObdError(f"teacher {self.teacher_label}: trained on task '{teacher.task}' but {where} is "
                           f"'{dataset.task}'")

    # ------------------------------------------------------------------ one outer step
    def meta_loss(self) -> torch.Tensor:
        """H(theta_T(D_syn)) for a fresh student and a fresh batch of real states (draws from the generator)."""
        cfg, g = self.config, self.generator
        idx = self.sampler.draw(cfg.outer.batch, g)
        targets, weights = self.objective.targets(idx, g)
        states = clean_states = self.real_states[idx]
        if self.coverage is not None:
            # perturbed rows keep their source's row, so ``value_metric.at=clean`` stays aligned with the batch
            states, targets, weights = self.coverage.apply(idx, states, targets, weights, self.states, g)
        if self.onpolicy is not None:
            states, targets, weights, clean_states = self.onpolicy.apply(states, targets, weights, clean_states, g,
                                                                         self.outer_step)
        member = None
        if cfg.inner.pool:
            member = int(torch.randint(cfg.inner.pool, (1,), generator=g, device=self.device))
            if self.pool[member] is None:
                self.pool[member], self.pool_stage[member] = self._fresh_student(), 0
            params = self.pool[member]
        else:
            params = self._fresh_student()
        steps = cfg.inner.steps
        if cfg.inner.random_unroll:
            steps = int(torch.randint(cfg.inner.truncate, cfg.inner.steps + 1, (1,), generator=g,
                                      device=self.device))
        noise = None
        if cfg.student.kind == "tanh_gaussian":
            noise = torch.randn((steps, cfg.inner.students, cfg.n_syn, self.act_dim), generator=g,
                                device=self.device)
        trained = inner_loop(params, self.states, self.actions, steps, noise, cfg.inner.lr,
                             cfg.inner.momentum, cfg.inner.truncate)
        if member is not None:
            self._advance_pool(member, trained, steps)
        if self.onpolicy is not None and self.onpolicy.due(self.outer_step):
            # the states enter the buffer after this step's batch was drawn: they are used from the next step
            self.rollout_metrics = self.onpolicy.collect(trained, self.outer_step)
        outer_noise = None
        if cfg.outer.action == "sample":
            outer_noise = torch.randn((cfg.inner.students, cfg.outer.batch, self.act_dim), generator=g,
                                      device=self.device)
        metric = None
        if self.metric_teacher is not None:
            metric = self._value_metric(clean_states if cfg.value_metric.at == "clean" else states)
        return outer_loss(student_action(trained, states, self.act_dim, outer_noise), targets, weights, metric,
                          cfg.outer.disagreement)

    def _value_metric(self, states: torch.Tensor) -> torch.Tensor:
        """``value_metric``: M (B, act) at the outer batch's normalized ``states`` (B, obs), around the teacher's
        deterministic action there (:mod:`obd.distill.value_metric`)."""
        raw = states * self.raw_std + self.raw_mean
        actions = query_teacher(self.metric_teacher.act, raw, len(raw), self.device, "teacher actions",
                                progress=False, width=self.act_dim, what="outer states")
        vm = self.config.value_metric
        return value_metric(q_curvature(self.metric_teacher, raw, actions, vm.step), vm.floor, vm.kind)

    def _fresh_student(self) -> list[torch.Tensor]:
        cfg = self.config
        return init_params(self.dims, cfg.inner.students, self.generator, cfg.student.orthogonal_init, self.device,
                           head=cfg.student.head)

    def _advance_pool(self, member: int, trained: list[torch.Tensor], steps: int) -> None:
        """``inner.pool``: the member keeps its trained parameters, or is emptied (a fresh init when next drawn)
        once it has trained ``pool_max_steps`` inner steps."""
        self.pool_stage[member] += steps
        if self.pool_stage[member] >= self.config.inner.pool_max_steps:
            self.pool[member], self.pool_stage[member] = None, 0
        else:
            self.pool[member] = [p.detach().clone() for p in trained]

    def step(self) -> dict[str, float]:
        """One outer step; returns ``{"step", "loss", "grad_norm", "sec", "cpu_sec"}``. A NaN or infinite loss
        or gradient norm raises :class:`NonFiniteStep` before the synthetic set is changed (with
        ``outer.skip_spikes`` a non-finite gradient norm skips the step instead)."""
        start, cpu_start = time.perf_counter(), time.process_time()
        loss = self.meta_loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        tensors = [t for t in (self.states, self.actions) if t.requires_grad]
        if self.config.outer.clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(tensors, self.config.outer.clip)
        else:
            grad_norm = torch.linalg.vector_norm(torch.stack([t.grad.norm() for t in tensors]))
        grad_norm = float(grad_norm)  # one host sync, shared by the spike check and the metrics
        loss_value = loss.item()
        skipped = self._is_spike(grad_norm)
        if not skipped and not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
            # stop before the optimizer step: NaN gradients would turn the whole synthetic set into NaN
            raise NonFiniteStep(self.outer_step + 1, loss_value, grad_norm)
        if not skipped:
            if self.config.outer.schedule != "constant":
                for group in self.optimizer.param_groups:
                    group["lr"] = self.config.outer.lr_at(self.outer_step) * group.get("lr_scale", 1.0)
            self.optimizer.step()
            if self.config.synthetic_actions == "clamp":
                with torch.no_grad():
                    self.actions.clamp_(-1.0, 1.0)
        if self.ema is not None:
            with torch.no_grad():
                for avg, x in zip(self.ema, (self.states, self.actions)):
                    avg.lerp_(x, 1.0 - self.config.outer.ema)
        self.outer_step += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the optimizer step's kernels belong to this step's time
        sec, cpu_sec = time.perf_counter() - start, time.process_time() - cpu_start
        self.wall_time += sec
        self.cpu_time += cpu_sec
        metrics = {"step": self.outer_step, "loss": loss_value, "grad_norm": grad_norm, "sec": sec,
                   "cpu_sec": cpu_sec}
        if self.config.outer.skip_spikes > 0:
            metrics["skipped"] = int(skipped)
        metrics.update(self.rollout_metrics)
        self.rollout_metrics = {}
        return metrics

    def _is_spike(self, norm: float) -> bool:
        """``outer.skip_spikes``: whether this step's (pre-clip) gradient norm is a spike to skip; updates the
        running mean of the accepted norms."""
        factor = self.config.outer.skip_spikes
        if factor <= 0:
            return False
        if not math.isfinite(norm) or (self.grad_norm_mean is not None and norm > factor * self.grad_norm_mean):
            self.skipped_steps += 1
            return True
        self.grad_norm_mean = norm if self.grad_norm_mean is None else \
            (1.0 - SPIKE_EMA) * self.grad_norm_mean + SPIKE_EMA * norm
        return False

    def fit(self, outer_steps: int | None = None, callback: Callable[[Distiller, dict], None] | None = None,
            ) -> SyntheticDataset:
        """Run outer steps until ``outer_steps`` (default: the config's) have been done; ``callback(self,
        metrics)`` after each. Returns the synthetic set (:meth:`result`)."""
        total = self.config.outer_steps if outer_steps is None else outer_steps
        bar = tqdm(total=total, initial=self.outer_step, desc=f"distill {self.objective.label}",
                   disable=not self.progress, dynamic_ncols=True)
        with bar:
            while self.outer_step < total:
                metrics = self.step()
                if self.selection is not None and self.selection.due(self.outer_step, total):
                    metrics.update(self._select())
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4g}", grad=f"{metrics['grad_norm']:.3g}", refresh=False)
                if callback is not None:
                    callback(self, metrics)
        return self.result()

    def _select(self) -> dict[str, float]:
        """``select``: score the set the run would return now and keep it if it is the best; the selection's
        time counts in the run's."""
        start, cpu_start = time.perf_counter(), time.process_time()
        metrics = self.selection.offer(self.outer_step, self.synthetic())
        self.wall_time += time.perf_counter() - start
        self.cpu_time += time.process_time() - cpu_start
        return metrics

    # ------------------------------------------------------------------ results and state
    def synthetic_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The set the run returns, detached on the engine device: states (N_syn, obs) normalized and actions
        (N_syn, act); with ``outer.ema`` their bias-corrected moving average (the raw set before any step)."""
        if self.ema is None or self.outer_step == 0:
            return self.states.detach(), self.actions.detach()
        correction = 1.0 - self.config.outer.ema ** self.outer_step
        return self.ema[0] / correction, self.ema[1] / correction

    def synthetic(self) -> SyntheticDataset:
        """The set at the current outer step (:meth:`synthetic_tensors`, a CPU copy) with its metadata: what
        each checkpoint holds."""
        states, actions = self.synthetic_tensors()
        return self._as_set(states, actions, self.outer_step)

    def result(self) -> SyntheticDataset:
        """The set the run returns: with ``select`` the best its validation rollouts scored (metadata
        ``selected``: the outer step it was taken at, its score and the run's last step), else
        :meth:`synthetic`."""
        best = None if self.selection is None else self.selection.best
        if best is None:
            return self.synthetic()
        selected = {"outer_step": best["step"], "score": round(best["score"], 4), "last_step": self.outer_step}
        return self._as_set(best["states"], best["actions"], best["step"], selected)

    def _as_set(self, states: torch.Tensor, actions: torch.Tensor, step: int,
                selected: dict[str, Any] | None = None) -> SyntheticDataset:
        cfg = self.config
        meta = {"method": self.objective.label, "objective": cfg.objective, "init": cfg.init,
                "source_dataset": self.dataset_source, "teacher": self.teacher_label, "seed": cfg.seed,
                "outer_step": step, "config": config_to_dict(cfg)}
        if selected is not None:
            meta["selected"] = selected
        return SyntheticDataset(states.cpu().clone(), actions.cpu().clone(), self.normalizer, self.task, meta)

    def state_dict(self) -> dict[str, Any]:
        """Everything that makes a resumed run bit-identical: synthetic tensors, optimizer, generator."""
        return {"outer_step": self.outer_step, "wall_time": self.wall_time, "cpu_time": self.cpu_time,
                "states": self.states.detach().cpu().clone(), "actions": self.actions.detach().cpu().clone(),
                "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                "grad_norm_mean": self.grad_norm_mean, "skipped_steps": self.skipped_steps,
                "inputs": dict(self.inputs),
                "pool": [None if m is None else [p.cpu().clone() for p in m] for m in self.pool],
                "pool_stage": list(self.pool_stage),
                "ema": None if self.ema is None else [t.cpu().clone() for t in self.ema],
                "onpolicy": None if self.onpolicy is None else self.onpolicy.state_dict(),
                "selected": None if self.selection is None else self.selection.state_dict()}

    def load_state_dict(self, state: dict[str, Any], where: str = "checkpoint") -> None:
        for key in ("outer_step", "states", "actions", "optimizer", "generator"):
            if key not in state:
                raise ObdError(f"{where}: missing key '{key}'")
        if tuple(state["states"].shape) != tuple(self.states.shape) or \
                tuple(state["actions"].shape) != tuple(self.actions.shape):
            raise ObdError(f"{where}: synthetic set {tuple(state['states'].shape)}/{tuple(state['actions'].shape)} "
                           f"does not match the config's {tuple(self.states.shape)}/{tuple(self.actions.shape)}")
        check_inputs(state.get("inputs", {}), self.inputs, where)
        with torch.no_grad():
            self.states.copy_(state["states"])
            self.actions.copy_(state["actions"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.outer_step = int(state["outer_step"])
        self.wall_time = float(state.get("wall_time", 0.0))
        self.cpu_time = float(state.get("cpu_time", 0.0))
        mean = state.get("grad_norm_mean")
        self.grad_norm_mean = None if mean is None else float(mean)
        self.skipped_steps = int(state.get("skipped_steps", 0))
        pool = state.get("pool", [])
        if len(pool) != len(self.pool):
            raise ObdError(f"{where}: holds a pool of {len(pool)} students, the config's inner.pool is "
                           f"{len(self.pool)}")
        self.pool = [None if m is None else [p.to(self.device) for p in m] for m in pool]
        self.pool_stage = [int(x) for x in state.get("pool_stage", [0] * len(pool))]
        ema = state.get("ema")
        if (ema is None) != (self.ema is None):
            raise ObdError(f"{where}: {'holds no' if ema is None else 'holds a'} moving average of the set, the "
                           f"config's outer.ema is {self.config.outer.ema}")
        if ema is not None:
            self.ema = [t.to(self.device) for t in ema]
        onpolicy = state.get("onpolicy")
        if (onpolicy is None) != (self.onpolicy is None):
            raise ObdError(f"{where}: {'holds no' if onpolicy is None else 'holds a'} buffer of on-policy states, "
                           f"the config's onpolicy.share is {self.config.onpolicy.share}")
        if onpolicy is not None:
            self.onpolicy.load_state_dict(onpolicy, where)
        if self.selection is not None:
            self.selection.load_state_dict(state.get("selected"), where)

