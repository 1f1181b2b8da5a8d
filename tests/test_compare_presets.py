"""scripts/compare_presets.py: the common yardstick H and the end-to-end race of two tiny presets on a random
Hopper-shaped dataset with a tiny real Teacher file. Tiny dims and budgets so the file runs in seconds."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from obd.config import load_config
from obd.data import load_dataset, write_d4rl
from obd.distill.config import DistillConfig
from obd.distill.engine import Distiller
from obd.distill.inner import init_params, inner_loop, student_action

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "compare_presets.py"
OBS, ACT, N = 11, 3, 200  # Hopper dims, so the rollout evaluation runs on the real env

TINY_REF = """objective: avpbc
n_syn: 8
student: {kind: tanh_gaussian, hidden: 8, depth: 2}
inner: {steps: 4, lr: 0.1}
outer: {optimizer: sgd, lr: 0.1, momentum: 0.9, clip: 2.0, batch: 32}
device: cpu
"""
TINY_FAST = """objective: avpbc
n_syn: 8
student: {kind: tanh_gaussian, hidden: 4, depth: 2}
inner: {steps: 2, lr: 0.1}
outer: {optimizer: adam, lr: 0.05, batch: 16}
device: cpu
"""


@pytest.fixture(scope="module")
def cp(load_script):
    return load_script("compare_presets")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(dataset file, teacher file, reference preset, fast preset) in a temp folder."""
    from obd.nn import Actor, EnsembleQ
    from obd.teachers import Teacher

    tmp = tmp_path_factory.mktemp("compare")
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(N, OBS)).astype(np.float32)
    act = np.tanh(rng.normal(size=(N, ACT))).astype(np.float32)
    terminals = np.zeros(N, bool)
    terminals[49::50] = True
    data_path = write_d4rl(tmp / "hopper-tiny.hdf5", observations=obs, actions=act, rewards=rng.normal(size=N),
                           terminals=terminals, timeouts=np.zeros(N, bool), next_observations=obs + 0.01)
    torch.manual_seed(0)
    teacher = Teacher(Actor(OBS, ACT, (8, 8), "tanh_gaussian"), EnsembleQ(OBS, ACT, (8, 8), 2),
                      load_dataset(str(data_path)).normalizer, device="cpu")
    teacher.save(tmp / "teacher.pt")
    (tmp / "ref.yaml").write_text(TINY_REF)
    (tmp / "fast.yaml").write_text(TINY_FAST)
    return data_path, tmp / "teacher.pt", tmp / "ref.yaml", tmp / "fast.yaml"


def make_yardstick(cp, files, students=2, states=40, seed=3):
    from obd.teachers import Teacher

    data_path, teacher_path, ref, _ = files
    cfg = load_config(DistillConfig, ref, [f"inner.students={students}", f"outer.batch={states}"])
    teacher = Teacher.load(teacher_path)
    d = Distiller(cfg, load_dataset(str(data_path)), teacher, progress=False)
    return cp.Yardstick(d, students, states, seed), teacher


def test_yardstick_is_fixed_and_is_the_paper_objective(cp, files):
    yard, teacher = make_yardstick(cp, files)
    yard2, _ = make_yardstick(cp, files)
    d = yard.d
    g = torch.Generator().manual_seed(9)
    states, actions = torch.randn(8, OBS, generator=g), torch.rand(8, ACT, generator=g) * 2 - 1
    h = yard(states, actions)
    # the same fixed draws on every call and in every instance with the same seed
    assert h == yard(states, actions) == yard2(states, actions)
    assert torch.equal(yard.idx, yard2.idx) and torch.equal(yard.targets, yard2.targets)
    assert yard(states, actions * 0.5) != h
    other, _ = make_yardstick(cp, files, seed=4)
    assert not torch.equal(other.idx, yard.idx)
    # a synthetic set of another size gets its own fixed noise
    assert yard(states[:5], actions[:5]) == yard2(states[:5], actions[:5])
    # Av-PBC weights 0.02 * Q1(s, a*(s)) on exactly the fixed real states
    raw = load_dataset(str(files[0])).observations[yard.idx.numpy()]
    torch.testing.assert_close(yard.weights, 0.02 * teacher.q(raw, teacher.act(raw)))
    # H recomputed independently: autograd-differentiated inner loop, per-state error written out
    trained = inner_loop(yard.params, states, actions, d.config.inner.steps, yard.noise(8), d.config.inner.lr,
                         hand_vjp=False)
    a = student_action(trained, d.real_states[yard.idx], ACT)  # (S, M, act)
    expected = (yard.weights * ((a - yard.targets) ** 2).mean(-1)).mean()
    assert a.shape == (2, 40, ACT)
    assert h == pytest.approx(float(expected), rel=1e-5)
    # the fixed students are fresh paper-init students drawn after the indices and targets
    g = torch.Generator().manual_seed(3)
    torch.randint(N, (40,), generator=g)
    d.objective.targets(yard.idx, g)
    for p, q in zip(yard.params, init_params(d.dims, 2, g)):
        assert torch.equal(p, q)


def test_parse_presets_and_first_reach(cp, files):
    _, _, ref, fast = files
    got = cp.parse_presets(f"{ref},{fast}@inner.steps=3,{ref}")
    assert [n for n, _, _ in got] == ["ref", "fast@inner.steps=3", "ref#2"]
    assert got[1][2] == ["inner.steps=3"]
    with pytest.raises(cp.ObdError, match="nope.yaml"):
        cp.parse_presets(f"{ref},nope.yaml")
    with pytest.raises(cp.ObdError, match="expected key=value"):
        cp.parse_presets(f"{ref}@inner.steps")
    probes = [[0.0, 0, 5.0], [1.0, 3, 4.0], [2.0, 6, 2.0], [3.0, 9, 3.0]]
    assert cp.first_reach(probes, 3.0) == [2.0, 6, 2.0]
    assert cp.first_reach(probes, 1.0) is None
    assert cp.speedup(4.0, [2.0, 6, 2.0]) == 2.0 and cp.speedup(4.0, [0.0, 0, 1.0]) == float("inf")
    assert cp.speedup(4.0, None) is None


def test_cli_races_presets_and_writes_results(cp, files, tmp_path):
    data_path, teacher_path, ref, fast = files
    out = tmp_path / "cmp"
    rc = cp.main(["--dataset", str(data_path), "--teacher", str(teacher_path), "--presets", f"{ref},{fast}",
                  "--budget-seconds", "0.6", "--probe-every", "0.2", "--first-probe", "0.05", "--seed", "1",
                  "--out", str(out), "--yardstick", str(ref), "--yardstick-students", "2",
                  "--yardstick-states", "40", "--eval-students", "2", "--eval-episodes", "1",
                  "--eval-max-steps", "20"])
    assert rc == 0
    res = json.loads((out / "compare.json").read_text())
    assert res["reference"] == "ref" and list(res["presets"]) == ["ref", "fast"]
    ref_r, fast_r = res["presets"]["ref"], res["presets"]["fast"]
    assert res["target_H"] == ref_r["probes"][-1][2]
    # the reference reaches its own final H no later than its end, so its speedup is exactly 1
    assert ref_r["speedup"] == 1.0 and ref_r["time_to_target"] <= ref_r["wall_seconds"]
    for r in (ref_r, fast_r):
        walls, steps = [p[0] for p in r["probes"]], [p[1] for p in r["probes"]]
        assert walls[0] == 0 and steps[0] == 0 and walls == sorted(walls) and steps == sorted(steps)
        assert r["wall_seconds"] >= 0.6 and steps[-1] == r["outer_steps"] > 0
        assert len(r["probes"]) >= 4  # 0 s, doubling from 0.05 s, every 0.2 s, the end
        assert r["config"]["seed"] == 1
        assert len(r["final_eval"]["per_policy_normalized_score"]) == 2  # K = 2 students evaluated
        assert (out / ("ref" if r is ref_r else "fast") / "final.hdf5").is_file()
    from obd.distill.synthetic import SyntheticDataset

    # the synthetic sets name their teacher by the spec given, as an `obd distill` run's do
    assert SyntheticDataset.load(out / "fast" / "final.hdf5").metadata["teacher"] == str(teacher_path)
    assert res["settings"]["teacher"] == str(teacher_path)
    # same seed and n_syn: both presets start from the same synthetic set, so H at 0 s is identical
    assert ref_r["probes"][0][2] == fast_r["probes"][0][2]
    reach = cp.first_reach(fast_r["probes"], res["target_H"])
    assert fast_r["time_to_target"] == (None if reach is None else reach[0])
    expected = cp.speedup(res["reference_time_to_target"], reach)
    assert fast_r["speedup"] == ("inf" if expected == math.inf else expected)
    md = (out / "compare.md").read_text()
    assert "| preset | outer steps |" in md and "| ref |" in md and "| fast |" in md and "1.0x" in md
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_teacher_may_be_a_shipped_name(cp, files, tmp_path, capsys):
    from obd.distill.synthetic import SyntheticDataset

    data_path, _, ref, _ = files
    out = tmp_path / "cmp"
    common = ["--dataset", str(data_path), "--presets", str(ref), "--budget-seconds", "0.05", "--out", str(out),
              "--yardstick", str(ref), "--yardstick-students", "1", "--yardstick-states", "16",
              "--eval-students", "0"]
    assert cp.main([*common, "--teacher", "hopper-medium-v5"]) == 0  # the teacher obd ships for hopper medium
    assert SyntheticDataset.load(out / "ref" / "final.hdf5").metadata["teacher"] == "hopper-medium-v5"
    assert json.loads((out / "compare.json").read_text())["settings"]["teacher"] == "hopper-medium-v5"
    capsys.readouterr()
    for bad in (str(tmp_path / "missing.pt"), "hopper-nosuchlevel-v5"):
        assert cp.main([*common, "--teacher", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: --teacher") and bad in err and len(err.splitlines()) == 1


def test_cli_bad_input_is_one_line(files, tmp_path):
    data_path, teacher_path, ref, _ = files
    base = [sys.executable, str(SCRIPT), "--dataset", str(data_path), "--teacher", str(teacher_path),
            "--out", str(tmp_path / "x"), "--yardstick", str(ref)]
    done = subprocess.run(base + ["--presets", f"{ref}@inner.stepz=3"], capture_output=True, text=True)
    assert done.returncode == 2 and "inner.stepz" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = subprocess.run(base + ["--presets", str(ref), "--budget-seconds", "0"], capture_output=True, text=True)
    assert done.returncode == 2 and "--budget-seconds" in done.stderr


def test_runs_mode_reads_checkpoints_of_resumed_runs(cp, files, tmp_path):
    from obd.distill.__main__ import main as distill_main

    data_path, teacher_path, ref, fast = files
    common = [f"dataset={data_path}", f"teacher={teacher_path}", "checkpoint_every=2", "seed=1"]
    assert distill_main(["--config", str(ref), *common, "outer_steps=4", "--out", str(tmp_path / "ref"),
                         "--no-progress"]) == 0
    # the reference continues in a later "session": resumed to 8 steps from its checkpoint at 4
    assert distill_main(["--resume", str(tmp_path / "ref"), "outer_steps=8", "--no-progress"]) == 0
    assert distill_main(["--config", str(fast), *common, "outer_steps=6", "--out", str(tmp_path / "fast"),
                         "--no-progress"]) == 0
    out = tmp_path / "cmp"
    rc = cp.main(["--runs", f"{tmp_path / 'ref'},{tmp_path / 'fast'}", "--clock", "cpu", "--out", str(out),
                  "--yardstick", str(ref), "--yardstick-students", "2", "--yardstick-states", "40",
                  "--eval-students", "0"])
    assert rc == 0
    res = json.loads((out / "compare.json").read_text())
    assert res["settings"]["clock"] == "cpu" and res["settings"]["dataset"] == str(data_path)
    ref_r, fast_r = res["presets"]["ref"], res["presets"]["fast"]
    assert [p[1] for p in ref_r["probes"]] == [0, 2, 4, 6, 8] and [p[1] for p in fast_r["probes"]] == [0, 2, 4, 6]
    # probe times are the runs' own cumulative CPU seconds at those steps, across the resume
    lines = [json.loads(x) for x in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    assert [p[0] for p in ref_r["probes"][1:]] == [x["cpu_time"] for x in lines if x["step"] % 2 == 0]
    # H at every checkpoint is the yardstick of that checkpoint's synthetic set
    yard, _ = make_yardstick(cp, files, students=2, states=40, seed=12345)
    from obd.distill.synthetic import SyntheticDataset

    syn = SyntheticDataset.load(tmp_path / "ref" / "checkpoints" / "step_0000006.hdf5")
    assert ref_r["probes"][3][2] == pytest.approx(yard(syn.states, syn.actions), rel=1e-6)
    assert res["target_H"] == ref_r["probes"][-1][2] and ref_r["speedup"] == 1.0
    assert "cpu seconds" in (out / "compare.md").read_text()
    done = subprocess.run([sys.executable, str(SCRIPT), "--runs", str(tmp_path / "nope"), "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "nope" in done.stderr and "Traceback" not in done.stderr

    # the steps clock: step k of each run costs k x its fixed seconds per step
    rc = cp.main(["--runs", f"{tmp_path / 'ref'},{tmp_path / 'fast'}", "--clock", "steps", "--sec-per-step",
                  "1.0,0.25", "--out", str(out), "--yardstick", str(ref), "--yardstick-students", "2",
                  "--yardstick-states", "40", "--eval-students", "0"])
    assert rc == 0
    res = json.loads((out / "compare.json").read_text())
    assert [p[0] for p in res["presets"]["ref"]["probes"]] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert [p[0] for p in res["presets"]["fast"]["probes"]] == [0.0, 0.5, 1.0, 1.5]
    assert res["settings"]["sec_per_step"] == [1.0, 0.25] and "1, 0.25" in (out / "compare.md").read_text()
    for bad in (["--clock", "steps", "--sec-per-step", "1.0"], ["--clock", "steps", "--sec-per-step", "1,x"],
                ["--clock", "cpu", "--sec-per-step", "1,1"]):
        done = subprocess.run([sys.executable, str(SCRIPT), "--runs", f"{tmp_path / 'ref'},{tmp_path / 'fast'}",
                               "--out", str(out), *bad], capture_output=True, text=True)
        assert done.returncode == 2 and "--sec-per-step" in done.stderr and "Traceback" not in done.stderr
