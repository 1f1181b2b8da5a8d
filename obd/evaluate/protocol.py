"""The OBD evaluation protocol: train fresh students on a synthetic set, roll out ``tanh(mean)``.

By default the students are the distillation's own: the student and inner loop recorded in the set's
metadata (width, depth, head, init; ``inner.steps`` full-batch SGD steps at ``inner.lr``, ``inner.momentum``;
``bc_loss`` with fresh noise each step); a set that records none gets the paper's 3x256 / 100-step protocol
(see :mod:`obd.evaluate.student_spec`). Each of the K students plays E episodes (episode ``e`` of every
student starts from ``reset(seed=seed + e)``) with states normalized by the synthetic set's normalizer; the
K students share one batched forward per env step. Reported: the D4RL normalized score
``100 * (R - R_random) / (R_expert - R_random)`` averaged over episodes per student, its mean and std over
students, the return mean, and beside them the mean episode length and forward progress (so a policy that
stands still for the whole episode is told apart from one that walks), plus which student was trained.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from obd.data.dataset import Normalizer
from obd.device import resolve_device
from obd.distill.synthetic import SyntheticDataset
from obd.envs import check_dims, get_task, infer_task
from obd.envs.rollout import rollout
from obd.errors import ObdError
from obd.evaluate.student_spec import PAPER_STUDENT, StudentSpec, distilled_student, resolve_student
from obd.evaluate.students import StudentBatch, TrainLog


def resolve_task(task: str | None, named: str | None, obs_dim: int, act_dim: int, where: str) -> str:
    """The task to evaluate on: ``task`` if given, else the one the data names, else the one its dims imply;
    raises ObdError naming ``where`` when none is found or the dims do not match."""
    name = task or named or infer_task(None, obs_dim, act_dim)
    if name is None:
        raise ObdError(f"{where}: cannot tell the task from dims ({obs_dim}, {act_dim}); pass task=...")
    spec = get_task(name)
    check_dims(spec, obs_dim, act_dim, where)
    return spec.name


def train_students(spec: StudentSpec, states: torch.Tensor, actions: torch.Tensor, students: int, seed: int,
                   device: str | torch.device | None = None, progress: bool = False,
                   ) -> tuple[StudentBatch, TrainLog, float]:
    """``students`` fresh students of ``spec.arch`` behavior-cloned on (states (N, obs) normalized,
    actions (N, act)) as ``spec`` says, in one batched pass; returns them, the loss log and the seconds."""
    t0 = time.perf_counter()
    batch = StudentBatch(spec.arch, states.shape[-1], actions.shape[-1], students, seed=seed, device=device)
    log = batch.train(states, actions, spec.steps, optimizer=spec.optimizer, lr=spec.lr, seed=seed,
                      batch_size=spec.batch_size, progress=progress, momentum=spec.momentum)
    return batch, log, time.perf_counter() - t0


def student_fields(spec: StudentSpec) -> dict[str, Any]:
    """The training settings every result reports (flat, for tables) and the full ``student`` record."""
    return {"arch": spec.arch.name, "steps": spec.steps, "lr": spec.lr, "optimizer": spec.optimizer,
            "momentum": spec.momentum, "batch_size": spec.batch_size, "student": spec.to_dict()}


def rollout_students(batch: StudentBatch, task: str, normalizer: Normalizer, episodes: int, seed: int,
                     ensemble: bool = False, max_steps: int | None = None) -> dict[str, Any]:
    """Roll out trained students (each its own policy, or their action average when ``ensemble``)."""
    if episodes < 1:
        raise ObdError(f"episodes must be >= 1, got {episodes}")
    policy = batch.ensemble_policy if ensemble else batch.policy
    t0 = time.perf_counter()
    res = rollout(task, policy, 1 if ensemble else batch.students, episodes, normalizer=normalizer, seed=seed,
                  device=batch.device, max_steps=max_steps)
    return {**res.summary(), "rollout_seconds": time.perf_counter() - t0, **res.episodes()}


def evaluate_synthetic(syn: SyntheticDataset | str | os.PathLike, task: str | None = None, students: int = 10,
                       episodes: int = 10,
                       steps: int | None = None, lr: float | None = None, optimizer: str | None = None,
                       arch: str | None = None, hidden: int | None = None, layers: int | None = None,
                       student: StudentSpec | None = None, seed: int = 0, ensemble: bool = False,
                       device: str | torch.device | None = None, max_steps: int | None = None,
                       where: str = "synthetic set") -> dict[str, Any]:
    """Train ``students`` fresh students on ``syn`` (a :class:`SyntheticDataset`, or a synthetic set file for
    :meth:`SyntheticDataset.load`) and roll them out.

    The student is ``student`` when given, else the distillation's own (``distilled_student(syn.metadata)``),
    else :data:`PAPER_STUDENT`; ``arch``/``hidden``/``layers``/``steps``/``optimizer``/``lr`` change it
    (a cross-architecture / cross-optimizer score; see ``resolve_student``). Returns the rollout summary
    (``normalized_score_mean``/``_std`` over students, ``per_policy_*``, ``return_mean``,
    ``episode_length_mean``, ``forward_progress_mean``, per-episode ``returns``/``lengths``/
    ``forward_progress`` (K, E)) plus the student record, the final BC loss per student and timings. With
    ``ensemble`` there is one policy (the students' average action), so the std is 0.
    """
    if isinstance(syn, (str, os.PathLike)):
        if where == "synthetic set":
            where = str(syn)
        syn = SyntheticDataset.load(syn)
    if not isinstance(syn, SyntheticDataset) and not hasattr(syn, "states"):
        raise ObdError(f"{where}: expected a SyntheticDataset or a synthetic set file, got {type(syn).__name__}")
    if not isinstance(getattr(syn, "normalizer", None), Normalizer):
        raise ObdError(f"{where}: missing the state normalizer (field 'normalizer')")
    base = student or distilled_student(syn.metadata, where) or PAPER_STUDENT
    spec = resolve_student(base, arch, hidden, layers, steps, optimizer, lr)
    task = resolve_task(task, syn.task, syn.obs_dim, syn.act_dim, where)
    if len(syn) == 0:
        raise ObdError(f"{where}: the synthetic set is empty")
    batch, log, train_seconds = train_students(spec, syn.states, syn.actions, students, seed, resolve_device(device))
    out = rollout_students(batch, task, syn.normalizer, episodes, seed, ensemble, max_steps)
    return {
        "kind": "synthetic", "task": task, "n_syn": len(syn), "students": students, "episodes": episodes,
        **student_fields(spec), "seed": seed, "ensemble": ensemble, "max_steps": max_steps,
        "final_bc_loss": log.final_per_student, "train_seconds": train_seconds, **out,
    }
