"""Rollout GIFs rendered offscreen by MuJoCo: one student's episode (``obd report --video``) and the
quickstart's side by side of several policies (``rollout.gif``: synthetic set, random selection, teacher).

Rendering needs an OpenGL backend that works without a display: EGL (``libegl1`` with Mesa's
``libegl-mesa0``/``libgl1-mesa-dri``, or an NVIDIA driver) or OSMesa (``libosmesa6``). MuJoCo binds its
backend when it first renders, so :func:`choose_backend` tries each in a fresh process and keeps the first
that renders a frame; a ``MUJOCO_GL`` the user set is used as it is. ``record_video`` writes with
``imageio`` (the ``video`` extra), the side by side with Pillow (installed with matplotlib). Each returns
the reason in one line instead of raising when it cannot render.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from obd.io import atomic_path

#: offscreen backends tried in this order when MUJOCO_GL is not set
HEADLESS_BACKENDS = ("egl", "osmesa")
NO_BACKEND_HINT = ("install EGL (apt-get install libegl1 libgl1-mesa-dri) or OSMesa (apt-get install libosmesa6), "
                   "or set MUJOCO_GL")
LABEL_HEIGHT = 24
_PROBE = """
import sys
from obd.envs import make_env
env = make_env(sys.argv[1], render_mode="rgb_array", width=16, height=16)
env.reset(seed=0)
assert env.render().shape == (16, 16, 3)
env.close()
"""


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def choose_backend(task: str = "hopper", timeout: float = 120.0) -> tuple[str | None, str]:
    """The MuJoCo OpenGL backend to render ``task`` with: ``(name, "")``, or ``(None, why not)`` in one line.

    A ``MUJOCO_GL`` already set is returned untried. Otherwise each of :data:`HEADLESS_BACKENDS` renders one
    16x16 frame in a fresh Python process (a process can bind only one backend); the first that succeeds is
    set in ``os.environ`` (``MUJOCO_GL`` and ``PYOPENGL_PLATFORM``) for this process's own rendering.
    """
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"], ""
    failures = []
    for name in HEADLESS_BACKENDS:
        env = {**os.environ, "MUJOCO_GL": name, "PYOPENGL_PLATFORM": name}
        try:
            proc = subprocess.run([sys.executable, "-c", _PROBE, task], env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            failures.append(f"{name}: no frame within {timeout:.0f} s")
            continue
        if proc.returncode == 0:
            os.environ["MUJOCO_GL"] = name
            os.environ.setdefault("PYOPENGL_PLATFORM", name)
            return name, ""
        failures.append(f"{name}: {_last_line(proc.stderr)}")
    return None, f"no OpenGL backend renders here ({'; '.join(failures)}); {NO_BACKEND_HINT}"


@dataclass
class Panel:
    """One policy of a side-by-side video: a label and ``act``, raw env state (obs,) -> action (act,)."""

    label: str
    act: Callable[[np.ndarray], np.ndarray]


def _label(frame: np.ndarray, title: str, status: str, dim: bool) -> np.ndarray:
    """The frame under a white strip of two lines (``title``, ``status``); darkened once its episode has ended
    (``dim``)."""
    from PIL import Image, ImageDraw, ImageFont

    if dim:
        frame = (frame.astype(np.float32) * 0.45).astype(np.uint8)
    h, w, _ = frame.shape
    img = Image.new("RGB", (w, h + LABEL_HEIGHT), (255, 255, 255))
    img.paste(Image.fromarray(frame), (0, LABEL_HEIGHT))
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=11)  # Pillow's scalable font, where Pillow has FreeType
    except (ImportError, OSError, TypeError):
        font = ImageFont.load_default()
    draw.text((3, 0), title, fill=(0, 0, 0), font=font)
    draw.text((3, 12), status, fill=(90, 90, 90), font=font)
    return np.asarray(img)


def record_side_by_side(task: str, panels: Sequence[Panel], path: Path, seed: int = 0, steps: int = 1000,
                        every: int = 5, size: int = 128, frame_ms: int = 40) -> str | None:
    """Roll out each panel's policy for one episode of ``task`` from the same initial state
    (``reset(seed=seed)``), render every ``every``-th env step at ``size`` x ``size`` pixels per panel, and
    write the panels side by side, labelled, as a looping GIF (``frame_ms`` per frame). A panel whose episode
    has ended keeps its last frame, darkened, with the step it ended at; the video ends when every episode
    has ended or after ``steps`` env steps.

    Returns None on success, else the reason in one line (no OpenGL backend, a renderer error).
    """
    import obd.envs

    try:
        # "track": the camera every obd task's model defines, following the body's centre of mass
        envs = [obd.envs.make_env(task, render_mode="rgb_array", width=size, height=size, camera_name="track")
                for _ in panels]
        obs = [env.reset(seed=seed)[0] for env in envs]
        last = [env.render() for env in envs]
    except Exception as exc:  # noqa: BLE001 - any renderer failure means "cannot render here"
        return f"MuJoCo could not render ({type(exc).__name__}: {_last_line(str(exc))}); {NO_BACKEND_HINT}"
    ended: list[int | None] = [None] * len(panels)
    status = [""] * len(panels)

    def frame(t: int) -> np.ndarray:
        return np.concatenate([_label(img, p.label, status[i] or f"step {t}", ended[i] is not None)
                               for i, (p, img) in enumerate(zip(panels, last))], axis=1)

    frames = [frame(0)]
    for t in range(1, steps + 1):
        for i, (p, env) in enumerate(zip(panels, envs)):
            if ended[i] is not None:
                continue
            obs[i], _, term, trunc, _ = env.step(np.asarray(p.act(obs[i]), dtype=np.float32))
            if term or trunc:
                ended[i] = t
                status[i] = f"fell at step {t}" if term else f"ran all {t} steps"
            if term or trunc or t % every == 0:
                last[i] = env.render()
        if t % every == 0 or all(e is not None for e in ended):
            frames.append(frame(t))
        if all(e is not None for e in ended):
            break
    for env in envs:
        env.close()
    write_gif(path, frames, frame_ms, hold_last_ms=1500)
    return None


def write_gif(path: Path, frames: Sequence[np.ndarray], frame_ms: int, hold_last_ms: int = 0,
              colors: int = 64) -> None:
    """A looping GIF of RGB ``frames`` with one ``colors``-colour palette for all of them (taken from up to 40
    frames spread over the video; MuJoCo scenes need few colours, and one palette keeps the file small),
    ``frame_ms`` per frame and the last held ``hold_last_ms`` longer."""
    from PIL import Image

    sample = Image.fromarray(np.concatenate(list(frames[::max(1, len(frames) // 40)]), axis=0))
    palette = sample.quantize(colors=colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    durations = [frame_ms] * (len(images) - 1) + [frame_ms + hold_last_ms]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)


def student_act(syn: Any, student: Any, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """One fresh student (``student``: a StudentSpec; None: the paper's) trained on the synthetic set ``syn``
    as the evaluation trains it, as a policy on raw env states."""
    import torch

    from obd.evaluate.protocol import train_students
    from obd.evaluate.student_spec import PAPER_STUDENT

    batch = train_students(student or PAPER_STUDENT, syn.states, syn.actions, 1, seed, "cpu")[0]

    def act(obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(syn.normalizer.normalize(obs), dtype=np.float32))[None]
        return batch.act_all(x)[0, 0].numpy()

    return act


def record_video(syn_path: Path, task: str, student: dict[str, Any] | None, path: Path, seed: int,
                 max_steps: int | None) -> str | None:
    """Record one episode of a student trained on the synthetic set ``syn_path`` (``student``: the student
    record its evaluation used, None: the set's own) rolled out in ``task``, as a GIF.

    Returns None on success, else the reason the video was skipped (no OpenGL backend, no imageio).
    """
    try:
        import imageio.v2 as imageio
    except ImportError:
        return "imageio is not installed (pip install 'obd[video]')"
    import torch

    from obd.distill.synthetic import SyntheticDataset
    from obd.envs import make_env
    from obd.evaluate import PAPER_STUDENT, StudentSpec, distilled_student, train_students

    # EGL renders headless; a user's own MUJOCO_GL choice wins
    os.environ.setdefault("MUJOCO_GL", "egl")
    syn = SyntheticDataset.load(syn_path)
    spec = StudentSpec.from_dict(student) if student else distilled_student(syn.metadata) or PAPER_STUDENT
    batch = train_students(spec, syn.states, syn.actions, 1, seed, "cpu")[0]
    try:
        env = make_env(task, render_mode="rgb_array")
        obs, _ = env.reset(seed=seed)
        frames = [env.render()]
    except Exception as exc:  # noqa: BLE001 - any renderer failure means "no OpenGL backend"
        return f"no OpenGL backend for MuJoCo rendering ({type(exc).__name__}: {exc}); set MUJOCO_GL=egl or osmesa"
    limit = max_steps or 1000
    for _ in range(limit):
        x = torch.as_tensor(np.asarray(syn.normalizer.normalize(obs), dtype=np.float32))[None]
        act = batch.act_all(x)[0, 0].numpy()
        obs, _, term, trunc, _ = env.step(act)
        frames.append(env.render())
        if term or trunc:
            break
    env.close()
    with atomic_path(path) as tmp:
        imageio.mimsave(tmp, frames, format="GIF", duration=1000 / 30)
    return None
