"""A rollout GIF: one episode of a student trained on a synthetic set, rendered by MuJoCo (``obd report
--video``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from obd.io import atomic_path


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
