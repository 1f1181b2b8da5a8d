"""The shared command-line conventions and every bad input of issue 14: one line naming the flag, key or
file, a non-zero exit, no traceback, nothing half-written."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from obd.errors import ObdError, cli_entry

ROOT = Path(__file__).resolve().parents[1]


def one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def _parsers() -> dict[str, argparse.ArgumentParser]:
    from obd import quickstart, report
    from obd.collect.__main__ import build_parser as collect_parser
    from obd.distill.__main__ import build_parser as distill_parser
    from obd.evaluate.__main__ import build_parser as evaluate_parser
    from obd.teachers.__main__ import build_parser as teacher_parser

    def sub(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return action.choices[name]

    out = {"distill": distill_parser(), "report": report.build_parser(), "quickstart": quickstart.build_parser()}
    for name in ("build", "train-behavior"):
        out[f"collect {name}"] = sub(collect_parser(), name)
    out["teacher train"] = sub(teacher_parser(), "train")
    for name in ("synthetic", "random", "bc", "teacher"):
        out[f"evaluate {name}"] = sub(evaluate_parser(), name)
    return out


@pytest.mark.parametrize("name", ["distill", "report", "quickstart", "collect build", "collect train-behavior",
                                  "teacher train", "evaluate synthetic", "evaluate random", "evaluate bc",
                                  "evaluate teacher"])
def test_shared_flags_on_every_stage(name):
    flags = {s for a in _parsers()[name]._actions for s in a.option_strings}
    assert {"--threads", "--seed", "--no-progress", "--out"} <= flags, name
    assert "--out-dir" not in {s for a in _parsers()[name]._actions if a.help != argparse.SUPPRESS
                               for s in a.option_strings}


def test_overrides_after_out_and_print_config(tmp_path, capsys, tiny_distill):
    from obd.distill.__main__ import main

    with pytest.raises(SystemExit) as done:
        main(["--config", "fast_avpbc", "--out", str(tmp_path / "run"), *tiny_distill, "--seed", "3",
              "outer_steps=7", "--print-config"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    assert "outer_steps: 7" in printed and "seed: 3" in printed and "hidden: 8" in printed
    assert not (tmp_path / "run").exists()  # printing runs nothing
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_teacher_train_print_config(capsys):
    from obd.teachers.__main__ import main

    with pytest.raises(SystemExit):
        main(["train", "--dataset", "x", "--out", "unused", "--algo", "td3bc", "alpha=3", "--print-config"])
    assert "alpha: 3.0" in capsys.readouterr().out


def test_build_accepts_dataset_ids():
    from obd.collect.build import parse_name

    assert parse_name("hopper-medium-v5") == ("hopper", "medium")
    assert parse_name("walker2d-medium-replay-v5") == ("walker2d", "medium-replay")
    assert parse_name("halfcheetah-expert") == ("halfcheetah", "expert")
    with pytest.raises(ObdError, match="obd builds '-v5' datasets.*'hopper-medium-v5'"):
        parse_name("hopper-medium-v2")


def test_nan_config_value_is_rejected(tmp_path, capsys, tiny_distill):
    from obd.distill.__main__ import main

    assert main([*tiny_distill, "beta=nan", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    one_line_error(capsys, "config key 'beta'", "finite")
    assert not (tmp_path / "run").exists()


def test_unwritable_out_fails_before_the_work(tmp_path, capsys, monkeypatch, tiny_distill):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    from obd.distill.__main__ import main as distill

    assert distill([*tiny_distill, "--out", str(blocker / "run"), "--no-progress"]) == 2
    one_line_error(capsys, "--out", "not writable")
    import obd.teachers.evaluation as evaluation
    from obd.evaluate.__main__ import main as evaluate

    monkeypatch.setattr(evaluation, "evaluate_teacher", lambda *a, **k: pytest.fail("work started"))
    assert evaluate(["teacher", "hopper-medium-v5", "--out", str(blocker / "r.json")]) == 2
    one_line_error(capsys, "--out", "a_file/r.json")


def test_full_disk_fails_before_the_work(tmp_path, capsys, monkeypatch, tiny_distill):
    import shutil

    import obd.io

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(obd.io.shutil, "disk_usage", lambda p: usage._replace(free=1024))
    from obd.distill.__main__ import main

    assert main([*tiny_distill, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    one_line_error(capsys, "--out", "MiB free")
    assert not (tmp_path / "run").exists()


def test_os_errors_are_one_line(capsys):
    def full(argv):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/x.hdf5")

    assert cli_entry(full)([]) == 1
    one_line_error(capsys, "/data/x.hdf5: no space left on the device")


def test_train_behavior_negative_steps(tmp_path, capsys):
    from obd.collect.__main__ import main

    assert main(["train-behavior", "hopper", "--total-steps", "-1", "--out", str(tmp_path / "b")]) == 2
    one_line_error(capsys, "--total-steps", "got -1")
    assert not (tmp_path / "b").exists()


def test_train_behavior_writes_policies_into_its_run_folder(tmp_path, monkeypatch, capsys):
    import obd.collect.sac as sac
    from obd.assets import tasks_dir
    from obd.collect.__main__ import main

    seen = {}

    class Trainer:
        def __init__(self, cfg, out, policy_dir):
            seen.update(cfg=cfg, out=Path(out), policy_dir=Path(policy_dir))

        def train(self, progress=True):
            return {"medium": None, "expert": None}

    monkeypatch.setattr(sac, "SACTrainer", Trainer)
    monkeypatch.chdir(tmp_path)
    assert main(["train-behavior", "hopper", "--total-steps", "100", "--start-steps", "10", "--seed", "4"]) == 0
    assert seen["out"] == Path(".obd_cache/behavior/hopper") and seen["policy_dir"] == seen["out"]
    assert seen["cfg"].seed == 4 and seen["cfg"].total_steps == 100
    assert tasks_dir() not in (tmp_path / seen["policy_dir"]).resolve().parents
    assert "policies in .obd_cache/behavior/hopper" in capsys.readouterr().out


def test_evaluate_task_must_match_the_file(tmp_path, capsys):
    from obd.data.dataset import Normalizer
    from obd.distill.synthetic import SyntheticDataset
    from obd.evaluate.__main__ import main

    path = SyntheticDataset(torch.zeros(4, 17), torch.zeros(4, 6), Normalizer.identity(17), "halfcheetah",
                            {}).save(tmp_path / "cheetah.hdf5")
    assert main(["synthetic", str(path), "--task", "walker2d", "--students", "1", "--episodes", "1"]) == 2
    one_line_error(capsys, "cheetah.hdf5", "recorded for task 'halfcheetah', not --task walker2d")


def test_malicious_corl_file_is_refused_without_torch_advice(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"actor": Evil()}, tmp_path / "evil.pt")
    from obd.teachers.__main__ import main

    assert main(["import-corl", str(tmp_path / "evil.pt"), "--task", "hopper", "--obs-mean", ",".join(["0"] * 11),
                 "--obs-std", ",".join(["1"] * 11), "--out", str(tmp_path / "t.pt")]) == 2
    err = one_line_error(capsys, "evil.pt", "refused", "system")
    assert "weights_only" not in err and not (tmp_path / "t.pt").exists()


def _distill(*argv: str) -> int:
    from obd.distill.__main__ import main

    return main([*argv, "--no-progress", "--threads", "1"])


def test_nan_loss_stops_keeping_the_last_good_checkpoint(tmp_path, capsys, monkeypatch, tiny_distill):
    from obd.distill.engine import Distiller

    real = Distiller.step

    def step(self):
        metrics = real(self)
        if self.outer_step == 3:
            metrics["loss"] = float("nan")
        return metrics

    monkeypatch.setattr(Distiller, "step", step)
    run = tmp_path / "run"
    assert _distill(*tiny_distill, "outer_steps=6", "--out", str(run)) == 2
    one_line_error(capsys, "outer step 3: loss is nan", "step_0000002.state.pt")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000002.hdf5", "step_0000002.state.pt"]
    assert not (run / "synthetic.hdf5").exists()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_falls_back_to_the_newest_readable_checkpoint(tmp_path, capsys, tiny_distill):
    from obd.distill import load_synthetic

    run = tmp_path / "run"
    assert _distill(*tiny_distill, "outer_steps=6", "--out", str(run)) == 0
    final = load_synthetic(run / "synthetic.hdf5")
    (run / "synthetic.hdf5").unlink()
    for p in (run / "checkpoints").glob("step_0000006.*"):
        p.unlink()
    (run / "checkpoints" / "step_0000004.state.pt").write_bytes(b"truncated by a crash")
    capsys.readouterr()
    assert _distill("--resume", str(run)) == 0
    err = capsys.readouterr().err
    assert "skipped unreadable checkpoint(s) step_0000004.state.pt" in err and "(outer step 2)" in err
    again = load_synthetic(run / "synthetic.hdf5")
    assert torch.equal(again.states, final.states) and torch.equal(again.actions, final.actions)


def test_sigint_saves_a_checkpoint_and_prints_the_resume_command(tmp_path, hopper_file):
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "obd", "distill", f"dataset={hopper_file}", "objective=dbc", "n_syn=4",
            "student.hidden=8", "student.depth=2", "inner.steps=2", "outer.batch=8", "device=cpu",
            "outer_steps=1000000", "checkpoint_every=0", "--out", str(run), "--no-progress", "--threads", "1"]
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline and not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"continue with: obd distill --resume {run}" in err
    saved = sorted((run / "checkpoints").glob("step_*.state.pt"))
    assert len(saved) == 1 and not (run / "synthetic.hdf5").exists()
    step = int(saved[0].name[5:12])
    assert _distill("--resume", str(run), f"outer_steps={step + 2}") == 0
    from obd.distill import load_synthetic

    assert load_synthetic(run / "synthetic.hdf5").metadata["outer_step"] == step + 2


def test_numeric_flags_are_checked(capsys):
    from obd.evaluate.__main__ import main

    assert main(["teacher", "hopper-medium-v5", "--episodes", "0"]) == 2
    one_line_error(capsys, "--episodes")
    assert main(["teacher", "hopper-medium-v5", "--threads", "0"]) == 2
    one_line_error(capsys, "--threads")
