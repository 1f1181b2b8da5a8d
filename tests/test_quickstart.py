"""The README's main job, end to end on a tiny budget (the full-size run is the README's command)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from obd.quickstart import DEFAULT_TEACHER, QuickstartSettings, run_quickstart

ROWS = ("synthetic", "random_selection", "teacher")


def test_quickstart_tiny_budget_end_to_end(tmp_path, capsys):
    out = tmp_path / "qs"
    report = run_quickstart(QuickstartSettings(
        out=out, transitions=2000, overrides=("outer_steps=3", "checkpoint_every=3", "n_syn=32"),
        students=2, episodes=1, max_steps=30, seed=3, cache=tmp_path / "cache", progress=False))
    on_disk = json.loads((out / "report.json").read_text())
    for row in ROWS:
        assert set(on_disk[row]) >= {"normalized_score_mean", "normalized_score_std", "episode_length_mean",
                                     "forward_progress_mean", "per_policy_forward_progress"}
        assert on_disk[row]["normalized_score_mean"] == pytest.approx(report[row]["normalized_score_mean"])
        assert 0 < on_disk[row]["episode_length_mean"] <= 30
    # both sets are scored with the distillation's own student (obd/configs/quickstart.yaml's), not 3x256
    distilled = yaml.safe_load((out / "distill" / "config.yaml").read_text())
    # --seed reaches the distillation, over the preset's own seed: 0
    assert distilled["seed"] == 3 and on_disk["settings"]["seed"] == 3
    student = on_disk["settings"]["student"]
    assert student["source"] == "distillation" and student["cross"] == []
    assert student["arch"]["hidden"] == distilled["student"]["hidden"]
    assert student["arch"]["depth"] == distilled["student"]["depth"]
    assert student["steps"] == distilled["inner"]["steps"] and student["lr"] == distilled["inner"]["lr"]
    assert on_disk["settings"]["transitions"] == 1999  # qlearning view of the 2,000 built transitions
    assert len(on_disk["synthetic"]["per_policy_normalized_score"]) == 2
    for name in ("synthetic.hdf5", "outer_loss.png", "scores.png", "distill/config.yaml", "distill/metrics.jsonl"):
        assert (out / name).is_file(), name
    table = capsys.readouterr().out
    assert "synthetic set" in table and "random selection" in table and "teacher" in table
    assert "ep. length" in table and "progress" in table and "the distillation's own" in table
    # the dataset was built once and is reused from the cache on the next run
    assert (tmp_path / "cache" / "datasets" / "hopper-medium-2000" / "hopper_medium-v5.hdf5").is_file()


def test_quickstart_cli_reports_missing_teacher(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "obd", "quickstart", "--out", str(tmp_path / "q"),
                           "--teacher", str(tmp_path / "nope.pt")], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "nope.pt: teacher file not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_shipped_teacher_exists():
    from obd.assets import resolve_asset

    assert resolve_asset("teacher", DEFAULT_TEACHER).is_file(), "the quickstart's teacher must be committed"
