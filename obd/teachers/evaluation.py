"""A teacher's score in its environment: :func:`evaluate_teacher`, the one rollout of a teacher that teacher
training (its evaluations) and ``obd evaluate teacher`` (the baseline row) share."""

from __future__ import annotations

import time
from typing import Any

from obd.envs.rollout import rollout
from obd.errors import ObdError


def evaluate_teacher(teacher: Any, episodes: int = 10, seed: int = 0, max_steps: int | None = None) -> dict[str, Any]:
    """Roll out ``teacher.act`` (deterministic action on raw states; the teacher normalizes internally) for
    ``episodes`` seeded episodes of ``teacher.task``; ``max_steps`` None or 0: the task's episode limit."""
    if episodes < 1:
        raise ObdError(f"episodes must be >= 1, got {episodes}")
    for attr in ("task", "act", "device"):
        if not hasattr(teacher, attr):
            raise ObdError(f"teacher: missing attribute '{attr}' required by the Teacher contract")
    t0 = time.perf_counter()
    res = rollout(teacher.task, lambda obs, idx: teacher.act(obs), 1, episodes, normalizer=None, seed=seed,
                  device=teacher.device, max_steps=max_steps or None)
    return {"kind": "teacher", "task": res.task, "episodes": episodes, "seed": seed, "max_steps": max_steps,
            "metadata": dict(getattr(teacher, "metadata", {}) or {}),
            "rollout_seconds": time.perf_counter() - t0, **res.summary(), **res.episodes()}
