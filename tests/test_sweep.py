"""obd.sweep: a tiny grid on a local Ray of 2 CPUs (rows, table, kill and resume), errors before Ray starts,
teacher lookup and the table's layout. Ray starts once for this module."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import ray

from obd.data import load_dataset, write_d4rl
from obd.distill.synthetic import SyntheticDataset
from obd.errors import ObdError
from obd.sweep import driver
from obd.sweep.__main__ import main
from obd.sweep.grid import shipped_teacher, task_and_level
from obd.sweep.table import _budget_line, render_table

OBS, ACT, N = 11, 3, 3000  # hopper dims: trials roll out in Hopper-v5
TINY = """objective: avpbc
n_syn: 8
student: {kind: tanh_gaussian, hidden: 8, depth: 2}
inner: {steps: 2, lr: 0.1}
outer: {optimizer: adam, lr: 0.01, batch: 16}
outer_steps: 4
device: cpu
eval: {students: 1, episodes: 1, max_steps: 20, bc_steps: 5}
"""


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    """A 3k-transition hopper-like dataset file, a tiny teacher for it and the tiny preset."""
    import torch

    from obd.nn import Actor, EnsembleQ
    from obd.teachers import Teacher

    tmp = tmp_path_factory.mktemp("sweep")
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(N, OBS)).astype(np.float32)
    terminals = np.zeros(N, bool)
    terminals[99::100] = True
    data = write_d4rl(tmp / "hopper_tiny-v5.hdf5", observations=obs,
                      actions=np.tanh(rng.normal(size=(N, ACT))).astype(np.float32), rewards=rng.normal(size=N),
                      terminals=terminals, timeouts=np.zeros(N, bool), next_observations=obs + 0.01)
    torch.manual_seed(0)
    Teacher(Actor(OBS, ACT, (8, 8), "tanh_gaussian"), EnsembleQ(OBS, ACT, (8, 8), 2),
            load_dataset(str(data)).normalizer, task="hopper", device="cpu").save(tmp / "teacher.pt")
    (tmp / "tiny.yaml").write_text(TINY)
    return tmp, str(data)


@pytest.fixture(scope="module")
def local_ray():
    driver.init_ray(None, 2, False)
    yield
    ray.shutdown()


def _args(tmp: Path, data: str, out: Path, methods: str = "dbc,avpbc") -> list[str]:
    return ["--datasets", data, "--methods", methods, "--seeds", "0,1", "--config", str(tmp / "tiny.yaml"),
            "--teachers", f"{data}={tmp / 'teacher.pt'}", "--out", str(out)]


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file()}


def test_tiny_grid_writes_rows_and_table_then_resumes_after_a_kill(problem, local_ray, capsys):
    tmp, data = problem
    out = tmp / "grid"
    assert main(_args(tmp, data, out)) == 0
    rows = _rows(out)
    assert sorted((r["method"], r["seed"]) for r in rows) == [("avpbc", 0), ("avpbc", 1), ("dbc", 0), ("dbc", 1)]
    for r in rows:
        assert [c["step"] for c in r["checkpoints"]] == [1, 2, 3, 4]  # a checkpoint every 1/20, min 1 step
        assert r["normalized_score_mean"] == pytest.approx(np.mean([c["normalized_score_mean"]
                                                                    for c in r["checkpoints"]]))
        assert r["ray_node_id"] and r["seconds"] > 0 and r["dataset_size"] == N and r["threads"] == 1
        trial = out / "trials" / "hopper_tiny-v5" / r["method"] / f"seed{r['seed']}"
        assert (trial / "synthetic.hdf5").is_file() and (trial / "config.yaml").is_file()
    table = (out / "table.md").read_text()
    assert "| DBC |" in table and "| Av-PBC |" in table and "4 outer steps" in table
    assert (out / "table.png").stat().st_size > 0

    # a kill mid-run: dbc seed1 stopped after its 2nd outer step (no final set, no result); avpbc seed0
    # finished but the driver died before recording it
    root = out / "trials" / "hopper_tiny-v5"
    killed = root / "dbc" / "seed1"
    final = SyntheticDataset.load(killed / "synthetic.hdf5")
    for name in ("synthetic.hdf5", "result.json", "eval_cache.json", "checkpoints/step_0000003.hdf5",
                 "checkpoints/step_0000003.state.pt", "checkpoints/step_0000004.hdf5",
                 "checkpoints/step_0000004.state.pt"):
        (killed / name).unlink()
    unrecorded = [r for r in rows if (r["method"], r["seed"]) == ("avpbc", 0)][0]
    kept = [r for r in rows if (r["method"], r["seed"]) in (("dbc", 0), ("avpbc", 1))]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    untouched = {p: _files(root / p) for p in ("dbc/seed0", "avpbc/seed1")}
    capsys.readouterr()

    # a trial that fails is reported in one line and leaves the others to finish and be recorded
    config = killed / "config.yaml"
    saved = config.read_bytes()
    config.write_text("objective: [dbc\n")
    assert main(_args(tmp, data, out)) == 1
    captured = capsys.readouterr()
    assert "2 finished already, 2 to run" in captured.out
    assert "trial hopper_tiny-v5 dbc seed1 failed: ObdError:" in captured.err and "not valid YAML" in captured.err
    assert len(_rows(out)) == 3
    config.write_bytes(saved)

    assert main(_args(tmp, data, out)) == 0
    assert "3 finished already, 1 to run" in capsys.readouterr().out
    rows = _rows(out)
    assert len(rows) == 4 and len({(r["method"], r["seed"]) for r in rows}) == 4
    assert rows[:2] == kept
    assert rows[2] == unrecorded
    assert {p: _files(root / p) for p in untouched} == untouched
    resumed = SyntheticDataset.load(killed / "synthetic.hdf5")
    assert np.array_equal(resumed.states.numpy(), final.states.numpy())  # resumed bit-identically

    assert main(_args(tmp, data, out)) == 0
    assert "4 finished already, 0 to run" in capsys.readouterr().out
    sweep = json.loads((out / "sweep.json").read_text())
    assert len(sweep["commands"]) == 1


def test_local_trials_run_at_the_drivers_niceness(local_ray):
    @ray.remote(num_cpus=1)
    def niceness() -> int:
        return os.nice(0)

    assert ray.get(niceness.remote()) == os.nice(0)


def test_changed_settings_refuse_the_same_out(problem, tmp_path, capsys):
    tmp, data = problem
    out = tmp_path / "grid"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({"settings": {"preset": {}, "overrides": {}, "eval": {}},
                                                "commands": []}))
    assert main(_args(tmp, data, out) + ["eval.students=2"]) == 2
    assert "holds a sweep with other" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--methods", "dbc,nope"], "unknown method 'nope'"),
    (["--methods", "avpbc", "--teachers", ""], "no teacher for dataset"),
    (["--seeds", "0,x"], "--seeds"),
    (["inner.stepz=3"], "inner.stepz"),
    (["eval.students=0"], "eval.students"),
    (["objective=pbc"], "every trial sets objective itself (from --methods)"),
    (["--methods", "avpbc,avpbc[inner.stepz=3]"], "'avpbc[inner.stepz=3]'"),
    (["--methods", "random[n_syn=4]"], "only the distillation methods"),
    (["--methods", "avpbc[seed=3]"], "sets seed, which a variant cannot"),
    (["--methods", "avpbc[eval.students=3]"], "sets eval.students, which a variant cannot"),
    (["--methods", "avpbc[]"], "empty brackets"),
    (["--methods", "avpbc,avpbc[ q_clip=true ],avpbc[q_clip=true]"], "repeats an entry"),
])
def test_bad_input_fails_before_ray_starts_with_one_line(problem, monkeypatch, capsys, extra, message):
    tmp, data = problem

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray, "init", no_ray)
    argv = _args(tmp, data, tmp / "bad")
    if "--teachers" in extra:  # drop the given teacher: the file's name matches no shipped one
        i = argv.index("--teachers")
        argv = argv[:i] + argv[i + 2:]
        extra = [e for e in extra if e not in ("--teachers", "")]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_shipped_teacher_lookup():
    from obd.assets import tasks_dir

    assert shipped_teacher("hopper-medium-v5") == tasks_dir() / "hopper" / "teacher_td3bc_medium.pt"
    assert shipped_teacher("/x/halfcheetah_medium_replay-v5.hdf5") == \
        tasks_dir() / "halfcheetah" / "teacher_td3bc_medium_replay.pt"
    assert task_and_level("/x/halfcheetah_medium_replay-v5.hdf5") == ("halfcheetah", "medium-replay")
    assert task_and_level("mujoco/walker2d/medium-expert-v0") == ("walker2d", "medium-expert")
    assert task_and_level("/x/hopper_tiny-v5.hdf5") is None and shipped_teacher("/x/hopper_tiny-v5.hdf5") is None
    assert shipped_teacher("hopper-expert-v5") is None


def test_table_gives_mean_std_over_seeds_beside_the_paper():
    def row(method, seed, score):
        return {"dataset": "hopper-medium-v5", "spec": "hopper-medium-v5", "method": method, "seed": seed,
                "normalized_score_mean": score, "seconds": 1.0, "distill_seconds": 0.5, "task": "hopper",
                "dataset_size": 100, "teacher": "t.pt", "device": "cpu", "ray_node_id": "n1",
                "budget": {"outer_steps": 20, "checkpoint_every": 1, "n_syn": 8}, "eval": {"students": 10}}

    table = render_table([row("avpbc", 0, 30.0), row("avpbc", 1, 34.0), row("teacher", 0, 50.0)])
    assert "| Av-PBC | 32.0 ± 2.0 | 32.5 |" in table
    assert "| Teacher | 50.0 | 56.4 |" in table
    assert "`hopper-medium-v5`: `t.pt`" in table and "100 transitions" in table
    # the build the rows ran on, and whether the teacher was trained on it (where rows record both)
    built = {"dataset_fingerprint": "aa" * 32, "teacher_dataset_fingerprint": "aa" * 32}
    table = render_table([row("avpbc", 0, 30.0) | built])
    assert "100 transitions, data fingerprint aaaaaaaaaaaa" in table and "`t.pt` (trained on this build)" in table
    table = render_table([row("avpbc", 0, 30.0) | built | {"teacher_dataset_fingerprint": "bb" * 32}])
    assert "`t.pt` (trained on another build of the data: bbbbbbbbbbbb;" in table
    # a shipped teacher is named by its place in the package, not by the trial machine's install path
    installed = "/home/u/.venv/lib/site-packages/obd/tasks/hopper/teacher_td3bc_medium.pt"
    shipped = row("teacher", 0, 50.0) | {"teacher": installed}
    assert "`hopper-medium-v5`: `obd/tasks/hopper/teacher_td3bc_medium.pt` (shipped)" in render_table([shipped])


def test_ray_is_local_by_default_and_resources_follow_the_cluster(monkeypatch):
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.setenv(driver.WORKER_NICENESS_ENV, "7")   # the user's own setting is kept
    assert driver.init_ray(None, 2, False) and driver.init_ray("ray://head:10001", None, True)
    assert os.environ[driver.WORKER_NICENESS_ENV] == "7"
    assert calls[0]["address"] == "local" and calls[0]["num_cpus"] == 2 and not calls[0]["include_dashboard"]
    assert calls[1]["address"] == "ray://head:10001" and "num_cpus" not in calls[1]
    assert Path(calls[1]["runtime_env"]["py_modules"][0]) == Path(driver.__file__).resolve().parents[1]
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 1.0})
    assert driver.gpu_fraction(1) == 0.0625 and driver.gpu_fraction(4) == 0.25
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 3.0, "GPU": 1.0})
    assert driver.gpu_fraction(1) == 0.3333
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    assert driver.gpu_fraction(1) == 0.0
    driver.check_feasible(2, 0.0)
    with pytest.raises(ObdError, match="has 2 CPUs"):
        driver.check_feasible(4, 0.0)
    with pytest.raises(ObdError, match="no GPU"):
        driver.check_feasible(1, 0.5)


def test_baseline_trials_and_sdw_configs(problem, tmp_path):
    from obd.sweep.grid import build_grid, load_settings
    from obd.sweep.trial import run_trial

    tmp, data = problem
    settings = load_settings(str(tmp / "tiny.yaml"), ["density.estimator=gmm", "eval.bc_steps=3"])
    trials = build_grid([data], ["random", "bc", "teacher", "sdw", "avpbc"], [0], settings,
                        {data: str(tmp / "teacher.pt")}, tmp_path)
    by_method = {t.method: t for t in trials}
    from obd.distill.density_config import DensityConfig

    assert by_method["sdw"].distill.objective == "sdw" and by_method["sdw"].distill.density == \
        DensityConfig(estimator="gmm")
    assert by_method["avpbc"].distill.objective == "avpbc" and by_method["avpbc"].distill.density is None
    assert by_method["sdw"].teacher == str(tmp / "teacher.pt")
    assert by_method["avpbc"].distill.checkpoint_every == 1 and by_method["random"].distill is None
    for method in ("random", "bc", "teacher"):
        row = run_trial(by_method[method])
        assert row["method"] == method and len(row["checkpoints"]) == 1 and row["task"] == "hopper"
        assert json.loads((Path(by_method[method].trial_dir) / "result.json").read_text()) == row
    assert (Path(by_method["random"].trial_dir) / "synthetic.hdf5").is_file()
    assert row["teacher"] == str(tmp / "teacher.pt")
    assert row["dataset_fingerprint"] == load_dataset(data).fingerprint()
    assert row["teacher_dataset_fingerprint"] is None  # this teacher records no training data
    bc = run_trial(by_method["bc"])["eval"]
    assert (bc["steps"], bc["optimizer"], bc["batch_size"]) == (3, "adam", 256)
    # random pairs are trained like the distilled sets: the preset's 2x8 student and 2-step inner loop
    random = run_trial(by_method["random"])["eval"]
    assert (random["arch"], random["steps"], random["optimizer"]) == ("mlp2x8", 2, "sgd")


def test_rows_of_another_build_of_a_dataset_are_refused(problem, tmp_path, capsys):
    """A sweep folder holds one build of each dataset: a dataset rebuilt elsewhere (other data under the same
    name) is refused by its trials, and a folder already holding two builds is refused before Ray starts."""
    import dataclasses

    from obd.sweep.grid import build_grid, load_settings
    from obd.sweep.trial import run_trial

    tmp, data = problem
    trial = build_grid([data], ["random"], [0], load_settings(str(tmp / "tiny.yaml"), []), {}, tmp_path)[0]
    other = "ab" * 32
    with pytest.raises(ObdError, match=f"another build than the one this sweep's rows for hopper_tiny-v5 were "
                                       f"made on \\({other[:12]}\\); sweep it into another --out"):
        run_trial(dataclasses.replace(trial, build=other))
    assert not (Path(trial.trial_dir) / "result.json").exists()
    row = run_trial(dataclasses.replace(trial, build=load_dataset(data).fingerprint()))

    out = tmp_path / "grid"
    out.mkdir()
    driver.write_results(out, [row, {**row, "seed": 1, "dataset_fingerprint": other}])
    args = ["--datasets", data, "--methods", "random", "--seeds", "0,1,2", "--config", str(tmp / "tiny.yaml"),
            "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert f"{out}: rows for hopper_tiny-v5 were made on two builds of its data" in err and "\n" not in err


def test_an_sdw_preset_gives_every_method_its_own_objective(problem, tmp_path):
    from obd.sweep.grid import build_grid, load_settings, trial_budget

    tmp, data = problem
    settings = load_settings("small_sdw", ["n_syn=8"])
    trials = {t.method: t for t in build_grid([data], ["avpbc", "sdw", "dbc"], [0], settings,
                                              {data: str(tmp / "teacher.pt")}, tmp_path)}
    assert {m: t.distill.objective for m, t in trials.items()} == {"avpbc": "avpbc", "sdw": "sdw", "dbc": "dbc"}
    assert trials["sdw"].distill.density.mode == "sample" and trials["avpbc"].distill.density is None
    budget = trial_budget(trials["sdw"])
    assert budget["objective"] == "sdw" and "sdw" not in budget and budget["density"]["estimator"] == "gmm"
    # the table's budget line names the density settings and only the keys that differ from the defaults
    budget["density"]["value_bands"] = 10
    line = _budget_line(budget)
    assert "density gmm, alpha solved for ESS 0.5, mode sample" in line and "density.value_bands 10" in line
    assert "{" not in line and "chunk_size" not in line
    assert "density" not in _budget_line(trial_budget(trials["avpbc"]))


@pytest.mark.parametrize("preset", ["small", "paper"])
def test_a_plain_preset_gives_each_method_its_objectives_section(problem, tmp_path, preset):
    """``--config small --methods avpbc,sdw,dbc`` runs SDW with the preset's own SDW settings and DBC with DBC's,
    exactly what ``obd distill --config small_sdw`` (or ``_dbc``) runs, not the base objective's."""
    from obd.distill.config import load_run_config
    from obd.sweep.grid import build_grid, load_settings, trial_budget

    tmp, data = problem
    settings = load_settings(preset, [])
    trials = {t.method: t for t in build_grid([data], ["avpbc", "sdw", "dbc", "pbc"], [0], settings,
                                              {data: str(tmp / "teacher.pt")}, tmp_path)}
    for method, trial in trials.items():
        # what `obd distill --config {preset}_{method} dataset=DATA` runs (the preset's entry for hopper included)
        alone = load_run_config(f"{preset}_{method}", [f"dataset={data}"])[0]
        assert trial.distill.density == alone.density and trial.distill.coverage == alone.coverage, method
        assert trial.distill.outer_steps == alone.outer_steps, method
        assert trial.distill.student == alone.student, method
    assert trials["sdw"].distill.density is not None and trials["avpbc"].distill.density is None
    if preset == "paper":  # the published code runs DBC and PBC longer than Av-PBC
        assert trials["dbc"].distill.outer_steps == 50_000 and trials["avpbc"].distill.outer_steps == 20_000
    else:  # rows say which sets were made with state coverage
        assert "coverage.scale 0.3" in _budget_line(trial_budget(trials["avpbc"]))
        assert "coverage" not in _budget_line(trial_budget(trials["dbc"]))


def test_obd_sweep_help_imports_neither_torch_nor_ray():
    import subprocess
    import sys

    code = ("import sys\nfrom obd.__main__ import main\ntry:\n    main(['sweep', '--help'])\nexcept SystemExit:\n"
            "    pass\nassert 'torch' not in sys.modules and 'ray' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage: obd sweep" in done.stdout


def test_method_variants_are_rows_of_their_own(problem, tmp_path):
    from obd.sweep.grid import build_grid, load_settings, method_folder, parse_methods, trial_budget
    from obd.sweep.table import method_label

    tmp, data = problem
    methods = parse_methods("avpbc,avpbc[q_clip=true; outer.action=sample],sdw[density.target_ess=0.3],random")
    assert methods == ["avpbc", "avpbc[q_clip=true;outer.action=sample]", "sdw[density.target_ess=0.3]", "random"]
    assert parse_methods("avpbc[student.hidden=16],dbc") == ["avpbc[student.hidden=16]", "dbc"]
    settings = load_settings(str(tmp / "tiny.yaml"), ["density.estimator=gmm"])
    trials = {t.method: t for t in build_grid([data], methods, [0], settings, {data: str(tmp / "teacher.pt")},
                                              tmp_path)}
    plain, variant = trials["avpbc"].distill, trials["avpbc[q_clip=true;outer.action=sample]"].distill
    assert (plain.q_clip, plain.outer.action) == (False, "mean") and (variant.q_clip, variant.outer.action) == \
        (True, "sample")
    assert variant.objective == "avpbc" and variant.density is None and variant.outer_steps == plain.outer_steps
    sdw = trials["sdw[density.target_ess=0.3]"].distill
    assert sdw.objective == "sdw" and sdw.density.target_ess == 0.3 and sdw.density.estimator == "gmm"
    assert Path(trials["avpbc[q_clip=true;outer.action=sample]"].trial_dir) == \
        tmp_path / "trials" / "hopper_tiny-v5" / "avpbc+q_clip=true+outer.action=sample" / "seed0"
    assert method_folder("avpbc[student.head=paper]") == "avpbc+student.head=paper"
    assert method_label("avpbc[q_clip=true;outer.action=sample]") == "Av-PBC (q_clip=true, outer.action=sample)"

    def row(method, seed, score, budget):
        return {"dataset": "hopper-medium-v5", "spec": "hopper-medium-v5", "method": method, "seed": seed,
                "normalized_score_mean": score, "seconds": 1.0, "distill_seconds": 0.5, "task": "hopper",
                "dataset_size": 100, "teacher": "t.pt", "device": "cpu", "ray_node_id": "n1",
                "budget": budget, "eval": {"students": 10}}

    both = trial_budget(trials["avpbc[q_clip=true;outer.action=sample]"])
    table = render_table([row("avpbc[q_clip=true]", 0, 20.0, both), row("random", 0, 5.0, {}),
                          row("avpbc", 0, 30.0, trial_budget(trials["avpbc"]))])
    lines = [line for line in table.split("## Interquartile")[0].splitlines() if line.startswith("| ")]
    # the variant sits right below its plain method and carries no published number
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| Random selection", "| Av-PBC", "| Av-PBC (q_clip=true)"]
    assert lines[4] == "| Av-PBC (q_clip=true) | 20.0 |  |"
    assert "- Av-PBC (q_clip=true): " in table and "outer.action sample, q_clip True" in table
    # the commands block can be pasted into a shell: a variant's brackets and semicolons are quoted
    command = ["obd", "sweep", "--methods", "avpbc,avpbc[q_clip=true;outer.action=sample]", "--seeds", "0"]
    pasted = render_table([row("avpbc", 0, 30.0, trial_budget(trials["avpbc"]))], commands=[command])
    assert "obd sweep --methods 'avpbc,avpbc[q_clip=true;outer.action=sample]' --seeds 0" in pasted.splitlines()


def test_a_driver_killed_mid_grid_resumes_to_exactly_the_grid(problem, tmp_path):
    """A real kill: SIGKILL to the driver's whole process group (driver, local Ray, its workers) once the
    first row is recorded, then the same command again."""
    import signal
    import subprocess
    import sys
    import time

    tmp, data = problem
    out = tmp_path / "grid"
    argv = [sys.executable, "-m", "obd.sweep", *_args(tmp, data, out), "--cpus", "2", "outer_steps=300"]
    env = {**os.environ, "RAY_DISABLE_IMPORT_WARNING": "1"}
    first = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.monotonic() + 240
    results = out / "results.jsonl"
    while not (results.is_file() and results.read_text().strip()):
        assert first.poll() is None, "the sweep ended before any row was recorded"
        assert time.monotonic() < deadline, "no row within 240 s"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    before = _rows(out)
    assert 1 <= len(before) < 4
    finished = {(r["method"], r["seed"]): _files(out / "trials" / "hopper_tiny-v5" / r["method"] / f"seed{r['seed']}")
                for r in before}

    again = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"4 trials: {len(before)} finished already, {4 - len(before)} to run" in again.stdout
    rows = _rows(out)
    assert len(rows) == 4 and len({(r["method"], r["seed"]) for r in rows}) == 4
    assert rows[:len(before)] == before
    for (method, seed), files in finished.items():
        assert _files(out / "trials" / "hopper_tiny-v5" / method / f"seed{seed}") == files


def test_a_trial_with_set_selection_scores_the_set_its_run_chose(problem, tmp_path):
    from obd.sweep.grid import build_grid, load_settings
    from obd.sweep.trial import run_trial

    tmp, data = problem
    settings = load_settings(str(tmp / "tiny.yaml"), ["select.every=2", "select.students=1", "select.episodes=1",
                                                      "select.max_steps=10"])
    trial = build_grid([data], ["avpbc"], [0], settings, {data: str(tmp / "teacher.pt")}, tmp_path)[0]
    row = run_trial(trial)
    chosen = SyntheticDataset.load(Path(trial.trial_dir) / "synthetic.hdf5").metadata
    assert chosen["selected"]["last_step"] == 4
    assert [c["step"] for c in row["checkpoints"]] == [chosen["outer_step"]]
