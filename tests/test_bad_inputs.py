"""Bad input a new user still hit (issue 33, "Defects"): each gets one ObdError line naming the file, key or
flag and what was expected, a non-zero exit from the command line, and nothing lost or half-written."""

from __future__ import annotations

import pickle
import warnings

import h5py
import numpy as np
import pytest
import torch
from test_cli import one_line_error

from obd.data import load_dataset
from obd.data.dataset import Normalizer
from obd.distill import DistillConfig
from obd.distill.synthetic import SyntheticDataset
from obd.errors import ObdError

TINY = dict(n_syn=4, outer_steps=2, student=dict(hidden=8, depth=2), inner=dict(steps=2), outer=dict(batch=8),
            device="cpu")


class ModuleTeacher(torch.nn.Module):
    """A user's teacher that is an nn.Module whose outputs carry gradients (no ``torch.no_grad`` of its own)."""

    task, obs_dim, act_dim, stochastic, metadata = "hopper", 11, 3, False, {}

    def __init__(self, act_width: int = 3, q_value: float | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.actor = torch.nn.Linear(11, act_width)
        self.critic = torch.nn.Linear(11 + act_width, 1)
        self.q_value = q_value

    def act(self, s):
        return torch.tanh(self.actor(torch.as_tensor(np.asarray(s, np.float32))))

    def q(self, s, a):
        if self.q_value is not None:
            return torch.full((len(s),), self.q_value)
        return self.critic(torch.cat([torch.as_tensor(np.asarray(s, np.float32)), torch.as_tensor(a)], -1))


class NoCriticTeacher:
    task, obs_dim, act_dim, stochastic, metadata = "hopper", 11, 3, False, {}

    def act(self, s):
        return torch.zeros(len(s), 3)

    def to(self, device):
        return self


def test_a_module_teacher_with_gradients_is_queried_without_them(hopper_file):
    syn = DistillConfig(objective="avpbc", **TINY).create(load_dataset(hopper_file), ModuleTeacher(),
                                                          progress=False).fit()
    assert len(syn) == 4 and torch.isfinite(syn.states).all()


@pytest.mark.parametrize("teacher, objective, needles", [
    (ModuleTeacher(act_width=2), "pbc", ["teacher actions: expected shape (396, 3) for 396 states, got (396, 2)"]),
    (NoCriticTeacher(), "avpbc", ["objective 'avpbc'", "no critic"]),
    (ModuleTeacher(q_value=float("nan")), "avpbc", ["teacher Q: NaN or inf for 396 of 396 dataset states"]),
])
def test_a_teacher_that_does_not_fit_is_named(hopper_file, teacher, objective, needles):
    with pytest.raises(ObdError) as caught:
        DistillConfig(objective=objective, **TINY).create(load_dataset(hopper_file), teacher, progress=False)
    assert all(n in str(caught.value) for n in needles), caught.value


def test_fit_and_step_stop_on_a_nan_loss_leaving_the_set_as_it_was(hopper_file):
    from obd.distill.engine import NonFiniteStep

    distiller = DistillConfig(objective="dbc", **TINY).create(load_dataset(hopper_file), progress=False)
    distiller.step()
    before = distiller.states.detach().clone()
    distiller.objective.dataset_actions[:] = float("nan")
    with pytest.raises(NonFiniteStep, match="outer step 2: loss is nan"):
        distiller.step()
    with pytest.raises(ObdError, match="outer step 2: loss is nan"):
        distiller.fit()
    assert distiller.outer_step == 1 and torch.equal(distiller.states.detach(), before)


@pytest.mark.parametrize("kwargs, needle", [
    ({"n_syn": "abc"}, "config key 'n_syn': expected an integer, got 'abc'"),
    ({"n_syn": 8.0}, "config key 'n_syn': expected an integer, got 8.0"),
    ({"n_syn": True}, "config key 'n_syn': expected an integer, got True"),
    ({"inner": {"lr": "fast"}}, "config key 'inner.lr': expected a number, got 'fast'"),
    ({"objective": "sdw", "density": {"mode": "resample"}}, "config key 'density.mode': expected one of"),
    ({"outer_steps": 0}, "config key 'outer_steps': expected an integer > 0"),
])
def test_config_values_of_the_wrong_type_are_named(kwargs, needle):
    with pytest.raises(ObdError) as caught:
        DistillConfig(**kwargs).validate()
    assert needle in str(caught.value)


@pytest.mark.parametrize("metadata", ["{not json", "[1, 2]"])
def test_set_metadata_that_is_not_a_json_object(tmp_path, metadata):
    path = SyntheticDataset(torch.zeros(4, 11), torch.zeros(4, 3), Normalizer.identity(11)).save(tmp_path / "s.hdf5")
    with h5py.File(path, "a") as f:
        f["obd"].attrs["metadata"] = metadata
    with pytest.raises(ObdError, match=r"s\.hdf5: attribute 'obd' metadata: expected a JSON object"):
        SyntheticDataset.load(path)


def test_a_normalizer_with_std_0_names_the_file(tmp_path):
    path = SyntheticDataset(torch.zeros(4, 11), torch.zeros(4, 3), Normalizer.identity(11)).save(tmp_path / "s.hdf5")
    with h5py.File(path, "a") as f:
        f["obd/normalizer/std"][3] = 0.0
    with pytest.raises(ObdError, match=r"s\.hdf5: '/obd/normalizer': normalizer: std must be > 0, got 0 in dim\(s\) "
                                       r"\[3\]"):
        SyntheticDataset.load(path)


def test_a_pickled_object_is_refused_in_one_line_without_torch_warnings(tmp_path):
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"actor": Evil()}, fh, protocol=4)  # not torch's protocol 2: torch warns about it
    from obd.teachers import Teacher
    from obd.teachers.corl import load_corl_checkpoint

    for load, what in ((Teacher.load, "teacher file"), (load_corl_checkpoint, "CORL checkpoint")):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with pytest.raises(ObdError, match=f"evil.pt: not a readable {what} \\(refused"):
                load(tmp_path / "evil.pt")
        assert not seen, [str(w.message) for w in seen]


def test_evaluate_synthetic_takes_a_path_and_names_what_it_wants(tmp_path):
    from obd.evaluate import evaluate_synthetic

    path = SyntheticDataset(torch.zeros(4, 11), torch.zeros(4, 3), Normalizer.identity(11), "hopper").save(
        tmp_path / "s.hdf5")
    result = evaluate_synthetic(str(path), students=1, episodes=1, max_steps=3, steps=1)
    assert result["n_syn"] == 4 and result["episode_length_mean"] == 3.0
    with pytest.raises(ObdError, match="expected a SyntheticDataset or a synthetic set file, got dict"):
        evaluate_synthetic({"states": 1})


def _distill(*argv: str) -> int:
    from obd.distill.__main__ import main

    return main([*argv, "--no-progress", "--threads", "1"])


@pytest.mark.parametrize("existing", ["notes.txt", "report.json"])
def test_distill_refuses_a_non_empty_folder_that_is_not_a_run(tmp_path, capsys, tiny_distill, existing):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / existing).write_text("keep me")
    assert _distill(*tiny_distill, "outer_steps=2", "--out", str(folder)) == 2
    one_line_error(capsys, str(folder), "not empty and not a run folder")
    assert sorted(p.name for p in folder.iterdir()) == [existing] and (folder / existing).read_text() == "keep me"


def test_an_over_long_out_path_names_out(tmp_path, capsys, tiny_distill):
    assert _distill(*tiny_distill, "--out", str(tmp_path / ("a" * 300))) == 2
    one_line_error(capsys, "--out", "not writable")


def test_sweep_checks_teacher_files_and_eval_keys_before_ray(tmp_path, capsys, monkeypatch, hopper_file):
    import obd.sweep.driver as driver
    from obd.sweep.__main__ import main

    monkeypatch.setattr(driver, "run_sweep", lambda *a, **k: pytest.fail("the sweep started"))
    (tmp_path / "bad.pt").write_bytes(b"not a teacher")
    base = ["--datasets", str(hopper_file), "--methods", "avpbc", "--seeds", "0", "--out", str(tmp_path / "sw")]
    assert main([*base, "--teachers", f"{hopper_file}={tmp_path / 'bad.pt'}"]) == 2
    one_line_error(capsys, "--teachers", "bad.pt: not a readable teacher file")
    assert main([*base, "eval.bogus=1"]) == 2
    one_line_error(capsys, "'eval.bogus'")
