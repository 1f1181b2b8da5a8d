"""obd.evaluate.stats (IQM and rliable's stratified-bootstrap intervals) and the sweep table's robust section."""

from __future__ import annotations

import numpy as np
import pytest

from obd.evaluate.stats import aggregate_iqm, iqm, student_spread
from obd.sweep.table import render_iqm


def test_iqm_is_the_mean_of_the_middle_half_and_its_interval_covers_it():
    # two seeds of 8 students: the outer quarters (0s and 100s) are cut, the middle half is 10..40
    seed_a = [0, 0, 10, 20, 30, 40, 100, 100]
    seed_b = [0, 0, 10, 20, 30, 40, 100, 100]
    est = iqm([seed_a, seed_b])
    assert est.value == pytest.approx(25.0)
    assert est.lo <= est.value <= est.hi
    state = np.random.get_state()
    assert iqm([seed_a, seed_b]) == est  # seeded: the same interval every time
    assert np.array_equal(np.random.get_state()[1], state[1])  # and numpy's global generator left as it was
    # a bimodal set (half fall at 5, half hop at 60): the interval is wide, a constant one is a point
    wide = iqm([[5] * 5 + [60] * 5, [5] * 6 + [60] * 4])
    assert wide.hi - wide.lo > 10
    flat = iqm([[30.0] * 10, [30.0] * 10])
    assert flat.lo == flat.hi == flat.value == 30.0


def test_unequal_students_are_cut_to_the_fewest_and_empty_input_fails():
    assert iqm([[1, 2, 3, 4], [1, 2, 3, 4, 1000]]).value == iqm([[1, 2, 3, 4], [1, 2, 3, 4]]).value
    with pytest.raises(ValueError):
        iqm([[]])


def test_aggregate_iqm_and_student_spread():
    scores = np.array([[10.0, 20.0, 30.0], [12.0, 22.0, 32.0]])  # seeds x datasets
    est = aggregate_iqm(scores)
    assert scores.min() <= est.lo <= est.value <= est.hi <= scores.max()
    assert student_spread([[0, 10], [5, 5]]) == pytest.approx(2.5)


def _row(method, seed, per_student, dataset="hopper-medium-v5"):
    return {"dataset": dataset, "spec": dataset, "method": method, "seed": seed,
            "normalized_score_mean": float(np.mean(per_student)),
            "checkpoints": [{"step": 1, "normalized_score_mean": float(np.mean(per_student)),
                             "per_student": per_student}]}


def test_table_section_reports_iqm_spread_and_share_of_teacher():
    rows = [_row("avpbc", s, [10.0 + s, 20.0, 30.0, 40.0]) for s in (0, 1, 2)]
    rows += [_row("teacher", s, [50.0]) for s in (0, 1, 2)]
    text = "\n".join(render_iqm(rows))
    line = next(x for x in text.splitlines() if x.startswith("| Av-PBC |"))
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert cells[1].startswith("25.") and "±" in cells[1] and "[" in cells[1]
    assert cells[-1] == f"{100 * np.mean([25.0, 25.25, 25.5]) / 50:.0f}%"
    # rows written before results.jsonl kept per-student scores leave the cell empty, not wrong
    old = [{**r, "checkpoints": [{"step": 1, "normalized_score_mean": r["normalized_score_mean"]}]} for r in rows]
    old_line = next(x for x in render_iqm(old) if x.startswith("| Av-PBC |"))
    assert old_line.split("|")[2].strip() == ""
