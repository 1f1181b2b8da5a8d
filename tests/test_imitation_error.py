"""scripts/imitation_error.py on a tiny Av-PBC run: one JSON line per checkpoint whose per-quarter errors
(by teacher Q and by state density) average back to the overall error, on equal-sized quarters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "imitation_error.py"


@pytest.fixture(scope="module")
def run(tmp_path_factory, make_tiny_run):
    """A finished 4-step Av-PBC run folder (checkpoints at steps 2 and 4) on a random Hopper-shaped file."""
    return make_tiny_run(tmp_path_factory.mktemp("imitation"))[0]


def test_imitation_error_lines_and_quarters(run):
    out = subprocess.run([sys.executable, str(SCRIPT), str(run), "--states", "200", "--students", "2",
                          "--density", "knn"], check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["checkpoint"] for r in rows] == sorted(p.name for p in (run / "checkpoints").glob("step_*.hdf5"))
    assert len(rows) >= 2
    for r in rows:
        for key in ("by_q_quartile", "by_density_quartile"):
            assert len(r[key]) == 4 and all(np.isfinite(r[key]))
            # 200 distinct values: four quarters of 50, so their means average to the overall mean
            assert np.mean(r[key]) == pytest.approx(r["mse"], abs=2e-5)
        assert r["by_density_quartile"] != r["by_q_quartile"]
        assert 0.0 <= r["out_of_bounds"] <= 1.0


def test_imitation_error_last_checkpoints(run):
    out = subprocess.run([sys.executable, str(SCRIPT), str(run), "--states", "40", "--students", "1",
                          "--density", "knn", "--last", "1"], check=True, capture_output=True, text=True).stdout
    names = sorted(p.name for p in (run / "checkpoints").glob("step_*.hdf5"))
    assert [json.loads(line)["checkpoint"] for line in out.splitlines()] == names[-1:]


def test_imitation_error_bad_input_is_one_line(run, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.yaml").write_text((run / "config.yaml").read_text())
    for argv, expect in (([str(run), "--last", "0"], "--last: expected an integer >= 1, got 0"),
                         ([str(bare)], f"{bare / 'checkpoints'}: no checkpoints (step_XXXXXXX.hdf5)")):
        done = subprocess.run([sys.executable, str(SCRIPT), *argv, "--density", "knn", "--states", "20"],
                              capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.strip().splitlines() == [f"error: {expect}"]
