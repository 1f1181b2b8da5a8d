"""One convention per stage (issue 33): every stage takes the common flags, inputs may be spelled as flags or
``key=value`` (not both), every resumable stage resumes with ``--resume RUN_DIR``, and ``--help`` lists the
allowed values of every choice key without importing torch (issue 32)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

WALK = r'''
import argparse, contextlib, io, json, sys
from obd.__main__ import STAGES, main

def subcommands(module_name):
    import importlib
    module = importlib.import_module(module_name)
    parser = module.build_parser()
    found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(found[0].choices) if found else []

helps = {}
for stage, (module_name, _) in STAGES.items():
    subs = subcommands(module_name) + (["merge"] if stage == "sweep" else [])
    for argv in ([[stage]] if not subs else []) + [[stage, s] for s in subs] + ([[stage]] if stage == "sweep" else []):
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            try:
                main([*argv, "--help"])
            except SystemExit:
                pass
        helps[" ".join(argv)] = text.getvalue()
print(json.dumps({"helps": helps, "torch": "torch" in sys.modules}))
'''


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    done = subprocess.run([sys.executable, "-c", WALK], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert not found["torch"], "a --help imported torch"
    return found["helps"]


def test_every_subcommand_takes_the_common_flags(helps):
    assert {"distill", "quickstart", "report", "sweep", "sweep merge", "data inspect", "teacher train",
            "teacher info", "teacher import-corl", "collect build", "collect train-behavior",
            "evaluate synthetic"} <= set(helps)
    for name, text in helps.items():
        assert text.startswith("usage: "), name
        for flag in ("--threads", "--seed", "--no-progress", "--device"):
            assert flag in text, f"obd {name} --help lacks {flag}"


def test_inputs_and_resume_are_spelled_the_same_everywhere(helps):
    for name in ("distill", "quickstart", "teacher train"):
        assert "--dataset SPEC" in helps[name] and "dataset=SPEC" in helps[name], name
    for name in ("distill", "quickstart"):
        assert "--teacher SPEC" in helps[name] and "teacher=SPEC" in helps[name], name
    for name in ("distill", "teacher train", "collect train-behavior"):
        assert "[--resume [RUN_DIR]]" in " ".join(helps[name].split()), name


def test_distill_help_lists_every_choice_and_section_from_the_config_types(helps):
    import typing

    from obd.config import config_fields
    from obd.distill.config import DistillConfig

    text = helps["distill"]
    for key, _, _ in config_fields(DistillConfig):
        assert f"\n  {key} " in text, key
    hints = typing.get_type_hints(DistillConfig)
    assert f"one of {'|'.join(typing.get_args(hints['objective']))}" in text
    assert "one of random|kmeans|topq" in text and "one of tanh_gaussian|deterministic" in text
    assert "density.estimator" in text and "one of kde|knn|gmm|flow" in text


def test_quickstart_help_shows_the_quickstart_preset(helps):
    from obd.config import read_config_file

    preset = read_config_file("quickstart")
    text = helps["quickstart"]
    assert "preset quickstart's values" in text
    assert re.search(rf"^\s+outer_steps\s+int = {preset['outer_steps']}$", text, re.M)
    assert re.search(rf"^\s+student.hidden\s+int = {preset['student']['hidden']}$", text, re.M)


def _print_config(*argv: str) -> None:
    from obd.distill.__main__ import main

    with pytest.raises(SystemExit) as done:
        main([*argv, "--print-config"])
    assert done.value.code == 0


def test_a_flag_and_its_key_value_are_one_setting(capsys, tiny_distill, hopper_file):
    from obd.distill.__main__ import main

    base = [a for a in tiny_distill if not a.startswith("dataset=")]
    _print_config(*base, "--dataset", str(hopper_file), "--seed", "3")
    by_flag = capsys.readouterr().out
    _print_config(*base, f"dataset={hopper_file}", "seed=3")
    assert capsys.readouterr().out == by_flag and "seed: 3" in by_flag and f"dataset: {hopper_file}" in by_flag
    assert main([*tiny_distill, "--seed", "3", "seed=5", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --seed 3 and seed=5: both set seed; give it once\n"
    assert main([*base, "--dataset", "a.hdf5", f"dataset={hopper_file}", "--print-config"]) == 2
    assert "--dataset a.hdf5 and dataset=" in capsys.readouterr().err


def test_resume_names_the_run_folder_in_either_form(tmp_path, capsys, tiny_distill):
    from obd.distill import load_synthetic
    from obd.distill.__main__ import main

    run = tmp_path / "run"
    quiet = ["--no-progress", "--threads", "1"]
    assert main([*tiny_distill, "outer_steps=2", "--out", str(run), *quiet]) == 0
    assert main(["--resume", str(run), "outer_steps=3", *quiet]) == 0
    assert main(["--resume", "--out", str(run), "outer_steps=4", *quiet]) == 0
    assert load_synthetic(run / "synthetic.hdf5").metadata["outer_step"] == 4
    capsys.readouterr()
    (tmp_path / "file").write_text("")
    assert main(["--resume", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == f"error: --resume {tmp_path / 'file'}: is a file, expected a run folder\n"
    assert main(["--resume", str(run), "--out", str(tmp_path / "other")]) == 2
    assert "two run folders" in capsys.readouterr().err


def test_teacher_train_resumes_from_its_folder_alone(tmp_path, capsys):
    import numpy as np

    from obd.data import write_d4rl
    from obd.teachers import Teacher
    from obd.teachers.__main__ import main

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(301, 11)).astype(np.float32)
    data = write_d4rl(tmp_path / "hopper_tiny-v2.hdf5", obs[:-1], np.tanh(rng.normal(size=(300, 3))),
                      rng.normal(size=300), np.zeros(300, bool), np.arange(300) % 100 == 99, obs[1:])
    out = tmp_path / "run"
    assert main(["train", f"dataset={data}", "--algo", "iql", "--out", str(out), "--steps", "10", "--eval-every",
                 "0", "--checkpoint-every", "5", "--log-every", "5", "--device", "cpu", "--no-progress",
                 "hidden=[16,16]", "batch_size=16"]) == 0
    assert main(["train", "--resume", str(out), "--steps", "15", "--no-progress"]) == 0
    teacher = Teacher.load(out / "teacher.pt")
    assert teacher.metadata["algo"] == "iql" and teacher.metadata["training_steps"] == 15
    assert teacher.state()["arch"]["actor"]["hidden"] == [16, 16]
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "new")]) == 2
    assert "--dataset: required" in capsys.readouterr().err


def test_train_behavior_resumes_from_its_folder_alone(tmp_path, capsys):
    from obd.collect.__main__ import main

    run = tmp_path / "run"
    assert main(["train-behavior", "hopper", "--out", str(run), "--policy-dir", str(tmp_path), "--total-steps",
                 "120", "--start-steps", "60", "--batch-size", "16", "--hidden", "16", "--checkpoint-every", "60",
                 "--eval-every", "1000000", "--no-progress"]) == 0
    assert main(["train-behavior", "--resume", str(run), "--policy-dir", str(tmp_path), "--total-steps", "180",
                 "--no-progress"]) == 0
    assert "at step 120" in capsys.readouterr().out
    from obd.io import torch_load_weights

    state = torch_load_weights(run / "checkpoint.pt", "SAC checkpoint")
    assert state["config"]["hidden"] == 16 and state["step"] == 180 and state["config_changes"] == []
