"""scripts/average_checkpoints.py on a tiny run: the averaged set is the element-wise mean of the last
checkpoint sets, every one of them is scored, and a run with too few checkpoints is a one-line error."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from obd.distill import DistillConfig
from obd.distill.run import start
from obd.distill.synthetic import SyntheticDataset

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("average_checkpoints", ROOT / "scripts" / "average_checkpoints.py")
average_checkpoints = importlib.util.module_from_spec(spec)
spec.loader.exec_module(average_checkpoints)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run(tmp_path_factory, make_problem):
    """A 3-step Av-PBC run with a checkpoint set at every step, on a random Hopper-shaped file."""
    from obd.data import load_dataset
    from obd.teachers import Teacher

    tmp = tmp_path_factory.mktemp("average")
    data, teacher = make_problem(tmp, np.random.default_rng(0).normal(size=(200, 11)) * 0.05, task="hopper")
    cfg = DistillConfig(n_syn=8, student=dict(hidden=8, depth=2), inner=dict(steps=2), outer=dict(batch=16, lr=0.05),
                        outer_steps=3, checkpoint_every=1, device="cpu")
    start(cfg, tmp / "run", load_dataset(str(data)), Teacher.load(teacher), progress=False)
    return tmp / "run"


def test_the_average_is_the_mean_of_the_last_sets(run):
    found = average_checkpoints.checkpoint_sets(run, 2)
    assert [step for step, _ in found] == [2, 3]
    sets = [SyntheticDataset.load(run / "checkpoints" / f"step_{s:07d}.hdf5") for s in (2, 3)]
    avg = average_checkpoints.average_set([s for _, s in found])
    torch.testing.assert_close(avg.states, (sets[0].states + sets[1].states) / 2)
    torch.testing.assert_close(avg.actions, (sets[0].actions + sets[1].actions) / 2)
    assert avg.metadata["config"] == sets[1].metadata["config"]


def test_one_line_per_run_with_every_checkpoint_scored(run, capsys):
    assert average_checkpoints.main([str(run), "--last", "2", "--students", "2", "--episodes", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] == [2, 3] and len(out["scores"]) == 2
    assert out["mean"] == pytest.approx(sum(out["scores"]) / 2)
    assert out["distance_to_last"][-1] == 0.0 and out["distance_to_last"][0] > 0
    assert np.isfinite(out["average_set"]) and out["average_set_spread"] >= 0


def test_too_few_checkpoints_is_an_error(run, capsys):
    assert average_checkpoints.main([str(run), "--last", "9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--last asks for 9" in err and len(err.strip().splitlines()) == 1
