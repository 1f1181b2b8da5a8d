"""scripts/build_benchmark.py: the benchmark's stages in order, make-like skipping, bad names."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "build_benchmark.py"


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_dry_run_lists_every_dataset_before_any_teacher(tmp_path):
    res = _run("--tasks", "hopper", "--stages", "select,data,bc,teachers", "--algos", "td3bc,iql",
               "--cache", str(tmp_path), "--dry-run", env={"D4RL_DATASET_DIR": str(tmp_path / "d4rl")})
    assert res.returncode == 0, res.stderr
    stages = [line.split("]")[0][1:] for line in res.stdout.splitlines()]
    assert stages == ["select"] + ["data"] * 3 + ["bc"] * 3 + ["teachers"] * 6
    assert "--behavior-run " + str(tmp_path / "behavior" / "hopper") in res.stdout
    assert "teacher_iql_medium_expert.pt" in res.stdout and "--teacher-out" in res.stdout


def test_outputs_newer_than_their_inputs_are_skipped(tmp_path):
    d4rl = tmp_path / "d4rl"
    d4rl.mkdir()
    dataset = d4rl / "hopper_medium-v5.hdf5"
    bc = tmp_path / "results" / "bc" / "hopper-medium-v5.json"
    args = ["--tasks", "hopper", "--stages", "bc", "--results", str(tmp_path / "results"), "--dry-run"]
    env = {"D4RL_DATASET_DIR": str(d4rl)}

    def first_line() -> str:
        return _run(*args, env=env).stdout.splitlines()[0]

    assert "skip" not in first_line()                      # no result yet
    bc.parent.mkdir(parents=True)
    bc.write_text("{}")
    assert "skip" not in first_line()                      # the dataset it is made from is missing
    dataset.write_text("x")
    os.utime(bc, (time.time() - 100, time.time() - 100))
    assert "skip" not in first_line()                      # the dataset is newer than the result
    os.utime(dataset, (time.time() - 200, time.time() - 200))
    assert first_line().startswith("[bc] skip (up to date")


def test_unknown_task_or_stage_is_one_line(tmp_path):
    for args in (["--tasks", "ant"], ["--stages", "teacher"]):
        res = _run(*args, "--dry-run")
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "unknown" in res.stderr


def test_every_command_parses_with_its_stage(tmp_path, load_script):
    """No retired spelling: each command the script would run parses with the parser of the `obd` stage it names."""
    import importlib

    from obd.__main__ import STAGES

    script = load_script("build_benchmark")
    for task in script.RECIPES:
        cmds = script.commands(task, list(script.STAGES), ["td3bc", "iql"], 1000, tmp_path, tmp_path)
        assert {c[0] for c in cmds} == set(script.STAGES)
        for _, argv, _, _ in cmds:
            assert argv[1:3] == ["-m", "obd"] and argv[3] in STAGES, argv
            importlib.import_module(STAGES[argv[3]][0]).build_parser().parse_args(argv[4:])
