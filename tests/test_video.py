"""Rollout videos: the side-by-side GIF of several policies (the quickstart's ``rollout.gif``), the choice of
an offscreen OpenGL backend, and the one-line reason when nothing renders."""

from __future__ import annotations

import os

import numpy as np
import pytest

import obd.envs
from obd.evaluate import video
from obd.evaluate.video import Panel, choose_backend, record_side_by_side


class FallingEnv:
    """A rendering stand-in: hopper-shaped observations, frames whose grey level changes every step, terminated
    after ``fall`` steps (None: truncated at ``limit``)."""

    def __init__(self, fall, limit=1000, size=128):
        self.fall, self.limit, self.size, self.t = fall, limit, size, 0

    def reset(self, seed=None):
        self.t = 0
        return np.zeros(11), {}

    def render(self):
        return np.full((self.size, self.size, 3), self.t * 40 % 256, np.uint8)

    def step(self, action):
        assert action.shape == (3,) and np.all(np.isfinite(action))
        self.t += 1
        return np.zeros(11), 1.0, self.fall is not None and self.t >= self.fall, self.t >= self.limit, {}

    def close(self):
        pass


def gif_frames(path):
    from PIL import Image

    im, n, durations = Image.open(path), 0, []
    size = im.size
    while True:
        durations.append(im.info["duration"])
        n += 1
        try:
            im.seek(n)
        except EOFError:
            return n, size, durations


def zero(obs):
    return np.zeros(3)


def test_side_by_side_runs_until_every_episode_ends(tmp_path, monkeypatch):
    falls = iter([7, 23, None])
    monkeypatch.setattr(obd.envs, "make_env", lambda task, **kw: FallingEnv(next(falls), limit=40,
                                                                           size=kw["width"]))
    out = tmp_path / "r.gif"
    assert record_side_by_side("hopper", [Panel("a", zero), Panel("b", zero), Panel("c", zero)], out,
                               steps=1000, every=5, size=32, frame_ms=40) is None
    n, size, durations = gif_frames(out)
    # reset frame + one per 5 steps to the truncation at 40 (the last policy runs 40 steps)
    assert n == 1 + 40 // 5
    assert size == (3 * 32, 32 + video.LABEL_HEIGHT)
    assert durations[:-1] == [40] * (n - 1) and durations[-1] > 1000  # the outcome held before the loop


def test_side_by_side_caps_the_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(obd.envs, "make_env", lambda task, **kw: FallingEnv(None, size=kw["width"]))
    out = tmp_path / "r.gif"
    assert record_side_by_side("hopper", [Panel("a", zero), Panel("b", zero)], out, steps=12, every=4,
                               size=16) is None
    n, size, _ = gif_frames(out)
    assert n == 1 + 12 // 4 and size == (32, 16 + video.LABEL_HEIGHT)


def test_side_by_side_without_a_renderer_says_why_in_one_line(tmp_path, monkeypatch):
    def no_gl(task, **kw):
        raise RuntimeError("Failed to initialize OpenGL\nsecond line")

    monkeypatch.setattr(obd.envs, "make_env", no_gl)
    reason = record_side_by_side("hopper", [Panel("a", zero)], tmp_path / "r.gif")
    assert "MuJoCo could not render (RuntimeError: second line)" in reason and "\n" not in reason
    assert "libosmesa6" in reason and not (tmp_path / "r.gif").exists()


def test_choose_backend_keeps_the_users_choice(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    monkeypatch.setattr(video.subprocess, "run", lambda *a, **k: pytest.fail("no probe when MUJOCO_GL is set"))
    assert choose_backend() == ("osmesa", "")


def test_choose_backend_tries_each_backend_in_a_fresh_process(monkeypatch):
    for name in ("MUJOCO_GL", "PYOPENGL_PLATFORM"):  # set first, so monkeypatch restores what was there
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    tried = []

    class Proc:
        def __init__(self, ok, err=""):
            self.returncode, self.stderr = (0 if ok else 1), err

    def run(cmd, env, **kw):
        tried.append(env["MUJOCO_GL"])
        return Proc(env["MUJOCO_GL"] == "osmesa", "Traceback...\nImportError: Cannot initialize EGL")

    monkeypatch.setattr(video.subprocess, "run", run)
    assert choose_backend() == ("osmesa", "")
    assert tried == ["egl", "osmesa"] and os.environ["MUJOCO_GL"] == "osmesa"

    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setattr(video.subprocess, "run", lambda cmd, env, **kw: Proc(False, "x\nno display"))
    backend, reason = choose_backend()
    assert backend is None and "\n" not in reason
    assert reason.startswith("no OpenGL backend renders here (egl: no display; osmesa: no display)")
    assert "MUJOCO_GL" not in os.environ


def test_real_hopper_rendering(tmp_path):
    """MuJoCo's own renderer, where this machine has an offscreen backend."""
    backend, reason = choose_backend()
    if backend is None:
        pytest.skip(reason)
    out = tmp_path / "r.gif"
    assert record_side_by_side("hopper", [Panel("zero", zero), Panel("zero", zero)], out, steps=10, every=5,
                               size=48) is None
    n, size, _ = gif_frames(out)
    assert n == 3 and size == (96, 48 + video.LABEL_HEIGHT)
