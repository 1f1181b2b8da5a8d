"""scripts/sdw_rare_states.py on a file whose first half is spread out (rare states) and whose second half
is packed (common states): the rarest quarter must come from the first half."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "sdw_rare_states.py"
OBS, N = 11, 600


def test_rarest_states_are_placed_in_the_file(tmp_path, make_problem):
    rng = np.random.default_rng(0)
    obs = np.concatenate([rng.normal(scale=3.0, size=(N // 2, OBS)), rng.normal(scale=0.3, size=(N // 2, OBS))])
    data, teacher = make_problem(tmp_path, obs, episode=100)
    out = subprocess.run([sys.executable, str(SCRIPT), str(data), "--teacher", str(teacher),
                          "--density", "knn", "--states", "300"], check=True, capture_output=True, text=True).stdout
    (r,) = [json.loads(line) for line in out.splitlines()]
    assert r["states"] == 300 and r["dataset"] == str(data)
    assert r["spearman_logp_position"] > 0.5            # denser states sit later in the file
    assert r["rarest_quarter_position"] < 0.3 < r["rest_position"]
    assert -1 <= r["spearman_logp_q"] <= 1 and np.isfinite([r["rarest_quarter_q"], r["rest_q"]]).all()
