"""Where students trained on a synthetic set go, and how well they imitate the teacher there.

The outer objective scores a student on dataset states; a rollout visits the student's own states. This
module rolls out fresh students of a set, records every state they visit, and measures at those states

* the distance to the data: the Euclidean distance, in normalized state units, from each visited state to
  its nearest dataset state (scikit-learn nearest neighbours on up to ``max_ref`` dataset states);
* the imitation error e(s) = mean_j (student(s)_j - a*(s)_j)^2 against the teacher's deterministic action;

overall and within distance bands (``BANDS``), so one can see whether a set's students fail because they
leave the data and are wrong there, or are wrong on the data already.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from obd.envs.rollout import rollout
from obd.evaluate.protocol import resolve_task, train_students
from obd.evaluate.student_spec import PAPER_STUDENT, distilled_student

#: distance bands (normalized state units) of the visited states' nearest dataset state
BANDS = (0.0, 0.5, 1.0, 2.0, float("inf"))


def onpolicy_error(syn: Any, teacher: Any, dataset_states: np.ndarray, students: int = 10, episodes: int = 3,
                   seed: int = 0, max_ref: int = 200_000) -> dict[str, Any]:
    """Roll out ``students`` students trained on ``syn`` (a SyntheticDataset, trained as its distillation
    did) for ``episodes`` episodes each; ``dataset_states`` (N, obs) are the RAW dataset observations.
    Returns the normalized score, the visited states' count, mean distance to the data, the imitation
    error at them, and per band of ``BANDS``: the share of visited states and the mean error there."""
    from sklearn.neighbors import NearestNeighbors

    spec = distilled_student(syn.metadata, "synthetic set") or PAPER_STUDENT
    task = resolve_task(None, syn.task, syn.obs_dim, syn.act_dim, "synthetic set")
    batch, _, _ = train_students(spec, syn.states, syn.actions, students, seed)
    visited: list[np.ndarray] = []
    actions: list[np.ndarray] = []

    def policy(obs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        act = batch.policy(obs, idx)
        visited.append(obs.cpu().numpy())
        actions.append(act.cpu().numpy())
        return act

    res = rollout(task, policy, students, episodes, normalizer=syn.normalizer, seed=seed)
    states = np.concatenate(visited)
    student_actions = np.concatenate(actions)
    teacher_actions = torch.as_tensor(teacher.act(syn.normalizer.denormalize(states))).cpu().numpy()
    error = ((student_actions - teacher_actions) ** 2).mean(-1)
    reference = np.asarray(syn.normalizer.normalize(dataset_states), dtype=np.float32)
    if len(reference) > max_ref:
        reference = reference[np.random.default_rng(seed).choice(len(reference), max_ref, replace=False)]
    distance = NearestNeighbors(n_neighbors=1).fit(reference).kneighbors(states)[0][:, 0]
    bands = []
    for lo, hi in zip(BANDS[:-1], BANDS[1:]):
        inside = (distance >= lo) & (distance < hi)
        bands.append({"from": lo, "to": hi, "share": float(inside.mean()),
                      "error": float(error[inside].mean()) if inside.any() else None})
    return {"normalized_score_mean": float(res.scores.mean()),
            "normalized_score_std": float(res.scores.mean(1).std()),
            "visited_states": int(len(states)), "distance_mean": float(distance.mean()),
            "error_mean": float(error.mean()), "bands": bands}
