"""scripts/sdw_rare_states.py on a file whose first half is spread out (rare states) and whose second half
is packed (common states): the rarest quarter must come from the first half."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from obd.data import load_dataset, write_d4rl

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "sdw_rare_states.py"
OBS, ACT, N = 11, 3, 600


def test_rarest_states_are_placed_in_the_file(tmp_path):
    from obd.nn import Actor, EnsembleQ
    from obd.teachers import Teacher

    rng = np.random.default_rng(0)
    obs = np.concatenate([rng.normal(scale=3.0, size=(N // 2, OBS)), rng.normal(scale=0.3, size=(N // 2, OBS))])
    obs = obs.astype(np.float32)
    terminals = np.zeros(N, bool)
    terminals[99::100] = True
    data = write_d4rl(tmp_path / "hopper-tiny.hdf5", observations=obs,
                      actions=np.tanh(rng.normal(size=(N, ACT))).astype(np.float32), rewards=rng.normal(size=N),
                      terminals=terminals, timeouts=np.zeros(N, bool), next_observations=obs + 0.01)
    torch.manual_seed(0)
    Teacher(Actor(OBS, ACT, (8, 8), "tanh_gaussian"), EnsembleQ(OBS, ACT, (8, 8), 2),
            load_dataset(str(data)).normalizer, device="cpu").save(tmp_path / "teacher.pt")
    out = subprocess.run([sys.executable, str(SCRIPT), str(data), "--teacher", str(tmp_path / "teacher.pt"),
                          "--density", "knn", "--states", "300"], check=True, capture_output=True, text=True).stdout
    (r,) = [json.loads(line) for line in out.splitlines()]
    assert r["states"] == 300 and r["dataset"] == str(data)
    assert r["spearman_logp_position"] > 0.5            # denser states sit later in the file
    assert r["rarest_quarter_position"] < 0.3 < r["rest_position"]
    assert -1 <= r["spearman_logp_q"] <= 1 and np.isfinite([r["rarest_quarter_q"], r["rest_q"]]).all()
