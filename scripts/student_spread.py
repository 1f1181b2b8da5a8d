"""Why do the students of one synthetic set differ: their init, their training noise, or neither?

    python scripts/student_spread.py SET.hdf5 [SET.hdf5 ...] [--students 20 --episodes 5 --seed 0]
    python scripts/student_spread.py SET.hdf5 --dataset FILE --teacher T   # also the error's bias and variance

For each set, ``--students`` students trained as its distillation did (``obd.evaluate.protocol``) are rolled out
three ways, each student with its own episodes (``reset(seed + e)``, as the protocol does):

* ``inits``: the protocol itself: every student its own init and its own inner-loop noise;
* ``one_init``: every student starts from the first student's init and keeps its own noise, so what is left of
  the spread between them is the noise's (the sampled actions of the tanh-Gaussian BC loss);
* ``ensemble``: one policy, the average action of the ``inits`` students: the behaviour the set teaches with the
  init's share averaged out.

With ``--dataset`` and ``--teacher``, the ``inits`` students' squared error to the teacher's deterministic action
on ``--states`` dataset states is split into the error of their mean action (``bias2``) and their spread around
it (``variance``): ``mse = bias2 + variance``. One JSON line per set.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from obd.data import load_dataset
from obd.distill import load_synthetic
from obd.errors import ObdError, cli_entry
from obd.evaluate.protocol import rollout_students
from obd.evaluate.student_spec import PAPER_STUDENT, distilled_student
from obd.evaluate.students import StudentBatch
from obd.teachers import Teacher


def train(spec, syn, students: int, seed: int, one_init: bool) -> StudentBatch:
    """``students`` students of the set's own spec trained on it; with ``one_init`` all from the first's init."""
    batch = StudentBatch(spec.arch, syn.obs_dim, syn.act_dim, students, seed=seed)
    if one_init:
        batch.params = {k: v[:1].expand_as(v).clone() for k, v in batch.params.items()}
    batch.train(syn.states, syn.actions, spec.steps, optimizer=spec.optimizer, lr=spec.lr, seed=seed,
                batch_size=spec.batch_size, momentum=spec.momentum)
    return batch


def scores(out: dict) -> dict:
    s = np.asarray(out["per_policy_normalized_score"], dtype=float)
    return {"mean": round(float(s.mean()), 2), "std": round(float(s.std()), 2), "min": round(float(s.min()), 2),
            "max": round(float(s.max()), 2)}


def error_split(batch: StudentBatch, syn, teacher: Teacher, states: np.ndarray) -> dict:
    """Squared error to the teacher on raw ``states`` (M, obs): its split into bias2 + variance."""
    normalized = torch.as_tensor(syn.normalizer.normalize(states), dtype=torch.float32)
    target = torch.as_tensor(teacher.act(states), dtype=torch.float32)
    actions = batch.act_all(normalized)
    mean = actions.mean(0)
    bias2, variance = float(((mean - target) ** 2).mean()), float(((actions - mean) ** 2).mean())
    return {"mse": round(bias2 + variance, 5), "bias2": round(bias2, 5), "variance": round(variance, 5)}


@cli_entry
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sets", nargs="+")
    p.add_argument("--students", type=int, default=20)
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", help="a dataset spec: adds the error's bias and variance (with --teacher)")
    p.add_argument("--teacher")
    p.add_argument("--states", type=int, default=4000)
    a = p.parse_args(argv)
    if (a.dataset is None) != (a.teacher is None):
        raise ObdError("--dataset and --teacher go together")
    if a.students < 2 or a.episodes < 1:
        raise ObdError(f"--students must be >= 2 and --episodes >= 1, got {a.students} and {a.episodes}")
    teacher = states = None
    if a.dataset is not None:
        observations = load_dataset(a.dataset).observations
        rows = np.random.default_rng(a.seed).choice(len(observations), min(a.states, len(observations)),
                                                    replace=False)
        states, teacher = observations[np.sort(rows)], Teacher.load(a.teacher)
    for path in a.sets:
        syn = load_synthetic(path)
        spec = distilled_student(syn.metadata, path) or PAPER_STUDENT
        inits = train(spec, syn, a.students, a.seed, one_init=False)
        one = train(spec, syn, a.students, a.seed, one_init=True)
        row = {"set": path, "students": a.students, "episodes": a.episodes,
               "inits": scores(rollout_students(inits, syn.task, syn.normalizer, a.episodes, a.seed)),
               "one_init": scores(rollout_students(one, syn.task, syn.normalizer, a.episodes, a.seed)),
               "ensemble": scores(rollout_students(inits, syn.task, syn.normalizer, a.episodes, a.seed,
                                                   ensemble=True))["mean"]}
        if teacher is not None:
            row["error"] = error_split(inits, syn, teacher, states)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
