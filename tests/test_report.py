"""``python -m obd.report`` on fake run folders made of SyntheticDataset checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from obd.data.dataset import Normalizer
from obd.distill.synthetic import SyntheticDataset
from obd.evaluate.runs import CACHE_NAME, evaluate_run
from obd.report import main as report_main

torch.set_num_threads(1)
FAST = ["--students", "2", "--episodes", "1", "--max-steps", "8", "--steps", "5", "--device", "cpu"]


def make_run(root, name, method="avpbc", n_syn=8, steps=(1000, 2000), final=True, seed=0):
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(f"n_syn: {n_syn}\nouter_steps: {steps[-1]}\n")
    rng = np.random.default_rng(seed)
    norm = Normalizer(np.zeros(11), np.ones(11))
    for step in steps:
        syn = SyntheticDataset(torch.as_tensor(rng.normal(size=(n_syn, 11)), dtype=torch.float32),
                               torch.as_tensor(rng.uniform(-0.5, 0.5, size=(n_syn, 3)), dtype=torch.float32),
                               norm, "hopper", {"method": method, "outer_step": step})
        syn.save(run / "checkpoints" / f"step_{step:07d}.hdf5")
        if final and step == steps[-1]:
            syn.save(run / "synthetic.hdf5")
    return run


def test_report_on_fake_runs_writes_markdown_plots_and_cache(tmp_path, capsys, monkeypatch):
    runs = [make_run(tmp_path, "a_pbc", "pbc", 8, (1000, 3000)),
            make_run(tmp_path, "b_avpbc", "avpbc", 8, (3000,), seed=1),
            make_run(tmp_path, "c_avpbc16", "avpbc", 16, (3000,), seed=2)]
    out = tmp_path / "report"
    assert report_main([str(r) for r in runs] + ["--out", str(out)] + FAST) == 0
    md = (out / "report.md").read_text()
    for name in ("a_pbc", "b_avpbc", "c_avpbc16", "| pbc |", "| avpbc |", "curves.png", "size_sweep.png"):
        assert name in md
    for png in ("curves.png", "methods.png", "size_sweep.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "report.json").read_text())
    assert [s["run"] for s in summary] == ["a_pbc", "b_avpbc", "c_avpbc16"]
    assert summary[0]["final_step"] == 3000 and summary[2]["n_syn"] == 16
    cache = json.loads((runs[0] / CACHE_NAME).read_text())
    assert len(cache) == 2  # synthetic.hdf5 repeats step 3000 and is not evaluated twice
    first = (out / "report.md").read_text()
    capsys.readouterr()

    # a second report reads every evaluation from the cache: poison the evaluator to prove it is not called
    import obd.evaluate

    def boom(*a, **k):
        raise AssertionError("evaluated again despite the cache")

    monkeypatch.setattr(obd.evaluate, "evaluate_synthetic", boom)
    assert report_main([str(r) for r in runs] + ["--out", str(out)] + FAST) == 0
    assert (out / "report.md").read_text() == first


def test_report_curve_values_match_direct_evaluation(tmp_path):
    run = make_run(tmp_path, "r", steps=(10, 20))
    settings = {"students": 2, "episodes": 1, "steps": 5, "seed": 0, "max_steps": 8, "device": "cpu"}
    ev = evaluate_run(run, settings, progress=False)
    assert [c.outer_step for c in ev.checkpoints] == [10, 20]
    assert ev.method == "avpbc" and ev.task == "hopper" and ev.n_syn == 8
    direct = obd_eval(run / "checkpoints" / "step_0000020.hdf5", settings)
    assert ev.final.score == pytest.approx(direct["normalized_score_mean"])
    assert ev.last_mean(5) == pytest.approx(np.mean([c.score for c in ev.checkpoints]))


def obd_eval(path, settings):
    from obd.evaluate import evaluate_synthetic

    return evaluate_synthetic(SyntheticDataset.load(path), **settings)


def test_single_run_report_defaults_to_the_run_folder(tmp_path):
    run = make_run(tmp_path, "only", steps=(5,), final=False)
    assert report_main([str(run)] + FAST) == 0
    assert (run / "report.md").is_file() and (run / "curves.png").is_file()
    assert not (run / "size_sweep.png").exists()


def test_checkpoint_without_outer_step_is_a_one_line_error(tmp_path, capsys):
    run = make_run(tmp_path, "bad", steps=(5,), final=False)
    norm = Normalizer(np.zeros(11), np.ones(11))
    SyntheticDataset(torch.zeros(4, 11), torch.zeros(4, 3), norm, "hopper", {"method": "x"}).save(
        run / "checkpoints" / "step_0000009.hdf5")
    out = tmp_path / "out"
    assert report_main([str(run), "--out", str(out)] + FAST) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "step_0000009.hdf5" in err and "outer_step" in err
    assert not (out / "report.md").exists()


def test_bad_run_folders(tmp_path, capsys):
    assert report_main([str(tmp_path / "nope")]) == 2
    assert "run folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert report_main([str(tmp_path / "empty")]) == 2
    assert "no checkpoints" in capsys.readouterr().err
    run = make_run(tmp_path, "cfg", steps=(5,))
    (run / "config.yaml").write_text("method: [unclosed\n")
    assert report_main([str(run)] + FAST) == 2
    err = capsys.readouterr().err
    assert "config.yaml" in err and err.count("\n") == 1
    wrong = tmp_path / "wrong"
    (wrong / "checkpoints").mkdir(parents=True)
    SyntheticDataset(torch.zeros(4, 17), torch.zeros(4, 6), Normalizer(np.zeros(17), np.ones(17)), "hopper",
                     {"outer_step": 1}).save(wrong / "checkpoints" / "step_0000001.hdf5")
    assert report_main([str(wrong), "--out", str(tmp_path / "o")] + FAST) == 2
    err = capsys.readouterr().err
    assert "step_0000001.hdf5" in err and "do not match task 'hopper'" in err
    assert not (tmp_path / "o" / "report.md").exists()


class FrameEnv:
    """A stand-in for a rendering MuJoCo env: hopper-shaped observations, 4x4 frames, ends after 3 steps."""

    def __init__(self):
        self.t = 0

    def reset(self, seed=None):
        self.t = 0
        return np.zeros(11, np.float32), {}

    def render(self):
        return np.full((4, 4, 3), 40 * self.t, np.uint8)

    def step(self, action):
        assert action.shape == (3,)
        self.t += 1
        return np.zeros(11, np.float32), 0.0, False, self.t >= 3, {}

    def close(self):
        pass


def test_video_records_a_gif_of_the_final_set(tmp_path, capsys, monkeypatch):
    import obd.envs

    monkeypatch.setattr(obd.envs, "make_env", lambda task, render_mode=None: FrameEnv())
    run = make_run(tmp_path, "vid", steps=(5,), final=False)
    out = tmp_path / "out"
    assert report_main([str(run), "--out", str(out), "--video", "--students", "1", "--episodes", "1",
                        "--max-steps", "3", "--device", "cpu"]) == 0
    import imageio.v2 as imageio

    frames = imageio.mimread(out / "vid.gif")
    assert len(frames) == 4  # the reset frame and one per step until the truncation
    assert "vid.gif" in (out / "report.md").read_text()


def test_video_without_a_renderer_is_skipped_with_a_message(tmp_path, capsys, monkeypatch):
    import obd.envs

    def no_gl(task, render_mode=None):
        raise RuntimeError("no EGL")

    monkeypatch.setattr(obd.envs, "make_env", no_gl)
    run = make_run(tmp_path, "vid", steps=(5,), final=False)
    out = tmp_path / "out"
    assert report_main([str(run), "--out", str(out), "--video", "--students", "1", "--episodes", "1",
                        "--max-steps", "3", "--device", "cpu"]) == 0
    assert "video skipped for vid: no OpenGL backend" in capsys.readouterr().err
    assert not (out / "vid.gif").exists() and "vid.gif" not in (out / "report.md").read_text()


class LinearTeacher:
    """A hopper-sized tanh-Gaussian teacher satisfying the Teacher contract (raw states in, tensors out)."""

    task, obs_dim, act_dim, stochastic, metadata, device = "hopper", 11, 3, True, {}, torch.device("cpu")

    def __init__(self):
        self.w = torch.randn(11, 3, generator=torch.Generator().manual_seed(0)) * 0.3

    def to(self, device):
        return self

    def mean_std(self, s):
        m = torch.as_tensor(np.asarray(s, np.float32)) @ self.w
        return m, torch.full_like(m, 0.2)

    def act(self, s):
        return torch.tanh(self.mean_std(s)[0])

    def sample(self, s, generator=None):
        m, sd = self.mean_std(s)
        return torch.tanh(m + sd * torch.randn(m.shape, generator=generator))

    def q(self, s, a):
        return (10 + torch.as_tensor(np.asarray(s, np.float32)).sum(-1)
                + torch.as_tensor(np.asarray(a, np.float32)).sum(-1))


def test_report_on_a_real_distillation_run_folder(tmp_path):
    """The run-folder contract with obd.distill: a tiny real run, then a report on it."""
    from obd.config import load_config
    from obd.data.dataset import TransitionDataset
    from obd.distill.config import DistillConfig
    from obd.distill.run import start

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(64, 11)).astype(np.float32)
    ds = TransitionDataset(obs, np.tanh(obs[:, :3]), rng.normal(size=64), obs + 0.1, np.zeros(64, bool),
                           np.arange(0, 64, 16), task="hopper", source="tiny_hopper")
    cfg = load_config(DistillConfig, None, [], base={
        "objective": "avpbc", "n_syn": 4, "student": {"hidden": 8, "depth": 2}, "inner": {"steps": 2},
        "outer": {"batch": 16}, "outer_steps": 4, "checkpoint_every": 2, "device": "cpu", "seed": 1})
    run = tmp_path / "avpbc_run"
    start(cfg, run, ds, LinearTeacher(), progress=False)
    out = tmp_path / "rep"
    assert report_main([str(run), "--out", str(out)] + FAST) == 0
    summary = json.loads((out / "report.json").read_text())
    assert summary[0]["final_step"] == 4 and summary[0]["n_syn"] == 4 and summary[0]["task"] == "hopper"
    assert summary[0]["method"] != "unknown"
    assert "| 2 | step_0000002.hdf5 |" in (out / "report.md").read_text()
