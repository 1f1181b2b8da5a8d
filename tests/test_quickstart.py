"""The README's main job, end to end on a tiny budget (the full-size run is the README's command)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from test_video import FallingEnv

import obd.envs
from obd.evaluate import video
from obd.quickstart import DEFAULT_TEACHER, QuickstartSettings, run_quickstart

ROWS = ("synthetic", "random_selection", "teacher")
NO_GL = "no OpenGL backend renders here (egl: no display; osmesa: no libOSMesa)"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One dataset cache for the module: the first quickstart builds the 2,000-transition dataset into it."""
    return tmp_path_factory.mktemp("cache")


def tiny(out, cache, **kw):
    """The quickstart on a budget a test affords: a smaller student and inner loop than the preset's."""
    overrides = ("outer_steps=3", "checkpoint_every=3", "n_syn=32", "student.hidden=32", "inner.steps=5",
                 "outer.batch=64", "select.students=2", "select.episodes=1", "select.max_steps=30")
    return QuickstartSettings(out=out, transitions=2000, overrides=overrides, students=2, episodes=1, max_steps=30,
                              cache=cache, progress=False, **kw)


def test_quickstart_tiny_budget_end_to_end(tmp_path, cache, capsys, monkeypatch):
    # rendering unavailable (no GL here is simulated): one line says so, and the quickstart finishes
    monkeypatch.setattr(video, "choose_backend", lambda task: (None, NO_GL))
    out = tmp_path / "qs"
    report = run_quickstart(tiny(out, cache, seed=3))
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
    # the preset's set selection scores the set at its last step at least, and the footer says which it chose
    chosen = on_disk["settings"]["selected_step"]
    assert chosen in (1, 2, 3) and f"the set of outer step {chosen} of 3, chosen by its rollouts" in table
    assert [ln for ln in table.splitlines() if "video" in ln] == [f"no rollout video: {NO_GL}"]
    assert on_disk["video"] == {"file": None, "reason": NO_GL} and not (out / "rollout.gif").exists()
    # the dataset was built once and is reused from the cache on the next run
    assert (cache / "datasets" / "hopper-medium-2000" / "hopper_medium-v5.hdf5").is_file()


def test_quickstart_writes_the_side_by_side_rollout(tmp_path, cache, capsys, monkeypatch):
    monkeypatch.setattr(video, "choose_backend", lambda task: ("egl", ""))
    monkeypatch.setattr(obd.envs, "make_env", lambda task, **kw: FallingEnv(None, limit=30, size=kw["width"]))
    out = tmp_path / "qs"
    report = run_quickstart(tiny(out, cache))
    from PIL import Image

    gif = Image.open(out / "rollout.gif")
    assert gif.size == (3 * 128, 128 + video.LABEL_HEIGHT) and gif.n_frames == 1 + 30 // 5
    assert report["video"]["file"] == "rollout.gif" and report["video"]["backend"] == "egl"
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "video" in ln]
    assert len(lines) == 1 and lines[0].startswith(f"rollout video: {out / 'rollout.gif'}")


def test_quickstart_no_video(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(video, "choose_backend", lambda task: pytest.fail("--no-video must not probe"))
    assert "video" not in run_quickstart(tiny(tmp_path / "qs", cache, video=False))
    assert not (tmp_path / "qs" / "rollout.gif").exists()


def test_quickstart_cli_reports_missing_teacher(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "obd", "quickstart", "--out", str(tmp_path / "q"),
                           "--teacher", str(tmp_path / "nope.pt")], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "nope.pt: teacher file not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_shipped_teacher_exists():
    from obd.assets import resolve_asset

    assert resolve_asset("teacher", DEFAULT_TEACHER).is_file(), "the quickstart's teacher must be committed"
