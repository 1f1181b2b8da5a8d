"""``python -m obd.report`` scores runs with their own student and shows gait statistics beside scores."""

from __future__ import annotations

import json

import numpy as np
import torch

from obd.config import config_to_dict
from obd.data.dataset import Normalizer
from obd.distill.config import DistillConfig, InnerConfig, StudentConfig
from obd.distill.synthetic import SyntheticDataset
from obd.report import main as report_main

torch.set_num_threads(1)
FAST = ["--students", "1", "--episodes", "1", "--max-steps", "6", "--device", "cpu"]


def make_run(root, hidden=32, depth=2, steps=4):
    run = root / "small"
    (run / "checkpoints").mkdir(parents=True)
    cfg = DistillConfig(student=StudentConfig(hidden=hidden, depth=depth), inner=InnerConfig(steps=steps))
    (run / "config.yaml").write_text("task: hopper\n")
    rng = np.random.default_rng(0)
    syn = SyntheticDataset(torch.as_tensor(rng.normal(size=(8, 11)), dtype=torch.float32),
                           torch.as_tensor(rng.uniform(-0.5, 0.5, size=(8, 3)), dtype=torch.float32),
                           Normalizer(np.zeros(11), np.ones(11)), "hopper",
                           {"method": "avpbc", "outer_step": 10, "config": config_to_dict(cfg)})
    syn.save(run / "checkpoints" / "step_0000010.hdf5")
    return run


def test_report_uses_the_runs_student_and_shows_gait(tmp_path):
    run = make_run(tmp_path)
    out = tmp_path / "report"
    assert report_main([str(run), "--out", str(out)] + FAST) == 0
    md = (out / "report.md").read_text()
    assert "| ep. length | progress |" in md and "mlp2x32, 4 sgd steps" in md
    assert "the distillation's own student" in md
    (summary,) = json.loads((out / "report.json").read_text())
    assert summary["student"]["arch"]["hidden"] == 32 and summary["student"]["steps"] == 4
    assert 0 < summary["final_episode_length"] <= 6 and isinstance(summary["final_forward_progress"], float)
    # a cross-architecture report only on request
    assert report_main([str(run), "--out", str(tmp_path / "wide"), "--hidden", "64"] + FAST) == 0
    (wide,) = json.loads((tmp_path / "wide" / "report.json").read_text())
    assert wide["student"]["arch"]["hidden"] == 64 and wide["student"]["cross"] == ["architecture"]
