"""Few-seed statistics for comparing methods (rliable: Agarwal et al., NeurIPS 2021).

Hopper and walker2d scores are bimodal (a student hops or falls), so a mean over a few seeds says little.
Every comparison obd reports uses the interquartile mean (IQM: the mean of the middle 50% of scores) with
a stratified-bootstrap confidence interval from ``rliable``, beside the plain mean, and the spread between
students trained on the same set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: bootstrap resamples behind every interval obd reports (rliable's default is 50,000; 2,000 keeps a
#: 9-dataset table to about a second and moves the interval ends by well under a point)
REPS = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its ``confidence`` interval [lo, hi]."""

    value: float
    lo: float
    hi: float

    def __str__(self) -> str:
        return f"{self.value:.1f} [{self.lo:.1f}, {self.hi:.1f}]"


def _interval(matrix: np.ndarray, reps: int, seed: int) -> Estimate:
    from rliable import library as rly
    from rliable import metrics

    # rliable's stratified resampling draws from numpy's global generator (its random_state argument does not
    # reach those draws), so the interval is made reproducible by seeding that generator here and restoring
    # the caller's state after
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        point, interval = rly.get_interval_estimates(
            {"x": matrix}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps,
            confidence_interval_size=CONFIDENCE)
    finally:
        np.random.set_state(saved)
    return Estimate(float(point["x"][0]), float(interval["x"][0, 0]), float(interval["x"][1, 0]))


def iqm(scores_by_seed: Sequence[Sequence[float]], reps: int = REPS, seed: int = 0) -> Estimate:
    """IQM of all students' scores of one method on one dataset, ``scores_by_seed`` (seeds x students: every
    student of every evaluated checkpoint of a seed's run), with a stratified-bootstrap interval that
    resamples students within each seed (rliable's score matrix (students, seeds)). Seeds with more
    students than the fewest are cut to that count, in order, so every stratum weighs the same."""
    rows = [np.asarray(s, dtype=np.float64) for s in scores_by_seed if len(s)]
    if not rows:
        raise ValueError("iqm: no scores")
    n = min(len(r) for r in rows)
    return _interval(np.stack([r[:n] for r in rows], axis=1), reps, seed)


def aggregate_iqm(scores: np.ndarray, reps: int = REPS, seed: int = 0) -> Estimate:
    """IQM over datasets of a method's per-run scores ``scores`` (seeds x datasets, e.g. each trial's mean
    score), with rliable's stratified bootstrap over seeds within each dataset."""
    return _interval(np.asarray(scores, dtype=np.float64), reps, seed)


def student_spread(per_set_scores: Sequence[Sequence[float]]) -> float:
    """The spread between students trained on the same set: the standard deviation over students of each
    set's scores, averaged over sets (``per_set_scores``: sets x students)."""
    spreads = [float(np.std(s)) for s in per_set_scores if len(s) > 1]
    return float(np.mean(spreads)) if spreads else 0.0
