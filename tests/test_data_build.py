"""Dataset builder end to end: tiny builds through both loaders, reproducibility, atomicity, bad input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from obd.collect.__main__ import main
from obd.collect.behavior import BehaviorActor, save_behavior_policy
from obd.collect.build import BuildConfig, build
from obd.data import load_d4rl, load_dataset, load_minari

torch.set_num_threads(1)
FAST = ["--num-envs", "4", "--no-progress"]


@pytest.fixture
def policy_dir(tmp_path):
    """Randomly initialised hopper behavior policies (hidden 32) with a medium ``replay_size`` of 280."""
    folder = tmp_path / "policies"
    for i, level in enumerate(("medium", "expert")):
        torch.manual_seed(i)
        actor = BehaviorActor(11, 3, hidden=32)
        meta = {"task": "hopper", "level": level, "obs_dim": 11, "act_dim": 3, "hidden": 32,
                "normalized_score": 30.0 + 50 * i, "env_steps": 1000 * (i + 1)}
        if level == "medium":
            meta["replay_size"] = 280
        save_behavior_policy(folder / f"behavior_{level}.pt", actor, meta)
    return folder


def raw(path) -> dict:
    with h5py.File(path) as f:
        return {k: f[k][()] for k in ("observations", "actions", "rewards", "terminals", "timeouts",
                                      "next_observations", "infos/qpos", "infos/qvel")}


def test_random_build_through_both_loaders(data_dirs, capsys):
    d4rl_dir, minari_dir = data_dirs
    assert main(["build", "hopper-random", "--transitions", "2000", "--seed", "3", *FAST]) == 0
    assert "2000 transitions" in capsys.readouterr().out
    path = d4rl_dir / "hopper_random-v5.hdf5"
    arr = raw(path)
    assert arr["observations"].shape == (2000, 11) and arr["infos/qpos"].shape == (2000, 6)
    assert np.abs(arr["actions"]).max() <= 1 and arr["actions"].std() > 0.5
    # Hopper's observation is qpos[1:] ++ qvel: the recorded qpos/qvel are the state *before* each step
    np.testing.assert_allclose(arr["observations"][:, :5], arr["infos/qpos"][:, 1:], atol=1e-6)
    np.testing.assert_allclose(arr["observations"][:, 5:], np.clip(arr["infos/qvel"], -10, 10), atol=1e-5)
    ends = np.flatnonzero(arr["terminals"] | arr["timeouts"])
    assert ends[-1] == 1999 and arr["terminals"].sum() > 20  # random hopper falls quickly
    mid = ends[:-1]
    np.testing.assert_array_equal(arr["next_observations"][:-1][np.setdiff1d(np.arange(1999), mid)],
                                  arr["observations"][1:][np.setdiff1d(np.arange(1999), mid)])

    d4 = load_dataset("hopper-random-v5")
    mi = load_minari("obd/hopper/random-v0")
    assert len(mi) == 2000 and d4.task == mi.task == "hopper"
    np.testing.assert_array_equal(mi.observations, arr["observations"])
    np.testing.assert_array_equal(mi.next_observations, arr["next_observations"])
    np.testing.assert_array_equal(mi.actions, arr["actions"])
    np.testing.assert_array_equal(mi.terminals, arr["terminals"])
    np.testing.assert_allclose(mi.episode_returns, d4.episode_returns, rtol=1e-5)
    assert 0 < d4.normalized_scores().mean() < 10
    assert d4.metadata["level"] == "random" and d4.metadata["env_id"] == "Hopper-v5"
    import mujoco
    assert d4.metadata["versions/mujoco"] == mujoco.__version__ and "versions/torch" in d4.metadata
    assert mi.metadata["ref_max_score"] == pytest.approx(3234.3)
    assert sorted(p.name for p in d4rl_dir.iterdir()) == ["hopper_random-v5.hdf5"]


def test_medium_build_stochastic_and_reproducible(data_dirs, policy_dir, tmp_path):
    d4rl_dir, _ = data_dirs
    args = ["build", "hopper-medium", "--transitions", "2000", "--policy-dir", str(policy_dir), *FAST]
    assert main([*args, "--seed", "5"]) == 0
    assert main([*args, "--seed", "5", "--out-dir", str(tmp_path / "again"), "--minari-id", "obd/hopper/again-v0"]) == 0
    assert main([*args, "--seed", "6", "--out-dir", str(tmp_path / "other"), "--minari-id", "obd/hopper/other-v0"]) == 0
    a, b = raw(d4rl_dir / "hopper_medium-v5.hdf5"), raw(tmp_path / "again" / "hopper_medium-v5.hdf5")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    c = raw(tmp_path / "other" / "hopper_medium-v5.hdf5")
    assert not np.array_equal(a["observations"][:50], c["observations"][:50])
    np.testing.assert_array_equal(load_minari("obd/hopper/again-v0").actions, a["actions"])

    from obd.collect.behavior import load_behavior_policy

    actor, _ = load_behavior_policy(policy_dir / "behavior_medium.pt")
    deterministic = actor.act(a["observations"], deterministic=True)
    assert np.abs(deterministic - a["actions"]).mean() > 0.05  # sampled, not tanh(mean)
    ds = load_d4rl(d4rl_dir / "hopper_medium-v5.hdf5")
    assert ds.metadata["policy/normalized_score"] == 30.0 and ds.metadata["algorithm"] == "SAC"


def test_medium_expert_halves(data_dirs, policy_dir):
    out = build(BuildConfig("hopper", "medium-expert", transitions=401, seed=1, num_envs=2,
                            policy_dir=str(policy_dir), progress=False))
    assert out["transitions"] == 401
    ds = load_d4rl(out["d4rl_file"])
    assert ds.metadata["policy/medium/level"] == "medium" and ds.metadata["policy/expert/level"] == "expert"
    assert len(load_minari(out["minari_id"])) == 401


def _buffer(folder, n=300, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n + 1, 11)).astype(np.float32)
    nxt = obs[1:].copy()
    term, tout = np.zeros(n, np.float32), np.zeros(n, np.float32)
    term[99] = 1
    if n > 250:
        tout[199] = 1
        nxt[249] = rng.normal(size=11)  # the run stopped here and resumed with a fresh reset
    folder.mkdir(parents=True, exist_ok=True)
    arrays = dict(observations=obs[:-1], actions=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
                  rewards=rng.normal(size=n).astype(np.float32), next_observations=nxt, terminals=term,
                  timeouts=tout, qpos=rng.normal(size=(n, 6)).astype(np.float32),
                  qvel=rng.normal(size=(n, 6)).astype(np.float32))
    np.savez(folder / "buffer.npz", **arrays)
    return arrays


def test_medium_replay_from_buffer(data_dirs, policy_dir, tmp_path):
    d4rl_dir, _ = data_dirs
    buf = _buffer(tmp_path / "run")
    assert main(["build", "hopper-medium-replay", "--policy-dir", str(policy_dir), "--behavior-run",
                 str(tmp_path / "run"), *FAST]) == 0
    arr = raw(d4rl_dir / "hopper_medium_replay-v5.hdf5")
    assert len(arr["observations"]) == 280  # the medium policy's replay_size
    for key in ("observations", "actions", "next_observations"):
        np.testing.assert_array_equal(arr[key], buf[key][:280], err_msg=key)
    np.testing.assert_array_equal(arr["infos/qpos"], buf["qpos"][:280])
    np.testing.assert_array_equal(np.flatnonzero(arr["terminals"]), [99])
    np.testing.assert_array_equal(np.flatnonzero(arr["timeouts"]), [199, 249, 279])
    ds = load_dataset("hopper-medium-replay-v5")
    assert len(ds) == 280 - 3 and ds.num_episodes == 4
    mi = load_dataset("obd/hopper/medium-replay-v0")
    assert len(mi) == 280 and mi.num_episodes == 4
    np.testing.assert_allclose(mi.episode_returns, ds.episode_returns, rtol=1e-5)

    out = build(BuildConfig("hopper", "medium-replay", transitions=150, policy_dir=str(policy_dir),
                            behavior_run=str(tmp_path / "run"), out_dir=str(tmp_path / "short"),
                            minari_id="obd/hopper/short-v0", progress=False))
    assert out["transitions"] == 150 and out["episodes"] == 2


def test_interrupted_build_leaves_nothing(data_dirs, monkeypatch, capsys):
    import minari

    d4rl_dir, minari_dir = data_dirs
    real = minari.create_dataset_from_buffers

    def write_then_interrupt(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(minari, "create_dataset_from_buffers", write_then_interrupt)
    assert main(["build", "hopper-random", "--transitions", "300", *FAST]) == 130
    assert list(d4rl_dir.iterdir()) == []
    assert not (minari_dir / "obd" / "hopper" / "random-v0").exists()
    assert [p for p in minari_dir.rglob("*") if "tmp" in p.name] == []


@pytest.mark.parametrize("argv, expect", [
    (["hopper-medium", "--policy-dir", "{tmp}/none"], "behavior policy not found; it is produced by "
                                                       "`obd collect train-behavior hopper`"),
    (["hopper-medium-replay", "--policy-dir", "{tmp}/none"], "`obd collect train-behavior hopper`"),
    (["hopper-medium-replay", "--policy-dir", "{policies}", "--behavior-run", "{tmp}/none"],
     "buffer.npz: SAC replay buffer not found"),
    (["hopper-medium-replay", "--policy-dir", "{policies}", "--behavior-run", "{tmp}/small"],
     "holds 100 rows but medium-replay needs replay_size=280"),
    (["hopper-median"], "level one of"),
    (["ant-random"], "unknown task 'ant'"),
    (["hopper-random", "--transitions", "1"], "--transitions must be at least 2"),
])
def test_build_bad_input(argv, expect, data_dirs, policy_dir, tmp_path, capsys):
    _buffer(tmp_path / "small", n=100)
    argv = [a.format(tmp=tmp_path, policies=policy_dir) for a in argv]
    assert main(["build", *argv, *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expect in err


def test_existing_outputs_need_overwrite(data_dirs, capsys):
    assert main(["build", "hopper-random", "--transitions", "50", *FAST]) == 0
    assert main(["build", "hopper-random", "--transitions", "50", *FAST]) == 2
    assert "already exists (pass --overwrite to replace it)" in capsys.readouterr().err
    assert main(["build", "hopper-random", "--transitions", "60", "--overwrite", *FAST]) == 0
    assert len(load_minari("obd/hopper/random-v0")) == 60
