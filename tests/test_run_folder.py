"""obd.run_folder: the one run folder of distillation, teacher training and SAC (layout, newest readable
checkpoint, metrics truncated on resume, what a resume may change, the refusals), and the stages' use of it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from obd.errors import ObdError
from obd.run_folder import (
    RESUME_MAY_CHANGE,
    RunFolder,
    check_changes,
    check_folder,
    check_inputs,
    latest_checkpoint,
)


def test_layout_kept_and_rolling(tmp_path):
    kept, rolling = RunFolder(tmp_path / "a", keep=True), RunFolder(tmp_path / "b", keep=False)
    assert kept.checkpoint_path(12) == tmp_path / "a" / "checkpoints" / "step_0000012.state.pt"
    assert rolling.checkpoint_path(12) == rolling.checkpoint_path(40) == tmp_path / "b" / "checkpoint.pt"
    assert kept.config_path.name == "config.yaml" and kept.metrics_path.name == "metrics.jsonl"
    assert kept.checkpoints() == [] and rolling.checkpoints() == [] and latest_checkpoint(kept.path) is None
    for step in (2, 10, 4):
        kept.save_checkpoint({"outer_step": step}, step)
    # neither a temporary of an interrupted save nor another name is a checkpoint
    (kept.checkpoints_dir / ".step_0000012.state.pt.x.tmp").mkdir()
    (kept.checkpoints_dir / "step_12.state.pt").write_bytes(b"")
    (kept.checkpoints_dir / "step_0000012.hdf5").write_bytes(b"")
    assert [s for s, _ in kept.checkpoints()] == [10, 4, 2]
    assert latest_checkpoint(kept.path) == (10, kept.checkpoint_path(10))
    rolling.save_checkpoint({"step": 5}, 5)
    rolling.save_checkpoint({"step": 9}, 9)
    assert rolling.checkpoints() == [(None, rolling.path / "checkpoint.pt")]
    assert torch.load(rolling.path / "checkpoint.pt", weights_only=True) == {"step": 9}


def test_config_is_written_first_and_read_back(tmp_path):
    folder = RunFolder(tmp_path / "run", keep=True)
    assert not folder.is_run() and folder.config() == {}
    folder.write_config({"b": 1, "a": {"x": [1, 2]}})
    assert folder.is_run() and folder.config() == {"b": 1, "a": {"x": [1, 2]}}
    assert folder.config_path.read_text().startswith("b: 1")  # the config's own order
    folder.config_path.write_text("- 1\n")
    with pytest.raises(ObdError, match="config.yaml: expected a mapping"):
        folder.config()


def test_the_newest_readable_checkpoint_is_loaded(tmp_path, capsys):
    folder = RunFolder(tmp_path, keep=True)
    for step in (2, 4, 6):
        folder.save_checkpoint({"outer_step": step, "x": torch.tensor([float(step)])}, step)
    folder.checkpoint_path(6).write_bytes(b"truncated by a crash")
    torch.save({"outer_step": 2}, folder.checkpoint_path(4))  # a file renamed by hand
    state, path = folder.load_checkpoint("checkpoint", step_key="outer_step")
    assert path == folder.checkpoint_path(2) and torch.equal(state["x"], torch.tensor([2.0]))
    err = capsys.readouterr().err
    assert "skipped unreadable checkpoint(s) step_0000006.state.pt (" in err
    assert "step_0000004.state.pt (not a checkpoint of step 4)" in err and "(outer step 2)" in err
    folder.checkpoint_path(2).unlink()
    assert folder.load_checkpoint("checkpoint", step_key="outer_step") == (None, None)
    assert "no readable checkpoint" in capsys.readouterr().err
    empty = RunFolder(tmp_path / "empty", keep=False)
    assert empty.load_checkpoint("checkpoint") == (None, None)
    assert "no checkpoint in" in capsys.readouterr().err


def test_metrics_are_truncated_back_to_the_checkpoint_on_resume(tmp_path):
    folder = RunFolder(tmp_path, keep=False)
    log = folder.metrics_log(0)
    for step in range(1, 6):
        log.write({"step": step, "loss": step / 10})
    with folder.metrics_path.open("a") as fh:
        fh.write('{"step": 6, "lo')  # the line a kill cut short
    assert [r["step"] for r in folder.metrics()] == [1, 2, 3, 4, 5]
    log = folder.metrics_log(3)  # resumed from the checkpoint at step 3: 4 and 5 are logged again
    assert [r["step"] for r in folder.metrics()] == [1, 2, 3]
    log.write({"step": 4, "loss": 0.4})
    assert [json.loads(x)["step"] for x in folder.metrics_path.read_text().splitlines()] == [1, 2, 3, 4]
    assert folder.metrics(upto=2) == [{"step": 1, "loss": 0.1}, {"step": 2, "loss": 0.2}]
    folder.metrics_log(0)
    assert folder.metrics_path.read_text() == ""  # a new run starts it empty


def test_a_resume_may_change_only_the_listed_keys():
    old = {"outer_steps": 10, "device": "cpu", "n_syn": 4, "inner": {"lr": 0.1, "steps": 5}}
    new = {"outer_steps": 20, "device": "cuda", "n_syn": 4, "inner": {"lr": 0.1, "steps": 5}, "added": 1}
    # a key the run's config lacks (added since it started) takes the new value
    assert check_changes(old, new, "distill", "RUN/config.yaml") == {"outer_steps": [10, 20],
                                                                     "device": ["cpu", "cuda"]}
    with pytest.raises(ObdError) as err:
        check_changes(old, {**new, "inner": {"lr": 0.1, "steps": 6}}, "distill", "RUN/config.yaml")
    assert str(err.value) == ("RUN/config.yaml: resume with inner.steps=6 but the run started with 5; a resumed run "
                              "may only change ['outer_steps', 'checkpoint_every', 'device', 'logger']")
    # the same rule for every stage, only the keys differ
    assert check_changes({"run": {"steps": 5}}, {"run": {"steps": 9}}, "teacher", "x") == {"run.steps": [5, 9]}
    with pytest.raises(ObdError, match="resume with td3bc.alpha=1.0 but the run started with 2.5"):
        check_changes({"td3bc": {"alpha": 2.5}}, {"td3bc": {"alpha": 1.0}}, "teacher", "x")
    # a tuple is the list YAML reads back
    assert check_changes({"medium_band": [25.0, 45.0]}, {"medium_band": (25.0, 45.0)}, "behavior", "x") == {}


def test_every_key_a_resume_may_change_is_a_key_of_that_stage():
    from obd.collect.sac_config import SACConfig
    from obd.distill.config import DistillConfig
    from obd.teachers.training import RunConfig

    stages = {"distill": {f.name for f in dataclasses.fields(DistillConfig)},
              "teacher": {f"run.{f.name}" for f in dataclasses.fields(RunConfig)},
              "behavior": {f.name for f in dataclasses.fields(SACConfig)}}
    assert set(RESUME_MAY_CHANGE) == set(stages)
    for stage, keys in RESUME_MAY_CHANGE.items():
        assert set(keys) <= stages[stage], stage
        assert {"checkpoint_every", "device"} & {k.split(".")[-1] for k in keys}, stage


def test_refusals_name_the_folder(tmp_path, capsys):
    run = RunFolder(tmp_path / "run", keep=True)
    run.check_new()  # a new folder
    run.path.mkdir()
    run.check_new()  # an empty one
    (run.path / "report.json").write_text("{}")
    def refused(call, message):
        with pytest.raises(ObdError) as err:
            call()
        assert str(err.value) == message

    refused(run.check_new, f"{run.path}: not empty and not a run folder (no config.yaml); give an empty or new "
                           f"folder as --out")
    refused(run.check_resumable, f"{run.path}: no run to resume (config.yaml missing)")
    run.write_config({"a": 1})
    refused(run.check_new, f"{run.path}: already holds a run (config.yaml); use --resume {run.path} or another --out")
    run.check_resumable()
    (tmp_path / "file").write_text("")
    refused(lambda: check_folder(tmp_path / "file"), f"--resume {tmp_path / 'file'}: is a file, expected a run folder")
    with pytest.raises(ObdError, match="is a file"):
        RunFolder(tmp_path / "file", keep=False).check_resumable()
    with pytest.raises(ObdError, match=r"the dataset differs from the one this run started with \(sha256 aaaa"):
        check_inputs({"dataset": "a" * 64, "teacher": "b" * 64}, {"dataset": "c" * 64}, "ckpt")
    check_inputs({"dataset": "a" * 64, "teacher": "b" * 64}, {"dataset": "a" * 64}, "ckpt")  # nothing to compare


def test_start_continues_a_run_or_begins_one_in_an_empty_folder(tmp_path, capsys):
    folder = RunFolder(tmp_path / "run", keep=False)
    assert folder.start(resume=False) is False
    assert folder.start(resume=True) is False  # --resume on a folder with no run yet begins one
    assert "no run in" in capsys.readouterr().err
    folder.save_checkpoint({"step": 3}, 3)  # a run written before runs had a config.yaml: known by its checkpoint
    assert folder.is_run() and folder.start(resume=True) is True
    with pytest.raises(ObdError, match="already holds a run"):
        folder.start(resume=False)


# ---------------------------------------------------------------- the stages on the shared folder
def test_teacher_run_refuses_a_restart_and_a_changed_dataset(tmp_path, capsys):
    from test_teachers import SMALL, tiny_dataset

    from obd.teachers import TD3BC, RunConfig, TD3BCConfig, train_teacher

    cfg = TD3BCConfig(hidden=SMALL, batch_size=32)
    run = RunConfig(dataset="tiny", algo="td3bc", steps=10, eval_every=0, checkpoint_every=5, log_every=5,
                    device="cpu")
    train_teacher(TD3BC, cfg, tiny_dataset(), run, tmp_path / "run", progress=False)
    with pytest.raises(ObdError, match="already holds a run"):
        train_teacher(TD3BC, cfg, tiny_dataset(), run, tmp_path / "run", progress=False)
    longer = dataclasses.replace(run, steps=15)
    with pytest.raises(ObdError, match="checkpoint.pt: the dataset differs from the one this run started with"):
        train_teacher(TD3BC, cfg, tiny_dataset(seed=1), longer, tmp_path / "run", resume=True, progress=False)
    # a checkpoint written before checkpoints carried the dataset's fingerprint still resumes
    folder = RunFolder(tmp_path / "run", keep=False)
    state = torch.load(folder.rolling_path, weights_only=True)
    del state["inputs"]
    torch.save(state, folder.rolling_path)
    teacher = train_teacher(TD3BC, cfg, tiny_dataset(), longer, tmp_path / "run", resume=True, progress=False)
    assert teacher.metadata["training_steps"] == 15
    assert [r["step"] for r in folder.metrics()] == [5, 10, 15]


@pytest.mark.usefixtures("one_thread")
def test_behavior_run_of_main_resumes_and_refuses_other_networks(tmp_path, capsys):
    from obd.collect.__main__ import main

    run = tmp_path / "run"
    args = ["train-behavior", "hopper", "--out", str(run), "--policy-dir", str(tmp_path), "--start-steps", "60",
            "--batch-size", "16", "--hidden", "16", "--checkpoint-every", "60", "--eval-every", "60",
            "--eval-episodes", "1", "--confirm-episodes", "1", "--no-progress"]
    assert main([*args, "--total-steps", "120"]) == 0
    assert (run / "config.yaml").is_file()
    assert [r["step"] for r in RunFolder(run, keep=False).metrics()] == [60, 120]
    assert main([*args, "--total-steps", "180"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main([*args, "--total-steps", "180", "--resume", "--hidden", "32"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "resume with hidden=32 but the run started with 16" in err
    # the layout main wrote: no config.yaml, no metrics.jsonl
    (run / "config.yaml").unlink()
    (run / "metrics.jsonl").unlink()
    assert main([*args, "--total-steps", "180", "--resume"]) == 0
    assert "at step 120" in capsys.readouterr().out
    assert [r["step"] for r in RunFolder(run, keep=False).metrics()] == [180]
    assert len(np.load(run / "buffer.npz")["rewards"]) == 180
