"""Baselines under the same rollout: random real pairs and BC on the whole dataset (the teacher itself is
:func:`obd.teachers.evaluation.evaluate_teacher`, which teacher training shares).

A random selection carries no distillation config, so ``evaluate_synthetic`` trains the paper's student on
it unless told otherwise (pass ``student=`` the distilled set's own to compare the two like for like);
whole-data BC has its own protocol, ``BC_STUDENT``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from obd.data.dataset import TransitionDataset
from obd.device import resolve_device
from obd.distill.synthetic import SyntheticDataset
from obd.errors import ObdError
from obd.evaluate.protocol import resolve_task, rollout_students, student_fields, train_students
from obd.evaluate.student_spec import BC_STUDENT, resolve_student


def random_selection(dataset: TransitionDataset, size: int = 256, seed: int = 0) -> SyntheticDataset:
    """The "random 256 real pairs" baseline: ``size`` distinct transitions' (s, a), as a synthetic set
    normalized with the dataset's normalizer (evaluate it with ``evaluate_synthetic``)."""
    if not 1 <= size <= len(dataset):
        raise ObdError(f"random selection: size must be in [1, {len(dataset)}] (the dataset's size), got {size}")
    idx = np.sort(np.random.default_rng(seed).choice(len(dataset), size=size, replace=False))
    meta = {"method": "random", "size": size, "seed": seed, "source": dataset.source}
    return SyntheticDataset.from_observations(dataset.observations[idx], dataset.actions[idx],
                                              dataset.normalizer, dataset.task, meta)


def evaluate_bc(dataset: TransitionDataset, steps: int | None = None, batch_size: int | None = None,
                lr: float | None = None, optimizer: str | None = None, arch: str | None = None,
                hidden: int | None = None, layers: int | None = None, students: int = 1, episodes: int = 10,
                seed: int = 0, task: str | None = None, device: str | torch.device | None = None,
                max_steps: int | None = None, progress: bool = False) -> dict[str, Any]:
    """BC on the whole dataset under :data:`BC_STUDENT` (3x256 tanh-Gaussian, 10,000 Adam steps at 1e-3 on
    minibatches of 256 drawn with replacement, ``bc_loss`` on normalized states); any argument given
    changes that (see ``resolve_student``). Then the same rollout as ``evaluate_synthetic``."""
    spec = resolve_student(BC_STUDENT, arch, hidden, layers, steps, optimizer, lr)
    if batch_size is not None:
        if batch_size < 1:
            raise ObdError(f"batch_size must be >= 1, got {batch_size}")
        spec = replace(spec, batch_size=batch_size)
    where = dataset.source or "dataset"
    task = resolve_task(task, dataset.task, dataset.obs_dim, dataset.act_dim, where)
    norm = dataset.normalizer
    states = torch.as_tensor(np.asarray(norm.normalize(dataset.observations), dtype=np.float32))
    batch, log, train_seconds = train_students(spec, states, torch.as_tensor(dataset.actions), students, seed,
                                               resolve_device(device), progress)
    out = rollout_students(batch, task, norm, episodes, seed, False, max_steps)
    return {
        "kind": "bc", "task": task, "dataset_size": len(dataset), "students": students, "episodes": episodes,
        **student_fields(spec), "seed": seed, "max_steps": max_steps, "final_bc_loss": log.final_per_student,
        "train_seconds": train_seconds, **out,
    }
