"""``obd teacher train`` end to end on a tiny D4RL-layout file (hopper dims)."""

from __future__ import annotations

import json

import numpy as np
import torch

from obd.data import write_d4rl
from obd.teachers import Teacher
from obd.teachers.__main__ import main as teacher_cli

torch.set_num_threads(1)


def tiny_d4rl(path, n=300, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n + 1, 11)).astype(np.float32)
    timeouts = np.zeros(n, bool)
    timeouts[99::100] = True
    write_d4rl(path, obs[:-1], np.tanh(rng.normal(size=(n, 3))), rng.normal(size=n), np.zeros(n, bool), timeouts,
               obs[1:])
    return path


def test_train_cli_runs_resumes_and_reports_errors(tmp_path, capsys):
    data = tiny_d4rl(tmp_path / "hopper_tiny-v2.hdf5")
    out = tmp_path / "run"
    common = ["train", "--dataset", str(data), "--algo", "td3bc", "--out", str(out), "--eval-every", "10",
              "--eval-episodes", "1", "--eval-max-steps", "20", "--checkpoint-every", "10", "--log-every", "10",
              "--device", "cpu", "--no-progress"]
    assert teacher_cli(common + ["--steps", "20", "hidden=[16,16]", "batch_size=32"]) == 0
    t = Teacher.load(out / "teacher.pt")
    assert t.task == "hopper" and t.metadata["training_steps"] == 20 and "normalized_score" in t.metadata
    assert t.state()["arch"]["actor"]["hidden"] == [16, 16]
    assert t.metadata["dataset"] == str(data)
    assert teacher_cli(common + ["--steps", "30", "--resume", "hidden=[16,16]", "batch_size=32"]) == 0
    assert Teacher.load(out / "teacher.pt").metadata["training_steps"] == 30
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert sorted({r["step"] for r in rows}) == [10, 20, 30]
    assert [r["step"] for r in rows if "normalized_score" in r] == [10, 20, 30]
    capsys.readouterr()

    assert teacher_cli(common + ["--steps", "40", "--resume", "hidden=[32,32]", "batch_size=32"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "td3bc.hidden" in err and err.count("\n") == 1
    assert teacher_cli(common + ["--steps", "5", "alpah=1"]) == 2
    assert "unknown config key(s) ['alpah']" in capsys.readouterr().err
    assert teacher_cli(["train", "--dataset", str(tmp_path / "nope.hdf5"), "--out", str(out), "--steps", "5"]) == 2
    assert "nope.hdf5" in capsys.readouterr().err


def test_calql_cli_teacher_out_and_info_metadata(tmp_path, capsys):
    from obd.data import load_dataset

    data = tiny_d4rl(tmp_path / "hopper_tiny-v2.hdf5")
    out, named = tmp_path / "run", tmp_path / "envs" / "hopper" / "teacher_calql_medium.pt"
    assert teacher_cli(["train", "--dataset", str(data), "--algo", "calql", "--out", str(out), "--steps", "7",
                        "--eval-every", "5", "--eval-episodes", "2", "--eval-max-steps", "10", "--device", "cpu",
                        "--teacher-out", str(named), "--no-progress", "actor_hidden=[16,16]",
                        "critic_hidden=[16,16]", "batch_size=16", "cql_n_actions=2"]) == 0
    assert "over 2 episodes" in capsys.readouterr().out
    t = Teacher.load(named)
    assert torch.equal(t.actor.net[0].weight, Teacher.load(out / "teacher.pt").actor.net[0].weight)
    meta = t.metadata
    assert meta["algo"] == "calql" and meta["training_steps"] == 7 and meta["eval_episodes"] == 2
    assert meta["dataset_sha256"] == load_dataset(str(data)).fingerprint() and len(meta["dataset_sha256"]) == 64
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in rows if "normalized_score" in r]
    assert [r["step"] for r in final] == [5, 7]           # the last step is evaluated even off the schedule
    assert meta["normalized_score"] == final[-1]["normalized_score"]

    assert teacher_cli(["info", str(named)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {k: info[k] for k in ("algo", "training_steps", "eval_episodes")} == {"algo": "calql", "training_steps": 7,
                                                                                   "eval_episodes": 2}
    assert info["dataset"] == str(data) and info["dataset_sha256"] == meta["dataset_sha256"]
    assert info["stochastic"] and info["normalized_score"] == meta["normalized_score"]


def test_info_reads_shipped_teachers_written_before_the_provenance_keys(capsys):
    from pathlib import Path

    shipped = sorted((Path(__file__).resolve().parents[1] / "obd" / "tasks").glob("*/teacher_*.pt"))
    assert shipped
    for path in shipped:
        assert teacher_cli(["info", str(path)]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["algo"] and info["task"] == path.parent.name
        assert "dataset_sha256" in info                      # null for files older than the key
