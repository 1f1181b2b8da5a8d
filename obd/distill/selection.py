"""Set selection: the run returns the set its own validation rollouts scored highest, not the last one.

On hopper the quickstart's sets score best about a third of the way through the run and fall after it while
the outer loss keeps falling (docs/results.md, "Choosing the set by its rollouts"): lower action error on the
outer objective's states stops meaning longer episodes. The only measure of what the set is for is a student
trained on it playing the task, so every ``select.every`` outer steps (and at the last) the set the run would
return (the moving average with ``outer.ema``) is scored the way :func:`obd.evaluate.evaluate_synthetic`
scores it: ``select.students`` fresh students trained as the protocol trains them, ``select.episodes``
deterministic episodes each, their mean D4RL-normalized score. The best set so far is kept (the earliest on a
tie) and is what :meth:`obd.distill.engine.Distiller.fit` returns; its metadata names the step it was taken at.

Like the on-policy states (:mod:`obd.distill.onpolicy`) this uses the simulator during distillation, so a
run with it on is not offline in the strict sense; the selection's students and episodes are seeded from the
run's seed and the outer step, apart from the seeds ``obd evaluate`` uses, and draw nothing from the engine's
generator, so the trajectory of the set is the same with selection on or off and a resumed run (the best set
is part of the checkpoint) is bit-identical. Its time counts in the run's ``cpu_time``.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from obd.distill.onpolicy import simulator_problem
from obd.errors import ObdError

#: selection seeds start here, above the small seeds ``obd evaluate`` and the sweep use
SEED_BASE = 1 << 28


def selection_seed(seed: int, step: int) -> int:
    """The seed of the students and episodes that score the set at outer ``step`` of a run seeded ``seed``."""
    return SEED_BASE + 100_003 * seed + step


class SetSelection:
    """The best set a run's validation rollouts have scored so far. ``due(step, total)``: whether the set at
    outer ``step`` of a ``total``-step run is scored; ``offer(step, syn)`` scores the set ``syn`` (a
    :class:`~obd.distill.synthetic.SyntheticDataset`: normalized states (N_syn, obs), actions (N_syn, act), CPU
    copies), keeps its tensors when it is the best, and returns the metrics line's fields."""

    def __init__(self, config: Any, task: str | None, obs_dim: int, act_dim: int, seed: int, device: torch.device):
        problem = simulator_problem(config, task, obs_dim, act_dim, "set selection's rollouts")
        if problem:
            raise ObdError(f"{problem}; distill without it (select.every=0)")
        self.config, self.task, self.seed, self.device = config, task, seed, device
        self.best: dict[str, Any] | None = None

    def due(self, step: int, total: int) -> bool:
        return step % self.config.every == 0 or step == total

    def offer(self, step: int, syn: Any) -> dict[str, float]:
        from obd.evaluate.protocol import evaluate_synthetic

        cfg = self.config
        start = time.perf_counter()
        result = evaluate_synthetic(syn, self.task, students=cfg.students, episodes=cfg.episodes,
                                    seed=selection_seed(self.seed, step), device=self.device,
                                    max_steps=cfg.max_steps or None, where=f"the set at outer step {step}")
        score = float(result["normalized_score_mean"])
        if self.best is None or score > self.best["score"]:
            self.best = {"step": step, "score": score, "states": syn.states, "actions": syn.actions}
        return {"select_score": score, "select_std": float(result["normalized_score_std"]),
                "select_best_step": self.best["step"], "select_sec": time.perf_counter() - start}

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.best is None else dict(self.best)

    def load_state_dict(self, state: dict[str, Any] | None, where: str) -> None:
        if state is not None and not {"step", "score", "states", "actions"} <= set(state):
            raise ObdError(f"{where}: the selected set lacks 'step', 'score', 'states' or 'actions'")
        self.best = None if state is None else dict(state)

