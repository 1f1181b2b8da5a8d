"""Set selection (``select.*``, obd.distill.selection): the run returns the set its validation rollouts scored
highest, the set's trajectory is the same with selection on or off, resume is bit-identical, the selected set
is not counted as one more checkpoint of the run, and config errors. Hopper dims, rollouts of a few steps."""

from __future__ import annotations

import json

import pytest
import torch
from test_distill import run_until_killed
from test_onpolicy import HopperTeacher, hopper_data, onpolicy_config

from obd.distill.run import resume, start
from obd.distill.selection import selection_seed
from obd.distill.synthetic import SyntheticDataset
from obd.errors import ObdError
from obd.evaluate.runs import load_run

torch.set_num_threads(1)
SELECT = {"select.every": 2, "select.students": 2, "select.episodes": 1, "select.max_steps": 12,
          "onpolicy.share": 0.0}


def rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_the_run_returns_the_set_its_rollouts_scored_highest(tmp_path):
    data, teacher = hopper_data(), HopperTeacher()
    syn = start(onpolicy_config(**SELECT), tmp_path / "sel", data, teacher, progress=False)
    scored = [(r["step"], r["select_score"]) for r in rows(tmp_path / "sel") if "select_score" in r]
    assert [s for s, _ in scored] == [2, 4, 6]
    best_step = max(scored, key=lambda x: x[1])[0]  # max keeps the first of equal scores, as the run does
    assert syn.metadata["outer_step"] == best_step
    assert syn.metadata["selected"]["outer_step"] == best_step and syn.metadata["selected"]["last_step"] == 6
    # the file holds raw states, so sets are compared as they come back from their files
    checkpoint = SyntheticDataset.load(tmp_path / "sel" / "checkpoints" / f"step_{best_step:07d}.hdf5")
    on_disk = SyntheticDataset.load(tmp_path / "sel" / "synthetic.hdf5")
    assert torch.equal(on_disk.states, checkpoint.states) and torch.equal(on_disk.actions, checkpoint.actions)
    assert rows(tmp_path / "sel")[-1]["select_best_step"] == best_step

    # the selection draws nothing from the engine's generator: the set's trajectory is the plain run's
    plain = start(onpolicy_config(**{**SELECT, "select.every": 0}), tmp_path / "plain", data, teacher,
                  progress=False)
    last, plain_file = (SyntheticDataset.load(tmp_path / run / name) for run, name in
                        (("sel", "checkpoints/step_0000006.hdf5"), ("plain", "synthetic.hdf5")))
    assert torch.equal(plain_file.states, last.states) and torch.equal(plain_file.actions, last.actions)
    assert "selected" not in plain.metadata
    assert [r["loss"] for r in rows(tmp_path / "sel")] == [r["loss"] for r in rows(tmp_path / "plain")]
    # the run's trajectory for obd evaluate is its checkpoints; the selected set is not one more of them
    assert [step for step, _, _ in load_run(tmp_path / "sel").checkpoints] == [2, 4, 6]


def test_kill_and_resume_with_selection_is_bit_identical(tmp_path):
    data, teacher = hopper_data(), HopperTeacher()
    cfg = onpolicy_config(**SELECT)
    full = start(cfg, tmp_path / "full", data, teacher, progress=False)
    run_until_killed(cfg, data, teacher, tmp_path / "killed", at=5)
    resumed = resume(tmp_path / "killed", dataset=data, teacher=teacher, progress=False)
    assert torch.equal(full.states, resumed.states) and torch.equal(full.actions, resumed.actions)
    assert full.metadata["selected"] == resumed.metadata["selected"]
    scores = [[r.get("select_score") for r in rows(tmp_path / run)] for run in ("full", "killed")]
    assert scores[0] == scores[1]


def test_selection_seeds_are_apart_from_the_evaluations():
    seeds = {selection_seed(seed, step) for seed in range(5) for step in range(0, 20_000, 100)}
    assert len(seeds) == 1000 and min(seeds) > 10**6


@pytest.mark.parametrize("override,message", [
    ({"select.every": -1}, "select.every.*>= 0"), ({"select.students": 0}, "select.students.*>= 1"),
    ({"select.episodes": 0}, "select.episodes.*>= 1"), ({"select.max_steps": -5}, "select.max_steps.*>= 0"),
    ({"select.every": True}, "select.every.*integer"),
])
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ObdError, match=message):
        onpolicy_config(**{**SELECT, **override}).validate()


@pytest.mark.parametrize("task,message", [(None, "names none"), ("walker2d", "do not match task 'walker2d'")])
def test_a_dataset_without_its_simulator_is_refused(task, message):
    with pytest.raises(ObdError, match=f"^config key 'select.every': .*{message}.*select.every=0"):
        onpolicy_config(**SELECT).create(hopper_data(task=task), HopperTeacher(), progress=False)
