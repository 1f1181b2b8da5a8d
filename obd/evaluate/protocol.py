"""The OBD evaluation protocol: train fresh students on a synthetic set, roll out ``tanh(mean)``.

Defaults reproduce the distillation inner loop (``MLPStudent`` 3x256 tanh-Gaussian, orthogonal init,
100 full-batch SGD steps at lr 0.1, ``bc_loss`` with fresh noise each step). Each of the K students
plays E episodes (episode ``e`` of every student starts from ``reset(seed=seed + e)``) with states
normalized by the synthetic set's normalizer; the K students share one batched forward per env step.
Reported: the D4RL normalized score ``100 * (R - R_random) / (R_expert - R_random)`` averaged over
episodes per student, its mean and std over students, and the return mean.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from obd.data.dataset import Normalizer
from obd.distill.synthetic import SyntheticDataset
from obd.envs import check_dims, get_task, infer_task
from obd.envs.rollout import rollout
from obd.device import resolve_device
from obd.errors import ObdError
from obd.evaluate.architectures import ARCHITECTURES
from obd.evaluate.students import StudentBatch, check_optimizer, resolve_lr


def resolve_task(task: str | None, named: str | None, obs_dim: int, act_dim: int, where: str) -> str:
    """The task to evaluate on: ``task`` if given, else the one the data names, else the one its dims imply;
    raises ObdError naming ``where`` when none is found or the dims do not match."""
    name = task or named or infer_task(None, obs_dim, act_dim)
    if name is None:
        raise ObdError(f"{where}: cannot tell the task from dims ({obs_dim}, {act_dim}); pass task=...")
    spec = get_task(name)
    check_dims(spec, obs_dim, act_dim, where)
    return spec.name


def check_arch(arch: str) -> None:
    if arch not in ARCHITECTURES:
        raise ObdError(f"arch '{arch}' unknown; expected one of {list(ARCHITECTURES)}")


def rollout_students(batch: StudentBatch, task: str, normalizer: Normalizer, episodes: int, seed: int,
                     ensemble: bool = False, max_steps: int | None = None) -> dict[str, Any]:
    """Roll out trained students (each its own policy, or their action average when ``ensemble``)."""
    if episodes < 1:
        raise ObdError(f"episodes must be >= 1, got {episodes}")
    policy = batch.ensemble_policy if ensemble else batch.policy
    t0 = time.perf_counter()
    res = rollout(task, policy, 1 if ensemble else batch.k, episodes, normalizer=normalizer, seed=seed,
                  device=batch.device, max_steps=max_steps)
    out = res.summary()
    out["rollout_seconds"] = time.perf_counter() - t0
    out["returns"] = res.returns.tolist()
    return out


def evaluate_synthetic(syn: SyntheticDataset, task: str | None = None, students: int = 10, episodes: int = 10,
                       steps: int = 100, lr: float | None = None, optimizer: str = "sgd", arch: str = "mlp3",
                       seed: int = 0, ensemble: bool = False, device: str | torch.device | None = None,
                       max_steps: int | None = None, where: str = "synthetic set") -> dict[str, Any]:
    """Train ``students`` fresh students for ``steps`` full-batch steps on ``syn`` and roll them out.

    ``lr=None`` takes the optimizer's default (``obd.evaluate.students.DEFAULT_LR``: 0.1 for SGD, the
    inner loop's). Returns the rollout summary (``normalized_score_mean``/``_std`` over students,
    ``per_policy_normalized_score``, ``return_mean``, ...) plus the settings, the final BC loss per student
    and timings. With ``ensemble`` there is one policy (the students' average action), so the std is 0.
    """
    if not isinstance(getattr(syn, "normalizer", None), Normalizer):
        raise ObdError(f"{where}: missing the state normalizer (field 'normalizer')")
    check_arch(arch)
    check_optimizer(optimizer)
    lr = resolve_lr(optimizer, lr)
    task = resolve_task(task, syn.task, syn.obs_dim, syn.act_dim, where)
    if len(syn) == 0:
        raise ObdError(f"{where}: the synthetic set is empty")
    device = resolve_device(device)
    t0 = time.perf_counter()
    batch = StudentBatch(arch, syn.obs_dim, syn.act_dim, students, seed=seed, device=device)
    log = batch.train(syn.states, syn.actions, steps, optimizer=optimizer, lr=lr, seed=seed)
    train_seconds = time.perf_counter() - t0
    out = rollout_students(batch, task, syn.normalizer, episodes, seed, ensemble, max_steps)
    return {
        "kind": "synthetic", "task": task, "n_syn": len(syn), "students": students, "episodes": episodes,
        "steps": steps, "lr": lr, "optimizer": optimizer, "arch": arch, "seed": seed, "ensemble": ensemble,
        "max_steps": max_steps, "final_bc_loss": log.final_per_student, "train_seconds": train_seconds,
        **out,
    }
