"""Optional metric sinks: TensorBoard event files and an offline wandb run, both fed by a distillation;
unknown or uninstalled loggers are one-line config errors before any work."""

from __future__ import annotations

import importlib.util

import pytest

from obd.config import load_config
from obd.distill import DistillConfig, start_run
from obd.errors import ObdError
from obd.loggers import make_loggers, parse_loggers


def _config(hopper_file, logger: str) -> DistillConfig:
    return load_config(DistillConfig, None, ["objective=dbc", "n_syn=4", "student.hidden=8",
                                             "student.depth=2", "inner.steps=2", "outer.batch=8", "device=cpu",
                                             "outer_steps=3", "checkpoint_every=0", f"logger={logger}"])


def test_tensorboard_writes_event_files(hopper_file, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    start_run(_config(hopper_file, "tensorboard"), tmp_path / "run", str(hopper_file), progress=False)
    events = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    assert {"distill/loss", "distill/grad_norm"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("distill/loss")] == [1, 2, 3]


def test_wandb_offline_run(hopper_file, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    start_run(_config(hopper_file, "wandb"), tmp_path / "run", str(hopper_file), progress=False)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


def test_logger_names_are_checked(monkeypatch):
    assert parse_loggers("") == [] and parse_loggers("none") == []
    with pytest.raises(ObdError, match="config key 'logger': unknown logger 'mlflow'"):
        DistillConfig(logger="mlflow").validate()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ObdError, match=r'needs the \'wandb\' package \(pip install "obd\[wandb\]"\)'):
        parse_loggers("tensorboard,wandb")


def test_group_fans_out(tmp_path):
    seen = []

    class Sink:
        def log(self, step, metrics):
            seen.append((step, metrics))

        def close(self):
            seen.append("closed")

    with make_loggers("", tmp_path) as group:
        group.loggers.append(Sink())
        group.log(1, {"loss": 0.5, "note": "x"})
    assert seen == [(1, {"loss": 0.5, "note": "x"}), "closed"]
