"""The Python API: the README's snippet, datasets from arrays / qlearning dicts / Minari objects, nested
config dicts, the fast defaults, ObdError as a ValueError, a user's own teacher through TeacherLike."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from obd.config import config_to_dict, load_config
from obd.data import TransitionDataset, load_dataset
from obd.distill import DistillConfig
from obd.distill.config import InnerConfig, StudentConfig
from obd.errors import ObdError

ROOT = Path(__file__).resolve().parents[1]


def _readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_snippet_runs(hopper_file, tmp_path, monkeypatch):
    code = _readme_snippet()
    # the same code on a budget a test can afford; each literal must be there, so the test follows the README
    for old, new in [("n_syn=256, outer_steps=1000", "n_syn=8, outer_steps=2, inner=dict(steps=2), "
                      "student=dict(hidden=16), outer=dict(batch=16), device='cpu'"),
                     ("students=10, episodes=10", "students=1, episodes=1, max_steps=5")]:
        assert code.count(old) == 1, old
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "hopper_avpbc.hdf5").is_file()


def test_obd_error_is_a_value_error():
    assert issubclass(ObdError, ValueError)
    with pytest.raises(ValueError, match="config key 'objective'"):
        DistillConfig(objective="nope").validate()


def test_nested_dicts_in_configs():
    cfg = DistillConfig(inner=dict(steps=5, lr=0.5), student={"hidden": 32})
    assert cfg.inner == InnerConfig(steps=5, lr=0.5) and cfg.student == StudentConfig(hidden=32)
    with pytest.raises(ObdError, match=r"inner\.bogus"):
        DistillConfig(inner=dict(bogus=1))
    with pytest.raises(ObdError, match="config key 'inner.steps': expected an integer"):
        DistillConfig(inner=dict(steps="many"))


def test_one_student_config_for_distillation_and_evaluation():
    from obd.evaluate import parse_arch

    # the distillation's section writes the keys it wrote before the evaluation-only family existed, so
    # run folders and synthetic set metadata are unchanged
    assert list(config_to_dict(DistillConfig())["student"]) == ["kind", "hidden", "depth", "orthogonal_init", "head"]
    residual = parse_arch("residual", hidden=64)
    assert isinstance(residual, StudentConfig) and residual.name == "residual2x64"
    with pytest.raises(ObdError, match="config key 'student.family': the inner loop trains mlp students only"):
        DistillConfig(student=residual).validate()
    with pytest.raises(ObdError, match=r"config key 'student.depth': expected an integer >= 1, got 0"):
        DistillConfig(student={"depth": 0})
    with pytest.raises(ObdError, match="config key 'student.family'"):
        StudentConfig(family="transformer")


def test_default_config_is_the_fast_preset():
    preset = load_config(DistillConfig, "fast_avpbc")
    default = DistillConfig()
    preset.validate()
    default.validate()
    assert config_to_dict(default) == config_to_dict(preset)


def _arrays(n: int = 60, obs: int = 11, act: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"observations": rng.normal(size=(n, obs)), "actions": rng.uniform(-1, 1, (n, act)),
            "rewards": np.ones(n), "next_observations": rng.normal(size=(n, obs)),
            "terminals": np.arange(n) == 9, "timeouts": np.arange(n) % 25 == 24}


def test_dataset_from_arrays_and_qlearning_dict():
    d = _arrays()
    ds = TransitionDataset.from_qlearning_dict(d)
    assert len(ds) == 60 and ds.task == "hopper"  # the only task with (11, 3) dims
    assert ds.episode_starts.tolist() == [0, 10, 25, 50]
    assert ds.episode_returns.tolist() == [10, 15, 25, 10]
    assert load_dataset(d).episode_starts.tolist() == [0, 10, 25, 50]
    no_timeouts = TransitionDataset.from_arrays(*(d[k] for k in ("observations", "actions", "rewards",
                                                                "next_observations", "terminals")))
    assert no_timeouts.episode_starts.tolist() == [0, 10]
    cheetah = TransitionDataset.from_qlearning_dict(_arrays(obs=17, act=6), task="halfcheetah")
    assert cheetah.task == "halfcheetah"
    with pytest.raises(ObdError, match="do not match task 'hopper'"):
        TransitionDataset.from_qlearning_dict(_arrays(obs=17, act=6), task="hopper")
    bad = {**d, "rewards": np.r_[np.nan, np.ones(59)]}
    with pytest.raises(ObdError, match="'rewards' contains NaN or inf"):
        load_dataset(bad)
    with pytest.raises(ObdError, match="'actions' has 59 rows"):
        load_dataset({**d, "actions": d["actions"][:59]})
    with pytest.raises(ObdError, match=r"missing key\(s\) \['next_observations'\]"):
        load_dataset({k: v for k, v in d.items() if k != "next_observations"})


def test_load_dataset_from_a_minari_dataset_object(data_dirs):
    import minari

    from obd.data import Episode, write_minari

    rng = np.random.default_rng(1)
    episodes = [Episode(rng.normal(size=(21, 11)).astype(np.float32), rng.uniform(-1, 1, (20, 3)).astype(np.float32),
                        rng.normal(size=20), np.zeros(20, bool), np.r_[np.zeros(19, bool), True])
                for _ in range(2)]
    write_minari("test/hopper/tiny-v0", episodes, "Hopper-v5", 0.0, 100.0)
    obj = minari.load_dataset("test/hopper/tiny-v0", download=False)
    from_obj, from_id = load_dataset(obj), load_dataset("test/hopper/tiny-v0")
    assert len(from_obj) == 40 and from_obj.task == "hopper"
    assert np.array_equal(from_obj.observations, from_id.observations)
    with pytest.raises(ObdError, match="expected a path, an id, a dict of arrays or a minari.MinariDataset"):
        load_dataset(42)


class NumpyTeacher:
    """A user's own deterministic policy (numpy inside), wrapped to the TeacherLike protocol."""

    obs_dim, act_dim, task, stochastic = 11, 3, "hopper", False

    def __init__(self):
        self.metadata = {"source": "my policy"}
        self.w = np.random.default_rng(2).normal(size=(11, 3)) * 0.1

    def act(self, states):
        return torch.as_tensor(np.tanh(np.asarray(states) @ self.w), dtype=torch.float32)

    def mean_std(self, states):
        raise AssertionError("a deterministic teacher's mean_std is never called")

    def q(self, states, actions):
        return torch.as_tensor(np.asarray(states).sum(1) + np.asarray(actions).sum(1), dtype=torch.float32)

    def to(self, device):
        return self


def test_own_teacher_through_teacher_like(hopper_file):
    from obd.teachers import Teacher, TeacherLike

    teacher = NumpyTeacher()
    assert isinstance(teacher, TeacherLike) and isinstance(Teacher.load("hopper-medium-v5"), TeacherLike)
    cfg = DistillConfig(objective="avpbc", n_syn=4, outer_steps=2, student=dict(hidden=8, depth=2),
                        inner=dict(steps=2), outer=dict(batch=8), device="cpu")
    syn = cfg.create(load_dataset(hopper_file), teacher, progress=False).fit()
    assert len(syn) == 4 and syn.metadata["teacher"] == "my policy"
    assert torch.isfinite(syn.states).all()
