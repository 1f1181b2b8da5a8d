"""D4RL-layout reader/writer: qlearning semantics, dtypes, id resolution, normalizer, bad input."""

from __future__ import annotations

import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from obd.data import Normalizer, load_d4rl, load_dataset, write_d4rl
from obd.data.__main__ import main
from obd.data.d4rl import d4rl_path
from obd.distill.synthetic import SyntheticDataset
from obd.envs import normalized_score
from obd.errors import ObdError

torch.set_num_threads(1)


def d4rl_qlearning(ds: dict, max_episode_steps: int = 1000) -> dict:
    """Literal port of ``d4rl.qlearning_dataset(env, dataset, terminate_on_end=False)``."""
    n = ds["rewards"].shape[0]
    obs_, next_obs_, action_, reward_, done_ = [], [], [], [], []
    use_timeouts = "timeouts" in ds
    episode_step = 0
    for i in range(n - 1):
        obs = ds["observations"][i].astype(np.float32)
        new_obs = ds["observations"][i + 1].astype(np.float32)
        action = ds["actions"][i].astype(np.float32)
        reward = ds["rewards"][i].astype(np.float32)
        done_bool = bool(ds["terminals"][i])
        final_timestep = ds["timeouts"][i] if use_timeouts else episode_step == max_episode_steps - 1
        if final_timestep:
            episode_step = 0
            continue
        if done_bool or final_timestep:
            episode_step = 0
        obs_.append(obs)
        next_obs_.append(new_obs)
        action_.append(action)
        reward_.append(reward)
        done_.append(done_bool)
        episode_step += 1
    return {"observations": np.array(obs_), "actions": np.array(action_), "next_observations": np.array(next_obs_),
            "rewards": np.array(reward_).reshape(-1), "terminals": np.array(done_)}


def reference_returns(ds: dict) -> list[float]:
    """Returns of the raw episodes (ending at terminal or timeout rows) that keep at least one transition."""
    n, out, ret, kept = len(ds["terminals"]), [], 0.0, 0
    for i in range(n):
        ret += float(np.ravel(ds["rewards"])[i])
        kept += (not ds["timeouts"][i] and i < n - 1) or (i == n - 1 and ds["terminals"][i] and not ds["timeouts"][i])
        if ds["terminals"][i] or ds["timeouts"][i] or i == n - 1:
            if kept:
                out.append(ret)
            ret, kept = 0.0, 0
    return out


def raw_arrays(n: int, rng: np.random.Generator, dtype=np.float32, obs_dim: int = 11, act_dim: int = 3) -> dict:
    return {"observations": rng.normal(size=(n, obs_dim)).astype(dtype),
            "actions": rng.uniform(-1, 1, (n, act_dim)).astype(dtype),
            "rewards": rng.normal(size=n).astype(dtype), "terminals": np.zeros(n, bool)}


def assert_matches_reference(ds, ref: dict) -> None:
    for key in ("observations", "actions", "next_observations", "rewards", "terminals"):
        got = getattr(ds, key)
        assert got.dtype == ref[key].dtype, key
        np.testing.assert_array_equal(got, ref[key], err_msg=key)


def test_hand_computed_semantics(tmp_path, write_h5):
    obs = np.arange(7 * 11, dtype=np.float32).reshape(7, 11)
    rew = np.array([1, 2, 3, 4, 5, 6, 7], np.float32)
    term = np.array([0, 0, 0, 0, 1, 0, 0], bool)
    tout = np.array([0, 0, 1, 0, 0, 0, 0], bool)
    path = write_h5(tmp_path / "hopper_tiny-v2.hdf5", observations=obs, actions=np.zeros((7, 3), np.float32),
                    rewards=rew, terminals=term, timeouts=tout)
    ds = load_d4rl(path)
    # row 2 times out (dropped), row 6 is the last row and not terminal (dropped)
    np.testing.assert_array_equal(ds.observations, obs[[0, 1, 3, 4, 5]])
    np.testing.assert_array_equal(ds.next_observations, obs[[1, 2, 4, 5, 6]])
    np.testing.assert_array_equal(ds.rewards, [1, 2, 4, 5, 6])
    np.testing.assert_array_equal(ds.terminals, [False, False, False, True, False])
    np.testing.assert_array_equal(ds.episode_starts, [0, 2, 4])
    np.testing.assert_allclose(ds.episode_returns, [1 + 2 + 3, 4 + 5, 6 + 7])
    assert ds.task == "hopper"
    np.testing.assert_allclose(ds.normalized_scores(), normalized_score("hopper", [6, 9, 13]))
    summary = ds.summary()
    assert summary["episodes"] == 3 and summary["transitions"] == 5
    assert summary["normalized_score_mean"] == pytest.approx(float(np.mean(normalized_score("hopper", [6, 9, 13]))))


def test_float64_replay_style_with_timeouts_matches_d4rl(tmp_path, write_h5):
    rng = np.random.default_rng(0)
    arrays = raw_arrays(600, rng, dtype=np.float64)
    arrays["terminals"][rng.choice(599, 20, replace=False)] = True
    arrays["timeouts"] = np.zeros(600, bool)
    arrays["timeouts"][rng.choice(599, 10, replace=False)] = True
    arrays["rewards"] = arrays["rewards"].reshape(-1, 1)
    path = write_h5(tmp_path / "hopper_medium_replay-v2.hdf5", **arrays,
                    next_observations=arrays["observations"], infos__qpos=np.zeros((600, 6)),
                    metadata__algorithm=b"SAC", metadata__policy__fc0__weight=np.zeros((256, 11)))
    ds = load_d4rl(path)
    assert ds.observations.dtype == np.float32 and ds.rewards.shape == (len(ds),)
    assert_matches_reference(ds, d4rl_qlearning(arrays))
    assert ds.metadata["algorithm"] == "SAC" and "policy/fc0/weight" not in ds.metadata
    assert ds.num_episodes == len(ds.episode_returns)
    np.testing.assert_allclose(ds.episode_returns, reference_returns(arrays), rtol=1e-6)


@pytest.mark.parametrize("seed, last_terminal", [(3, False), (4, True)])
def test_dense_flags_match_d4rl(seed, last_terminal, tmp_path, write_h5):
    """Runs of consecutive timeout rows, terminals next to timeouts, and the kept terminal last row."""
    rng = np.random.default_rng(seed)
    arrays = raw_arrays(200, rng)
    arrays["terminals"] = rng.random(200) < 0.2
    arrays["timeouts"] = (rng.random(200) < 0.3) & ~arrays["terminals"]
    arrays["terminals"][-1], arrays["timeouts"][-1] = last_terminal, False
    ds = load_d4rl(write_h5(tmp_path / "hopper_dense.hdf5", **arrays))
    ref = d4rl_qlearning(arrays)
    if last_terminal:
        for key in ref:
            last = {"observations": arrays["observations"][-1], "actions": arrays["actions"][-1],
                    "next_observations": arrays["observations"][-1], "rewards": arrays["rewards"][-1],
                    "terminals": True}[key]
            ref[key] = np.concatenate([ref[key], np.asarray(last, ref[key].dtype)[None]])
    assert_matches_reference(ds, ref)
    np.testing.assert_allclose(ds.episode_returns, reference_returns(arrays), rtol=1e-6)


def test_without_timeouts_uses_d4rl_episode_counter(tmp_path, write_h5):
    rng = np.random.default_rng(1)
    arrays = raw_arrays(3500, rng)
    # 150: plain terminal (D4RL's counter restarts at 1); 2149 coincides with a counter timeout (restarts at 0)
    arrays["terminals"][[150, 1700, 1701, 2149]] = True
    path = write_h5(tmp_path / "hopper_old-v0.hdf5", **arrays)
    ds = load_d4rl(path)
    ref = d4rl_qlearning(arrays, max_episode_steps=1000)
    assert_matches_reference(ds, ref)
    assert len(ds) < 3499  # some counter timeouts were dropped


def test_last_terminal_row_kept_and_synthetic_normalizer(tmp_path):
    norm = Normalizer(np.arange(11, dtype=np.float32), np.full(11, 2.0, np.float32))
    syn = SyntheticDataset(torch.randn(5, 11), torch.rand(5, 3) * 2 - 1, norm, task="hopper", metadata={"seed": 3})
    path = syn.save(tmp_path / "synthetic.hdf5")
    ds = load_d4rl(path)
    assert len(ds) == 5 and ds.terminals.all() and ds.num_episodes == 5
    np.testing.assert_allclose(ds.observations, syn.observations, rtol=1e-6)
    # qlearning semantics link rows even across terminals; the kept last row takes the file's next_observations
    np.testing.assert_array_equal(ds.next_observations[:-1], ds.observations[1:])
    np.testing.assert_array_equal(ds.next_observations[-1], ds.observations[-1])
    np.testing.assert_array_equal(ds.normalizer.mean, norm.mean)
    np.testing.assert_array_equal(ds.normalizer.std, norm.std)
    assert ds.task == "hopper" and ds.metadata["seed"] == 3


def test_write_roundtrip_and_id_resolution(data_dirs):
    d4rl_dir, _ = data_dirs
    rng = np.random.default_rng(2)
    n = 50
    obs = rng.normal(size=(n + 1, 17)).astype(np.float32)
    term = np.zeros(n, bool)
    term[19] = True
    tout = np.zeros(n, bool)
    tout[39] = True
    path = d4rl_path("walker2d-medium-replay-v5")
    assert path == d4rl_dir / "walker2d_medium_replay-v5.hdf5"
    write_d4rl(path, obs[:-1], rng.uniform(-1, 1, (n, 6)), rng.normal(size=n), term, tout, obs[1:],
               qpos=np.zeros((n, 9)), qvel=np.zeros((n, 9)),
               metadata={"task": "walker2d", "level": "medium-replay", "policy": {"normalized_score": 31.5}})
    with h5py.File(path) as f:
        assert {"observations", "actions", "rewards", "terminals", "timeouts", "next_observations", "infos",
                "metadata"} <= set(f)
        assert f["infos/qpos"].shape == (n, 9) and f["rewards"].shape == (n,)
        assert f["metadata/obd_version"][()] == b"0.1.0"
    ds = load_dataset("walker2d-medium-replay-v5")
    assert ds.task == "walker2d" and ds.metadata["policy/normalized_score"] == 31.5
    assert len(ds) == n - 2  # the timeout row 39 and the last row are dropped
    np.testing.assert_array_equal(ds.episode_starts, [0, 20, 39])
    assert [p.name for p in d4rl_dir.iterdir()] == [path.name]  # no temp files left


def _cli_error(capsys, argv) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("case, expect", [
    ("missing_key", "missing key 'terminals'"),
    ("lengths", "key 'rewards' has shape (9,)"),
    ("nan", "key 'observations' has NaN/inf in 1 row(s), first at row 4"),
    ("dims", "do not match task 'hopper'"),
    ("not_hdf5", "not an HDF5 file"),
    ("bad_next", "key 'next_observations' has shape"),
])
def test_bad_files(case, expect, tmp_path, write_h5, capsys):
    arrays = raw_arrays(10, np.random.default_rng(0))
    path = tmp_path / "hopper_bad-v2.hdf5"
    if case == "missing_key":
        del arrays["terminals"]
    elif case == "lengths":
        arrays["rewards"] = arrays["rewards"][:9]
    elif case == "nan":
        arrays["observations"][4, 2] = np.nan
    elif case == "dims":
        arrays["observations"] = arrays["observations"][:, :5]
    elif case == "bad_next":
        arrays["next_observations"] = arrays["observations"][:5]
    if case == "not_hdf5":
        path.write_text("not hdf5")
    else:
        write_h5(path, **arrays)
    with pytest.raises(ObdError, match=re.escape(str(path))):
        load_d4rl(path)
    assert expect in _cli_error(capsys, ["inspect", str(path)])


def test_missing_file_and_unknown_ids(data_dirs, tmp_path, capsys):
    err = _cli_error(capsys, ["inspect", str(tmp_path / "nope.hdf5")])
    assert "nope.hdf5: file not found" in err
    err = _cli_error(capsys, ["inspect", "hopper-medium-v2"])
    assert "hopper_medium-v2.hdf5: file not found for D4RL dataset id 'hopper-medium-v2'" in err
    err = _cli_error(capsys, ["inspect", "what_is_this"])
    assert "no dataset found; tried" in err and "D4RL id" in err and "Minari id" in err
    with pytest.raises(ObdError, match="unknown task 'ant'"):
        load_d4rl(_tiny_file(tmp_path), task="ant")


def _tiny_file(tmp_path):
    arrays = raw_arrays(4, np.random.default_rng(0))
    with h5py.File(tmp_path / "tiny.hdf5", "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
    return tmp_path / "tiny.hdf5"


def test_cli_process_exits_nonzero_without_traceback(tmp_path):
    bad = tmp_path / "x.hdf5"
    bad.write_text("garbage")
    proc = subprocess.run([sys.executable, "-m", "obd.data", "inspect", str(bad)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {bad}: not an HDF5 file"


def test_inspect_json(tmp_path, capsys):
    import json

    path = _tiny_file(tmp_path)
    assert main(["inspect", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "hopper" and out["transitions"] == 3 and out["episodes"] == 1
    assert len(out["normalizer"]["mean"]) == 11
    assert main(["inspect", str(path)]) == 0
    assert "normalized   mean" in capsys.readouterr().out
