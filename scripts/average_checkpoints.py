"""Would the average of a run's last synthetic sets teach better than each of them? (the idea behind outer.ema)

    python scripts/average_checkpoints.py RUN [RUN ...] [--last 5 --students 10 --episodes 10 --seed 0]

For each distillation run folder (``obd distill --out RUN``, or a sweep trial's folder): the last ``--last``
checkpoint sets (``RUN/checkpoints/step_*.hdf5``) are each scored by the OBD protocol (fresh students trained
as the distillation did, ``tanh(mean)`` rollouts, D4RL-normalized), then their element-wise average (states in
normalized space, actions) is scored the same way. One JSON line per run: the checkpoints' steps and scores,
their mean, the average's score and spread between students, and the mean distance (normalized units) of each
checkpoint's states from the last one's, which says how far the set still moves.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from obd.distill.folder import SET_RE, DistillFolder
from obd.distill.synthetic import SyntheticDataset
from obd.errors import ObdError, cli_entry
from obd.evaluate import evaluate_synthetic


def checkpoint_sets(run: Path, last: int) -> list[tuple[int, SyntheticDataset]]:
    """(step, set) of the newest ``last`` checkpoint sets of ``run``, oldest first."""
    folder = DistillFolder(run)
    files = folder.checkpoint_sets()
    if len(files) < last:
        raise ObdError(f"{run}: {len(files)} checkpoint sets in {folder.checkpoints_dir}, --last asks for {last}")
    return [(int(SET_RE.match(f.name).group(1)), SyntheticDataset.load(f)) for f in files[-last:]]


def average_set(sets: list[SyntheticDataset]) -> SyntheticDataset:
    """The element-wise mean of sets of one shape (N, obs) / (N, act), with the last set's normalizer and
    metadata (so its students are trained as the distillation's)."""
    last = sets[-1]
    if any(s.states.shape != last.states.shape or s.actions.shape != last.actions.shape for s in sets):
        raise ObdError("checkpoint sets of different shapes cannot be averaged")
    states = torch.stack([s.states for s in sets]).mean(0)
    actions = torch.stack([s.actions for s in sets]).mean(0)
    return SyntheticDataset(states, actions, last.normalizer, last.task, dict(last.metadata))


@cli_entry
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--last", type=int, default=5)
    p.add_argument("--students", type=int, default=10)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.last < 1:
        raise ObdError(f"--last: expected an integer >= 1, got {a.last}")
    for run in a.runs:
        found = checkpoint_sets(run, a.last)
        sets = [s for _, s in found]
        individual = [evaluate_synthetic(s, students=a.students, episodes=a.episodes, seed=a.seed)
                      ["normalized_score_mean"] for s in sets]
        avg = evaluate_synthetic(average_set(sets), students=a.students, episodes=a.episodes, seed=a.seed)
        moved = [float((s.states - sets[-1].states).norm(dim=1).mean()) for s in sets]
        print(json.dumps({"run": str(run), "steps": [step for step, _ in found], "scores": individual,
                          "mean": sum(individual) / len(individual), "average_set": avg["normalized_score_mean"],
                          "average_set_spread": avg["normalized_score_std"], "distance_to_last": moved}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
