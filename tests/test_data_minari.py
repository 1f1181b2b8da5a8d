"""Minari reader/writer: episode flattening, task inference, normalized scores, load_dataset dispatch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from obd.data import Episode, load_dataset, load_minari, write_minari
from obd.data.__main__ import main
from obd.envs import normalized_score
from obd.errors import ObdError


def episodes(lengths=(3, 4), obs_dim=11, act_dim=3, seed=0) -> list[Episode]:
    rng = np.random.default_rng(seed)
    out = []
    for i, t in enumerate(lengths):
        term = np.zeros(t, bool)
        trunc = np.zeros(t, bool)
        (term if i % 2 == 0 else trunc)[-1] = True
        out.append(Episode(rng.normal(size=(t + 1, obs_dim)).astype(np.float32),
                           rng.uniform(-1, 1, (t, act_dim)).astype(np.float32), rng.normal(size=t), term, trunc))
    return out


def test_flatten_hand_checked(data_dirs):
    _, root = data_dirs
    eps = episodes()
    folder = write_minari("obd/hopper/tiny-v0", eps, "Hopper-v5", -20.272305, 3234.3)
    assert folder == root / "obd" / "hopper" / "tiny-v0" and (folder / "data" / "metadata.json").is_file()
    assert sorted(p.name for p in root.iterdir()) == ["obd"]  # staging folders are gone
    ds = load_minari("obd/hopper/tiny-v0")
    assert len(ds) == 7 and ds.task == "hopper" and ds.source == "minari:obd/hopper/tiny-v0"
    np.testing.assert_array_equal(ds.observations, np.concatenate([eps[0].observations[:3], eps[1].observations[:4]]))
    np.testing.assert_array_equal(ds.next_observations,
                                  np.concatenate([eps[0].observations[1:], eps[1].observations[1:]]))
    np.testing.assert_array_equal(ds.actions, np.concatenate([eps[0].actions, eps[1].actions]))
    np.testing.assert_array_equal(ds.terminals, [0, 0, 1, 0, 0, 0, 0])  # truncation is not a terminal
    np.testing.assert_array_equal(ds.episode_starts, [0, 3])
    returns = [eps[0].rewards.sum(), eps[1].rewards.sum()]
    np.testing.assert_allclose(ds.episode_returns, returns)
    np.testing.assert_allclose(ds.normalized_scores(), normalized_score("hopper", returns))
    assert ds.metadata["ref_min_score"] == pytest.approx(-20.272305)


def test_minari_normalized_score_matches_ours(data_dirs):
    import minari

    write_minari("obd/hopper/score-v0", episodes(), "Hopper-v5", -20.272305, 3234.3)
    mds = minari.load_dataset("obd/hopper/score-v0")
    ret = np.array([100.0, 1500.0])
    np.testing.assert_allclose(minari.get_normalized_score(mds, ret), normalized_score("hopper", ret) / 100)


def test_task_from_env_spec_and_dims_check(data_dirs):
    write_minari("test/thing/data-v1", episodes(obs_dim=17, act_dim=6), "Walker2d-v5")
    assert load_minari("test/thing/data-v1").task == "walker2d"  # from the env spec, not the id
    write_minari("test/hopper/wrong-v0", episodes(obs_dim=17, act_dim=6), "Walker2d-v5")
    with pytest.raises(ObdError, match=r"'test/hopper/wrong-v0'.*do not match task 'hopper'"):
        load_minari("test/hopper/wrong-v0")


def test_load_dataset_dispatch(data_dirs, capsys):
    _, root = data_dirs
    write_minari("obd/hopper/disp-v0", episodes(), "Hopper-v5")
    assert len(load_dataset("obd/hopper/disp-v0")) == 7
    assert len(load_dataset(root / "obd" / "hopper" / "disp-v0")) == 7
    assert main(["inspect", "obd/hopper/disp-v0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 2
    with pytest.raises(ObdError, match="already exists"):
        write_minari("obd/hopper/disp-v0", episodes(), "Hopper-v5")
    write_minari("obd/hopper/disp-v0", episodes((5,)), "Hopper-v5", overwrite=True)
    assert len(load_dataset("obd/hopper/disp-v0")) == 5


def test_bad_minari_input(data_dirs, tmp_path, capsys):
    rc = main(["inspect", "obd/hopper/absent-v0"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Minari dataset 'obd/hopper/absent-v0' not found" in err
    (tmp_path / "folder").mkdir()
    rc = main(["inspect", str(tmp_path / "folder")])
    assert rc == 2 and "not a Minari dataset (no 'data/metadata.json')" in capsys.readouterr().err
    with pytest.raises(ObdError, match="not a Minari dataset id"):
        write_minari("no-namespace", episodes(), "Hopper-v5")
    bad = episodes()
    bad[0].observations[1, 0] = np.inf
    write_minari("obd/hopper/inf-v0", bad, "Hopper-v5")
    with pytest.raises(ObdError, match="'observations' contains NaN or inf"):
        load_minari("obd/hopper/inf-v0")
