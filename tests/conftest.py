"""Shared test fixtures. Data fixtures: private dataset folders and a raw HDF5 writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture
def data_dirs(tmp_path, monkeypatch):
    """Point ``$D4RL_DATASET_DIR`` and ``$MINARI_DATASETS_PATH`` at empty temp folders; returns both."""
    d4rl, minari = tmp_path / "d4rl", tmp_path / "minari"
    d4rl.mkdir()
    minari.mkdir()
    monkeypatch.setenv("D4RL_DATASET_DIR", str(d4rl))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari))
    return d4rl, minari


@pytest.fixture
def write_h5():
    """``write_h5(path, **arrays)``: write arrays (keys may contain '/') to a raw HDF5 file, no checks."""
    import h5py

    def write(path: Path, **arrays: np.ndarray) -> Path:
        with h5py.File(path, "w") as f:
            for key, arr in arrays.items():
                f.create_dataset(key.replace("__", "/"), data=arr)
        return path

    return write


@pytest.fixture
def hopper_file(data_dirs):
    """A tiny hopper-dims (11, 3) D4RL file ``hopper_medium-v5.hdf5`` in ``$D4RL_DATASET_DIR``, so the id
    ``hopper-medium-v5`` resolves to it; 400 transitions, episodes of 100 steps."""
    from obd.data import write_d4rl

    rng = np.random.default_rng(0)
    n = 400
    obs = rng.normal(size=(n + 1, 11)).astype(np.float32)
    timeouts = np.arange(n) % 100 == 99
    return write_d4rl(data_dirs[0] / "hopper_medium-v5.hdf5", observations=obs[:-1],
                      actions=np.tanh(rng.normal(size=(n, 3))).astype(np.float32), rewards=rng.normal(size=n),
                      terminals=np.zeros(n, bool), timeouts=timeouts, next_observations=obs[1:])


@pytest.fixture
def tiny_distill(hopper_file):
    """``key=value`` overrides for a distillation of ``hopper_file`` that takes well under a second per step."""
    return [f"dataset={hopper_file}", "objective=dbc", "n_syn=4", "student.hidden=8", "student.depth=2",
            "inner.steps=2", "outer.batch=8", "device=cpu", "checkpoint_every=2"]


@pytest.fixture
def one_thread():
    """One torch thread for the test (bit-exact SAC and rollout comparisons), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def load_script():
    """``load_script(name)``: import ``scripts/<name>.py`` as the module ``name`` (benchmarks live in scripts/,
    outside the installed package; scripts/ goes on ``sys.path`` so one script may import another)."""
    import importlib
    import sys

    folder = str(Path(__file__).resolve().parents[1] / "scripts")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module


@pytest.fixture(scope="session")
def make_problem():
    """``make_problem(folder, obs, name="hopper-tiny.hdf5", episode=50, task=None)``: write a D4RL file of
    the (N, 11) hopper-dims states ``obs`` (tanh-Gaussian actions, random rewards, a terminal every
    ``episode`` steps) and a tiny seeded teacher for it (3-action 8x8 tanh-Gaussian actor, twin 8x8
    critics); returns (data file, teacher file)."""
    from obd.data import load_dataset, write_d4rl
    from obd.nn import Actor, EnsembleQ
    from obd.teachers import Teacher

    def make(folder: Path, obs: np.ndarray, name: str = "hopper-tiny.hdf5", episode: int = 50,
             task: str | None = None) -> tuple[Path, Path]:
        n, obs_dim = obs.shape
        rng = np.random.default_rng(0)
        terminals = np.zeros(n, bool)
        terminals[episode - 1::episode] = True
        obs = obs.astype(np.float32)
        data = write_d4rl(folder / name, observations=obs, actions=np.tanh(rng.normal(size=(n, 3))).astype(np.float32),
                          rewards=rng.normal(size=n), terminals=terminals, timeouts=np.zeros(n, bool),
                          next_observations=obs + 0.01)
        torch.manual_seed(0)
        Teacher(Actor(obs_dim, 3, (8, 8), "tanh_gaussian"), EnsembleQ(obs_dim, 3, (8, 8), 2),
                load_dataset(str(data)).normalizer, task=task, device="cpu").save(folder / "teacher.pt")
        return Path(data), folder / "teacher.pt"

    return make


TINY_AVPBC = """objective: avpbc
n_syn: 8
student: {kind: tanh_gaussian, hidden: 8, depth: 2}
inner: {steps: 2, lr: 0.1}
outer: {optimizer: adam, lr: 0.05, batch: 16}
outer_steps: 4
checkpoint_every: 2
device: cpu
"""


@pytest.fixture(scope="session")
def make_tiny_run(make_problem):
    """``make_tiny_run(folder)``: a finished 4-step Av-PBC run (checkpoints at steps 2 and 4) of ``obd distill``
    on a random 400-state Hopper-shaped file from ``make_problem``; returns (run folder, data file, teacher file)."""
    import subprocess
    import sys

    def make(folder: Path) -> tuple[Path, Path, Path]:
        data, teacher = make_problem(folder, np.random.default_rng(0).normal(size=(400, 11)))
        (folder / "tiny.yaml").write_text(TINY_AVPBC)
        subprocess.run([sys.executable, "-m", "obd", "distill", "--config", str(folder / "tiny.yaml"),
                        f"dataset={data}", f"teacher={teacher}", "--out", str(folder / "run"), "--threads", "1",
                        "--no-progress"], check=True, capture_output=True, text=True)
        return folder / "run", data, teacher

    return make
