"""scripts/reproduce.py on a tiny problem: every method runs, results are cached and resumable, and
``--cached-only`` assembles the table without computing anything."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from obd.data import load_dataset, write_d4rl

OBS, ACT, N = 11, 3, 200  # hopper dims: evaluation rolls out in Hopper-v5
TINY = """objective: avpbc
n_syn: 8
student: {kind: tanh_gaussian, hidden: 8, depth: 2}
inner: {steps: 2, lr: 0.1}
outer: {optimizer: adam, lr: 0.01, batch: 16}
outer_steps: 2
checkpoint_every: 1
device: cpu
"""


def _load_script():
    path = Path(__file__).resolve().parents[1] / "scripts" / "reproduce.py"
    spec = importlib.util.spec_from_file_location("obd_reproduce_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def problem(tmp_path):
    from obd.teachers import Teacher
    from obd.teachers.networks import EnsembleQ, TeacherActor

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(N, OBS)).astype(np.float32)
    terminals = np.zeros(N, bool)
    terminals[49::50] = True
    data = write_d4rl(tmp_path / "hopper_tiny-v5.hdf5", observations=obs,
                      actions=np.tanh(rng.normal(size=(N, ACT))).astype(np.float32), rewards=rng.normal(size=N),
                      terminals=terminals, timeouts=np.zeros(N, bool), next_observations=obs + 0.01)
    torch.manual_seed(0)
    teacher = Teacher(TeacherActor(OBS, ACT, (8, 8), "tanh_gaussian"), EnsembleQ(OBS, ACT, (8, 8), 2),
                      load_dataset(str(data)).normalizer, task="hopper", device="cpu")
    teacher.save(tmp_path / "teacher.pt")
    (tmp_path / "tiny.yaml").write_text(TINY)
    return tmp_path, f"{data}={tmp_path / 'teacher.pt'}"


def test_reproduce_runs_caches_and_assembles(problem):
    tmp, pair = problem
    script = _load_script()
    common = ["--dataset", pair, "--preset", str(tmp / "tiny.yaml"), "--students", "1", "--episodes", "1",
              "--bc-steps", "5", "--out", str(tmp / "runs")]
    assert script.main(common + ["--seeds", "0", "--results", str(tmp / "r0.md")]) == 0
    root = tmp / "runs" / "hopper_tiny-v5"
    for method in ("dbc", "pbc", "avpbc", "sdw"):
        assert (root / f"{method}_seed0" / "synthetic.hdf5").is_file()
        assert "normalized_score_mean" in json.loads((root / f"{method}_seed0" / "eval.json").read_text())
    assert (root / "random_seed0.json").is_file() and (root / "bc_seed0.json").is_file()
    table = (tmp / "r0.md").read_text()
    for label in ("Random selection", "DBC", "PBC", "Av-PBC", "SDW (Av-PBC)", "BC on the whole dataset", "Teacher"):
        assert f"| {label} |" in table

    # seed 1 was never run: --cached-only leaves it out instead of computing it
    before = sorted(p.name for p in root.iterdir())
    assert script.main(common + ["--seeds", "0,1", "--cached-only", "--results", str(tmp / "all.md")]) == 0
    assert sorted(p.name for p in root.iterdir()) == before
    assert "--cached-only" in (tmp / "all.md").read_text()


def test_reproduce_rejects_bad_arguments(problem, capsys):
    tmp, pair = problem
    script = _load_script()
    assert script.main(["--dataset", pair, "--methods", "dbc,nope", "--out", str(tmp / "x")]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert script.main(["--dataset", "no-teacher-given"]) == 2
