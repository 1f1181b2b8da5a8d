"""scripts/student_spread.py on a tiny Av-PBC run's set: one JSON line whose error splits into bias2 + variance,
students that share one init, and one-line errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "student_spread.py"


@pytest.fixture(scope="module")
def problem(tmp_path_factory, make_tiny_run):
    """(the set of a finished 4-step Av-PBC run on a random Hopper-shaped file, the data file, the teacher file)"""
    run, data, teacher = make_tiny_run(tmp_path_factory.mktemp("spread"))
    return run / "synthetic.hdf5", data, teacher


def test_one_line_per_set_with_the_error_split(problem):
    syn, data, teacher = problem
    out = subprocess.run([sys.executable, str(SCRIPT), str(syn), "--students", "3", "--episodes", "1", "--dataset",
                          str(data), "--teacher", str(teacher), "--states", "50"],
                         check=True, capture_output=True, text=True).stdout
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["set"] == str(syn) and row["students"] == 3
    for key in ("inits", "one_init"):
        assert row[key]["min"] <= row[key]["mean"] <= row[key]["max"] and row[key]["std"] >= 0
    assert np.isfinite(row["ensemble"])
    err = row["error"]
    assert err["mse"] == pytest.approx(err["bias2"] + err["variance"], abs=2e-5) and err["variance"] > 0


def test_one_init_students_start_alike(problem, load_script):
    script = load_script("student_spread")
    from obd.distill import load_synthetic
    from obd.evaluate.student_spec import distilled_student

    syn = load_synthetic(problem[0])
    untrained = dataclasses.replace(distilled_student(syn.metadata), steps=0)
    one = script.train(untrained, syn, 3, 0, one_init=True)
    many = script.train(untrained, syn, 3, 0, one_init=False)
    for name, value in one.params.items():
        assert torch.equal(value[0], value[1]) and torch.equal(value[0], value[2])
        assert torch.equal(value[0], many.params[name][0])
    assert not all(torch.equal(v[0], v[1]) for v in many.params.values())


@pytest.mark.parametrize("argv,expect", [
    (["--students", "1"], "--students must be >= 2 and --episodes >= 1, got 1 and 5"),
    (["--teacher", "x.pt"], "--dataset and --teacher go together"),
])
def test_bad_input_is_one_line(problem, argv, expect):
    done = subprocess.run([sys.executable, str(SCRIPT), str(problem[0]), *argv], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [f"error: {expect}"]
