"""scripts/score_at_budget.py on a hand-made sweep folder of two tiny runs: the budget picks the last checkpoint
inside the other method's CPU time, the last k checkpoints at or before it are scored under the trial's own
protocol, and a scheduled run or too few checkpoints is a one-line error."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from obd.distill import DistillConfig
from obd.distill.run import start
from obd.distill.synthetic import SyntheticDataset
from obd.evaluate import evaluate_synthetic

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("score_at_budget", ROOT / "scripts" / "score_at_budget.py")
score_at_budget = importlib.util.module_from_spec(spec)
spec.loader.exec_module(score_at_budget)

torch.set_num_threads(1)
BASE, METHOD = "avpbc", "avpbc[inner.steps=3]"
EVAL = {"students": 2, "episodes": 1, "seed": 0, "max_steps": 30}


def _set_cpu_times(run: Path, per_step: float) -> None:
    """Rewrite a run's metrics so outer step k took k * per_step CPU-seconds in all."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row["cpu_time"] = row["step"] * per_step
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, make_problem):
    """SWEEP/results.jsonl with a base trial (4 steps, 2.5 CPU-s in all), a trial of METHOD (4 steps of 1 CPU-s,
    a checkpoint at each) and a teacher row, on a random Hopper-shaped file."""
    from obd.data import load_dataset
    from obd.teachers import Teacher

    tmp = tmp_path_factory.mktemp("budget")
    data, teacher = make_problem(tmp, np.random.default_rng(0).normal(size=(200, 11)) * 0.05, task="hopper")
    dataset, teacher = load_dataset(str(data)), Teacher.load(teacher)
    out = tmp / "sweep"
    rows = []
    for method, folder, steps in ((BASE, "avpbc", 2), (METHOD, "avpbc+inner.steps=3", 3)):
        run = out / "trials" / "tiny" / folder / "seed0"
        cfg = DistillConfig(n_syn=8, student=dict(hidden=8, depth=2), inner=dict(steps=steps),
                            outer=dict(batch=16, lr=0.05, schedule="constant"), outer_steps=4, checkpoint_every=1,
                            device="cpu")
        start(cfg, run, dataset, teacher, progress=False)
        rows.append({"dataset": "tiny", "spec": str(data), "method": method, "seed": 0, "normalized_score_mean": 1.0,
                     "checkpoints": [{"step": 4, "per_student": [1.0, 1.0]}], "eval": dict(EVAL)})
    _set_cpu_times(out / "trials" / "tiny" / "avpbc" / "seed0", 2.5 / 4)
    _set_cpu_times(out / "trials" / "tiny" / "avpbc+inner.steps=3" / "seed0", 1.0)
    rows.append({"dataset": "tiny", "spec": str(data), "method": "teacher", "seed": 0, "normalized_score_mean": 10.0,
                 "checkpoints": [{"step": 0, "per_student": [10.0]}], "eval": dict(EVAL)})
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def test_equal_cpu_scores_the_last_checkpoints_inside_the_budget(sweep, capsys):
    assert score_at_budget.main([str(sweep), "--method", METHOD, "--cpu-of", BASE, "--last-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = json.loads(lines[0])
    # the base spent 2.5 CPU-s; METHOD's step 2 ends at 2.0, step 3 at 3.0
    assert row["cpu_budget"] == pytest.approx(2.5) and row["until"] == 2 and row["steps"] == [1, 2]
    run = sweep / "trials" / "tiny" / "avpbc+inner.steps=3" / "seed0"
    expected = [evaluate_synthetic(SyntheticDataset.load(run / "checkpoints" / f"step_{s:07d}.hdf5"), device="cpu",
                                   **EVAL)["normalized_score_mean"] for s in (1, 2)]
    assert row["score"] == pytest.approx(np.mean(expected), abs=0.01)
    assert lines[1].startswith("tiny: avpbc: 1.0, IQM") and "at the budget" in lines[1]


def test_a_fixed_step(sweep, capsys):
    assert score_at_budget.main([str(sweep), "--method", METHOD, "--step", "3", "--last-k", "3"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["until"] == 3 and row["steps"] == [1, 2, 3] and row["cpu_budget"] is None


def test_too_few_checkpoints_is_one_line(sweep, capsys):
    assert score_at_budget.main([str(sweep), "--method", METHOD, "--step", "1", "--last-k", "2"]) == 2
    err = capsys.readouterr().err
    assert "--last-k asks for 2" in err and len(err.strip().splitlines()) == 1


def test_a_scheduled_run_is_not_its_own_prefix(sweep, tmp_path, capsys):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    config = copy / "trials" / "tiny" / "avpbc+inner.steps=3" / "seed0" / "config.yaml"
    config.write_text(config.read_text().replace("schedule: constant", "schedule: cosine"))
    assert score_at_budget.main([str(copy), "--method", METHOD, "--step", "3"]) == 2
    err = capsys.readouterr().err
    assert "outer.schedule is 'cosine'" in err and len(err.strip().splitlines()) == 1


def test_a_run_whose_onpolicy_share_falls_is_not_its_own_prefix(sweep, tmp_path, capsys):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    config = copy / "trials" / "tiny" / "avpbc+inner.steps=3" / "seed0" / "config.yaml"
    assert "share_end: null" in config.read_text()
    config.write_text(config.read_text().replace("share_end: null", "share_end: 0.0"))
    assert score_at_budget.main([str(copy), "--method", METHOD, "--step", "3"]) == 2
    err = capsys.readouterr().err
    assert "onpolicy.share_end is 0.0" in err and len(err.strip().splitlines()) == 1


def test_an_unknown_method_is_one_line(sweep, capsys):
    assert score_at_budget.main([str(sweep), "--method", "pbc", "--step", "3"]) == 2
    assert "no finished trials of --method 'pbc'" in capsys.readouterr().err
