"""A preset's ``tasks:`` entries (what changes on one task's datasets): which task a dataset spec names, the
order the entries apply in (preset <- objective <- task <- command line), refusals, and the sweep and CLI
taking the entry of each trial's dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from obd.data import dataset_task, load_dataset, write_d4rl
from obd.distill.config import load_run_config
from obd.errors import ObdError

PRESET = """\
objective: avpbc
n_syn: 8
student: {hidden: 16}
outer_steps: 7
tasks:
  hopper: {student: {hidden: 32}}
objectives:
  dbc: {tasks: {hopper: {outer_steps: 3}}}
  avpbc: {}
"""


def _hopper_file(path, metadata=None):
    rng = np.random.default_rng(0)
    n = 40
    obs = rng.normal(size=(n, 11)).astype(np.float32)
    return write_d4rl(path, observations=obs, actions=np.tanh(rng.normal(size=(n, 3))).astype(np.float32),
                      rewards=rng.normal(size=n), terminals=np.zeros(n, bool), timeouts=np.zeros(n, bool),
                      next_observations=obs + 0.01, metadata=metadata)


def test_dataset_task_reads_names_then_metadata_then_dims(tmp_path):
    assert dataset_task("hopper-medium-v5") == "hopper"
    assert dataset_task("walker2d-medium-replay-v5") == "walker2d"
    assert dataset_task("mujoco/halfcheetah/expert-v0") == "halfcheetah"
    assert dataset_task(tmp_path / "walker2d_medium-v5.hdf5") == "walker2d"  # the name alone, no file needed
    unnamed = _hopper_file(tmp_path / "mine.hdf5")
    assert dataset_task(str(unnamed)) == "hopper" == load_dataset(str(unnamed)).task  # by its dims, as loading
    assert dataset_task(load_dataset(str(unnamed))) == "hopper"
    assert dataset_task("nothing-here") is None and dataset_task({"observations": np.zeros((2, 11))}) is None
    folder = tmp_path / "my-set" / "data"
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"dataset_id": "mujoco/hopper/medium-v0"}))
    assert dataset_task(str(tmp_path / "my-set")) == "hopper"


def test_entries_apply_between_the_preset_and_the_command_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(PRESET)
    cfg, inputs = load_run_config(path, ["dataset=hopper-medium-v5"])
    assert (cfg.student.hidden, cfg.outer_steps, inputs.dataset) == (32, 7, "hopper-medium-v5")
    assert load_run_config(path, ["dataset=walker2d-medium-v5"])[0].student.hidden == 16
    assert load_run_config(path)[0].student.hidden == 16  # no dataset: the preset's own values
    assert load_run_config(path, ["dataset=hopper-medium-v5", "student.hidden=64"])[0].student.hidden == 64
    # an objective's entry may hold its own per-task values; they merge with the top-level ones
    dbc = load_run_config(path, ["dataset=hopper-medium-v5", "objective=dbc"])[0]
    assert (dbc.student.hidden, dbc.outer_steps) == (32, 3)
    assert load_run_config(path, ["dataset=hopper-medium-v5"], task="walker2d")[0].student.hidden == 16
    assert load_run_config(path, task="Hopper-v5")[0].student.hidden == 32  # by its env id too
    with pytest.raises(ObdError, match="unknown task 'hoper'"):
        load_run_config(path, task="hoper")
    # a file whose name says nothing is looked at (dims), as loading it would
    unnamed = _hopper_file(tmp_path / "d.hdf5")
    assert load_run_config(path, [f"dataset={unnamed}"])[0].student.hidden == 32


@pytest.mark.parametrize("entry, message", [
    ("tasks: [hopper]", "'tasks' should map each task"),
    ("tasks: {hoper: {n_syn: 4}}", r"unknown task\(s\) \['hoper'\]"),
    ("tasks: {walker2d: {student: {hiden: 4}}}", r"tasks\.walker2d\.student\.hiden"),
])
def test_bad_entries_are_refused_on_any_dataset(tmp_path, entry, message):
    path = tmp_path / "p.yaml"
    path.write_text(f"n_syn: 8\n{entry}\n")
    with pytest.raises(ObdError, match=message) as err:
        load_run_config(path, ["dataset=hopper-medium-v5"])
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_resumed_run_keeps_the_entry_it_started_with(tmp_path):
    """The run's config.yaml holds the resolved values, not the entries: it reads back the same config."""
    from obd.distill.config import run_config_dict
    from obd.io import write_text_atomic

    path = tmp_path / "p.yaml"
    path.write_text(PRESET)
    cfg, inputs = load_run_config(path, ["dataset=hopper-medium-v5"])
    saved = tmp_path / "config.yaml"
    write_text_atomic(saved, yaml.safe_dump(run_config_dict(cfg, inputs), sort_keys=False))
    assert "tasks" not in saved.read_text() and load_run_config(saved)[0] == cfg


def test_the_small_preset_gives_hopper_the_wider_student():
    hopper = load_run_config("small", ["dataset=hopper-medium-v5"])[0]
    walker = load_run_config("small", ["dataset=walker2d-medium-v5"])[0]
    assert (hopper.student.hidden, hopper.outer_steps) == (256, 500) and walker.student.hidden == 128
    assert hopper.inner == walker.inner and hopper.outer == walker.outer and walker.outer_steps == 5000
    assert load_run_config("small", ["dataset=hopper-medium-v5", "outer_steps=900"])[0].outer_steps == 900
    # measured for Av-PBC and SDW; DBC and PBC keep the 3x128 student
    assert load_run_config("small_sdw", ["dataset=hopper-medium-v5"])[0].student.hidden == 256
    assert load_run_config("small_dbc", ["dataset=hopper-medium-v5"])[0].student.hidden == 128
    assert load_run_config("small", ["dataset=hopper-medium-v5", "objective=pbc"])[0].student.hidden == 128


def test_the_sweep_gives_each_dataset_its_task_entry(tmp_path):
    from obd.sweep.grid import build_grid, load_settings

    path = tmp_path / "p.yaml"
    path.write_text(PRESET)
    data = str(_hopper_file(tmp_path / "hopper_tiny-v5.hdf5"))
    settings = load_settings(str(path), [])
    trials = build_grid([data], ["dbc"], [0], settings, {}, tmp_path / "out")
    assert (trials[0].distill.student.hidden, trials[0].distill.outer_steps) == (32, 3)
    # the sweep's own overrides come after the entry
    trials = build_grid([data], ["dbc"], [0], load_settings(str(path), ["student.hidden=48"]), {}, tmp_path / "o")
    assert trials[0].distill.student.hidden == 48


def test_print_config_shows_the_entry_of_the_dataset(capsys):
    from obd.distill.__main__ import main

    with pytest.raises(SystemExit) as done:
        main(["--config", "small", "--dataset", "hopper-medium-v5", "--teacher", "hopper-medium-v5", "--print-config"])
    assert done.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["student"]["hidden"] == 256 and "tasks" not in printed
