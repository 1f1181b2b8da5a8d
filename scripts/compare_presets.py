"""Race distillation presets against the wall clock on one common yardstick: the paper's outer objective H.

    python scripts/compare_presets.py --dataset ~/.cache/obd/datasets/hopper-medium-100000/hopper_medium-v5.hdf5 \\
        --teacher hopper-medium-v5 \\
        --presets paper_avpbc,fast_avpbc --budget-seconds 600 --out runs/compare

    python scripts/compare_presets.py --runs runs/long/paper_avpbc,runs/long/fast_avpbc --clock cpu --out DIR

Every preset (a config YAML, optionally followed by ``@key=value`` overrides, e.g.
``fast_avpbc@inner.steps=30@outer.batch=512``) distills the same dataset with the same teacher,
seed and initial synthetic set for ``--budget-seconds`` of wall time spent in outer steps. The first preset
is the reference (the paper's).

The yardstick, identical for every preset and probe: H of the paper's objective (``--yardstick`` config,
Av-PBC with beta = 0.02 by default) for ``--yardstick-students`` students of the paper's architecture (3x256
tanh-Gaussian), each trained T = 100 SGD steps at lr 0.1 on the synthetic set from FIXED initial parameters
with FIXED policy noise, measured on a FIXED set of ``--yardstick-states`` real-state indices with FIXED
teacher targets. It is computed with the engine's own functions (``init_params``, ``inner_loop``,
``student_action``, ``outer_loss`` and the objective's precomputed teacher targets and Q weights) under
``torch.no_grad``, so presets with other students, inner steps or batches are compared on one scale.

Probes (excluded from the budget clock, as is the one-off precomputation) run at 0 s, then at doubling
times from ``--first-probe`` until the spacing reaches ``--probe-every``, then every ``--probe-every``
seconds, and at the end of the budget. Results:

- ``DIR/compare.json``: settings, target, and per preset the probes ``[wall seconds, outer steps, H]``;
- ``DIR/compare.md``: per preset outer steps, sec/step, best and final H, wall time to first reach the
  reference's final H ("target"), speedup = reference's time to its final H / this preset's time to reach it,
  the normalized score of the final synthetic set and of the set saved at the probe that first reached the
  target (``obd.evaluate.evaluate_synthetic``: K students x E episodes, paper protocol);
- ``DIR/compare.png``: H against wall seconds (log x);
- ``DIR/<preset>/final.hdf5`` and ``DIR/<preset>/at_target.hdf5``: those synthetic sets.

``--runs`` compares finished (or still running) ``python -m obd.distill`` run folders instead, e.g. a
paper-preset run of 20k outer steps that took several sessions, resumed from its checkpoints: the probes
are the runs' checkpoints (``RUN/checkpoints/step_*.hdf5``), timed by the cumulative outer-step seconds
that ``RUN/metrics.jsonl`` records at that step. ``--clock cpu`` uses process CPU seconds instead of wall
seconds: with one torch thread that is the wall time the run would have taken on an idle core, so runs made
on a machine shared with other jobs stay comparable. ``--clock steps --sec-per-step A,B`` times each run as
its outer steps times a fixed cost per step (one value per run, e.g. the ``sec_per_outer_step`` of
``scripts/bench_distill.py`` for each preset, measured back to back in one session): the clock for runs
that were resumed over several sessions, machines or thread counts, whose recorded seconds do not share
one scale. The runs must share dataset and teacher (their ``config.yaml``); the first run is the reference.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from obd.assets import resolve_asset  # noqa: E402
from obd.config import config_to_dict, read_config_file  # noqa: E402
from obd.device import resolve_device  # noqa: E402
from obd.distill.config import DistillConfig, load_run_config  # noqa: E402
from obd.distill.engine import Distiller, load_dataset_spec, load_teacher  # noqa: E402
from obd.distill.folder import DistillFolder  # noqa: E402
from obd.distill.inner import init_params, inner_loop, student_action  # noqa: E402
from obd.distill.objectives import outer_loss  # noqa: E402
from obd.distill.synthetic import SyntheticDataset  # noqa: E402
from obd.errors import ObdError, cli_entry  # noqa: E402
from obd.io import atomic_path, write_json_atomic, write_text_atomic  # noqa: E402

DEFAULT_PRESETS = "paper_avpbc,fast_avpbc"


class Yardstick:
    """H(theta_T(D_syn)) under fixed paper settings: ``students`` fixed fresh students (S) trained by the
    inner loop on the synthetic set, then the objective's weighted error on ``states`` fixed real states (M).

    ``distiller`` is a :class:`Distiller` built with the yardstick config; only its precomputed real states,
    objective targets/weights and student dims are used. All random draws come from generators seeded by
    ``seed`` (noise per synthetic-set size N), so two calls on equal tensors return equal H.
    """

    def __init__(self, distiller: Distiller, students: int, states: int, seed: int):
        self.d, self.seed = distiller, seed
        cfg, dev = distiller.config, distiller.device
        g = torch.Generator(device=dev).manual_seed(seed)
        self.idx = torch.randint(len(distiller.real_states), (states,), generator=g, device=dev)  # (M,)
        self.targets, self.weights = distiller.objective.targets(self.idx, g)  # (M, act), (M,) or None
        self.params = init_params(distiller.dims, students, g, cfg.student.orthogonal_init, dev)
        self.students = students
        self._noise: dict[int, torch.Tensor | None] = {}

    def noise(self, n: int) -> torch.Tensor | None:
        """eps_1..T (T, S, N, act) for a synthetic set of N pairs (None for a deterministic student)."""
        if n not in self._noise:
            cfg, d = self.d.config, self.d
            if cfg.student.kind != "tanh_gaussian":
                self._noise[n] = None
            else:
                g = torch.Generator(device=d.device).manual_seed(self.seed * 1_000_003 + n)
                self._noise[n] = torch.randn((cfg.inner.steps, self.students, n, d.act_dim), generator=g,
                                             device=d.device)
        return self._noise[n]

    def __call__(self, states: torch.Tensor, actions: torch.Tensor) -> float:
        """H for synthetic ``states`` (N, obs) normalized and ``actions`` (N, act)."""
        cfg, d = self.d.config, self.d
        states = states.detach().to(d.device, torch.float32)
        actions = actions.detach().to(d.device, torch.float32)
        with torch.no_grad():
            trained = inner_loop(self.params, states, actions, cfg.inner.steps, self.noise(len(states)),
                                 cfg.inner.lr, cfg.inner.momentum)
            h = outer_loss(student_action(trained, d.real_states[self.idx], d.act_dim), self.targets, self.weights)
        return float(h)


def parse_presets(text: str) -> list[tuple[str, str, list[str]]]:
    """``PRESET[@key=value...]`` items separated by commas (a config file or shipped preset name, e.g.
    ``fast_avpbc``) -> (unique name, preset, overrides)."""
    out: list[tuple[str, str, list[str]]] = []
    names: set[str] = set()
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        path_text, *overrides = item.split("@")
        try:
            read_config_file(path_text)
        except ObdError:
            raise ObdError(f"--presets: config file '{path_text}' not found") from None
        for o in overrides:
            if "=" not in o:
                raise ObdError(f"--presets: override '{o}' in '{item}': expected key=value")
        name = "@".join([Path(path_text).stem, *overrides])
        base, k = name, 2
        while name in names:
            name, k = f"{base}#{k}", k + 1
        names.add(name)
        out.append((name, path_text, overrides))
    if not out:
        raise ObdError("--presets: expected at least one config file")
    return out


def first_reach(probes: list[list[float]], target: float) -> list[float] | None:
    """The first probe [wall, step, H] with H <= target (None if none)."""
    return next((p for p in probes if p[2] <= target), None)


def speedup(reference_time: float, reach: list[float] | None) -> float | None:
    """The reference's time to its own final H over a preset's time to reach it (``reach``: the preset's
    first probe [seconds, step, H] at or below it); inf when reached at 0 s, None when never reached."""
    if reach is None:
        return None
    return reference_time / reach[0] if reach[0] > 0 else math.inf


def run_preset(name: str, cfg: DistillConfig, dataset: Any, teacher: Any, yardstick: Yardstick, budget: float,
               probe_every: float, first_probe: float, teacher_label: str = "") -> dict[str, Any]:
    """Distill for ``budget`` seconds of outer-step wall time, probing H; returns probes and snapshots (whose
    metadata names the teacher ``teacher_label``)."""
    t0 = time.perf_counter()
    d = Distiller(cfg, dataset, teacher, progress=False, teacher_label=teacher_label)
    setup = time.perf_counter() - t0
    probes: list[list[float]] = []
    snapshots: list[SyntheticDataset] = []
    probe_seconds = 0.0

    def probe() -> None:
        nonlocal probe_seconds
        t = time.perf_counter()
        probes.append([d.wall_time, d.outer_step, yardstick(d.states, d.actions)])
        snapshots.append(d.synthetic())
        probe_seconds += time.perf_counter() - t

    probe()
    next_probe = first_probe
    bar = tqdm(total=round(budget, 1), desc=name, unit="s", dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f}s {postfix}")
    with bar:
        while d.wall_time < budget:
            loss = d.step()["loss"]
            bar.update(min(d.wall_time, budget) - bar.n)
            if d.wall_time >= next_probe and d.wall_time < budget:
                probe()
                next_probe = min(next_probe * 2, next_probe + probe_every)
                while next_probe <= d.wall_time:
                    next_probe += probe_every
            bar.set_postfix(step=d.outer_step, loss=f"{loss:.4g}", H=f"{probes[-1][2]:.4g}", refresh=False)
        if probes[-1][1] != d.outer_step:
            probe()
    return {"probes": probes, "snapshots": snapshots, "setup_seconds": setup, "probe_seconds": probe_seconds,
            "outer_steps": d.outer_step, "wall_seconds": d.wall_time,
            "sec_per_step": d.wall_time / d.outer_step if d.outer_step else None}


def read_run(run_dir: Path, yardstick: Yardstick, clock: str, dataset: Any, teacher: Any,
             sec_per_step: float | None = None, teacher_label: str = "") -> dict[str, Any]:
    """Probes [seconds, step, H] at every checkpoint of a ``python -m obd.distill`` run folder, and the
    checkpoints' synthetic sets, in the dictionary layout :func:`run_preset` returns (the step-0 set's
    metadata names the teacher ``teacher_label``). ``clock`` "steps" times step k as ``k * sec_per_step``."""
    key = {"wall": "wall_time", "cpu": "cpu_time", "steps": "step"}[clock]
    scale = sec_per_step if clock == "steps" else 1.0
    folder = DistillFolder(run_dir)
    if not folder.metrics_path.is_file():
        raise ObdError(f"{folder.metrics_path}: missing (is {run_dir} a python -m obd.distill run?)")
    seconds = {0: 0.0}
    for n, row in enumerate(folder.metrics(), 1):
        if key not in row:
            raise ObdError(f"{folder.metrics_path}: line {n} has no '{key}' (runs made before obd recorded it: "
                           f"use --clock wall)")
        seconds[int(row["step"])] = float(row[key]) * scale
    found = sorted((step, folder.set_path(step)) for step, _ in folder.checkpoints())
    found = [(step, path) for step, path in found if step in seconds and path.is_file()]
    if not found:
        raise ObdError(f"{folder.checkpoints_dir}: no checkpoint with a metrics line to time it")
    cfg, _ = load_run_config(run_dir / "config.yaml")
    # step 0: the run's initial synthetic set
    first = Distiller(cfg, dataset, teacher, progress=False, teacher_label=teacher_label)
    probes = [[0.0, 0, yardstick(first.states, first.actions)]]
    snapshots = [first.synthetic()]
    for step, path in tqdm(found, desc=run_dir.name, leave=False):
        syn = SyntheticDataset.load(path)
        probes.append([seconds[step], step, yardstick(syn.states, syn.actions)])
        snapshots.append(syn)
    last_step, last_seconds = probes[-1][1], probes[-1][0]
    return {"probes": probes, "snapshots": snapshots, "setup_seconds": None, "probe_seconds": None,
            "outer_steps": last_step, "wall_seconds": last_seconds,
            "sec_per_step": last_seconds / last_step if last_step else None}


def evaluate(syn: SyntheticDataset, args: argparse.Namespace) -> dict[str, Any] | None:
    if args.eval_students <= 0:
        return None
    from obd.evaluate import PAPER_STUDENT
    from obd.evaluate.protocol import evaluate_synthetic

    # one yardstick for every preset (the module docstring's "paper protocol"), not each preset's own student
    r = evaluate_synthetic(syn, student=PAPER_STUDENT, students=args.eval_students, episodes=args.eval_episodes,
                           seed=args.seed,
                           max_steps=args.eval_max_steps, where=f"synthetic set at step {syn.metadata['outer_step']}")
    keep = ("normalized_score_mean", "normalized_score_std", "per_policy_normalized_score", "return_mean",
            "episode_length_mean", "forward_progress_mean",
            "students", "episodes", "train_seconds", "rollout_seconds")
    return {k: r[k] for k in keep if k in r}


def fmt_score(r: dict[str, Any] | None) -> str:
    return "n/a" if r is None else f"{r['normalized_score_mean']:.1f} ± {r['normalized_score_std']:.1f}"


def clock_label(clock: str) -> str:
    """What the time axis measures under ``--clock``."""
    return {"wall": "wall seconds of outer steps", "cpu": "CPU seconds of outer steps",
            "steps": "outer steps x seconds per step"}[clock]


def render_md(result: dict[str, Any]) -> str:
    s = result["settings"]
    ref = result["reference"]
    lines = [
        "# Preset comparison on the paper's outer objective H",
        "",
        f"Dataset `{s['dataset']}`, teacher `{s['teacher']}`, seed {s['seed']}, "
        + (f"runs {', '.join(f'`{r}`' for r in s['runs'])} timed by "
           + (f"outer steps x fixed seconds per step ({', '.join(f'{c:g}' for c in s['sec_per_step'])}), "
              if s.get("sec_per_step") else f"cumulative outer-step {s['clock']} seconds, ")
           if s["runs"] else f"budget {s['budget_seconds']:g} s of outer-step wall time per preset, ")
        + f"{s['threads']} thread(s), device {s['device']}.",
        f"Yardstick: `{s['yardstick']}` objective, {s['yardstick_students']} fixed students x "
        f"{s['yardstick_states']} fixed real states (seed {s['yardstick_seed']}). Target = final H of the "
        f"reference preset `{ref}`: {result['target_H']:.5g}. Scores: {s['eval_students']} students x "
        f"{s['eval_episodes']} episodes, D4RL normalized.",
        "",
        "| preset | outer steps | sec/step | H at start | best H | final H | time to target (s) | speedup "
        "| final score | score at target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, p in result["presets"].items():
        probes = p["probes"]
        reach = p["time_to_target"]
        reach_text = "not reached" if reach is None else f"{reach:.1f} (step {p['steps_to_target']})"
        speed = p["speedup"]
        speed_text = "n/a" if speed is None else ("inf" if math.isinf(speed) else f"{speed:.1f}x")
        sps = "n/a" if p["sec_per_step"] is None else f"{p['sec_per_step']:.3f}"
        lines.append(f"| {name} | {p['outer_steps']} | {sps} | {probes[0][2]:.5g} | {min(q[2] for q in probes):.5g} "
                     f"| {probes[-1][2]:.5g} | {reach_text} | {speed_text} | {fmt_score(p['final_eval'])} "
                     f"| {fmt_score(p['target_eval'])} |")
    lines += ["", f"Time to target: {clock_label(s['clock'])} at the first probe with H <= target (probe "
              f"resolution). Speedup = reference's time to its own final H / this preset's time to reach it.", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, p in result["presets"].items():
        pts = [(w, h) for w, _, h in p["probes"] if w > 0]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, label=name)
    ax.axhline(result["target_H"], color="gray", ls="--", lw=1, label=f"target (final H of {result['reference']})")
    ax.set_xscale("log")
    ax.set_xlabel(clock_label(result["settings"]["clock"]))
    ax.set_ylabel(f"H ({result['settings']['yardstick']} yardstick)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main_(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", help="dataset spec for obd.data.load_dataset (with --runs: from the runs' config)")
    p.add_argument("--teacher", help="teacher file (obd.teachers.Teacher) or the dataset id of a shipped one "
                   "(hopper-medium-v5, hopper-medium-v5:iql) (with --runs: from the runs' config)")
    p.add_argument("--runs", help="comma-separated python -m obd.distill run folders to compare from their "
                   "checkpoints instead of running presets; first = reference")
    p.add_argument("--sec-per-step", help="with --clock steps: comma-separated seconds per outer step, one per run")
    p.add_argument("--clock", choices=("wall", "cpu", "steps"), default="wall",
                   help="with --runs: time axis = cumulative outer-step wall or process-CPU seconds")
    p.add_argument("--presets", default=DEFAULT_PRESETS, help="comma-separated PATH[@key=value...]; first = reference")
    p.add_argument("--budget-seconds", type=float, default=600.0, help="outer-step wall time per preset")
    p.add_argument("--probe-every", type=float, default=30.0, help="seconds between probes once doubling reaches it")
    p.add_argument("--first-probe", type=float, default=1.0, help="first probe time (s); probe times double from it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/compare"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="key=value",
                   help="config override applied to every preset")
    p.add_argument("--yardstick", default="paper_avpbc", help="config whose objective/student/inner "
                   "loop define H")
    p.add_argument("--yardstick-set", action="append", default=[], metavar="key=value")
    p.add_argument("--yardstick-students", type=int, default=4)
    p.add_argument("--yardstick-states", type=int, default=2560)
    p.add_argument("--yardstick-seed", type=int, default=12345)
    p.add_argument("--eval-students", type=int, default=10, help="0 skips the rollout evaluation")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--eval-max-steps", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    for key in ("budget_seconds", "probe_every", "first_probe"):
        if not getattr(args, key) > 0:
            raise ObdError(f"--{key.replace('_', '-')}: expected a number > 0, got {getattr(args, key)}")
    for key in ("yardstick_students", "yardstick_states", "eval_episodes", "threads"):
        if getattr(args, key) < 1:
            raise ObdError(f"--{key.replace('_', '-')}: expected an integer >= 1, got {getattr(args, key)}")
    torch.set_num_threads(args.threads)

    run_dirs: list[Path] = []
    costs: list[float] = []  # seconds per outer step of each run, for --clock steps
    if args.runs:
        run_dirs = [Path(r.strip()).expanduser() for r in args.runs.split(",") if r.strip()]
        if args.clock == "steps":
            try:
                costs = [float(c) for c in (args.sec_per_step or "").split(",") if c.strip()]
            except ValueError:
                costs = []
            if len(costs) != len(run_dirs) or not all(c > 0 for c in costs):
                raise ObdError(f"--sec-per-step: expected {len(run_dirs)} comma-separated numbers > 0 (one per run) "
                               f"with --clock steps, got {args.sec_per_step!r}")
        elif args.sec_per_step:
            raise ObdError("--sec-per-step: only with --clock steps")
        run_cfgs, run_inputs = [], []
        for r in run_dirs:
            if not (r / "config.yaml").is_file():
                raise ObdError(f"--runs: {r}: no config.yaml (not a python -m obd.distill run folder)")
            cfg, inputs = load_run_config(r / "config.yaml")
            run_cfgs.append(cfg)
            run_inputs.append(inputs)
        pairs = {(i.dataset, i.teacher) for i in run_inputs}
        if len(pairs) != 1:
            raise ObdError(f"--runs: the runs use different datasets/teachers {sorted(pairs)}; H would not compare")
        args.dataset, args.teacher = next(iter(pairs))
        args.seed = run_cfgs[0].seed
        names = [r.name for r in run_dirs]
        if len(set(names)) != len(names):
            names = [str(r) for r in run_dirs]
        presets = [(n, r / "config.yaml", []) for n, r in zip(names, run_dirs)]
        cfgs = dict(zip(names, run_cfgs))
    else:
        if not args.dataset or not args.teacher:
            raise ObdError("--dataset and --teacher are required (or --runs)")
        presets = parse_presets(args.presets)
        cfgs = {name: load_run_config(path, [*overrides, *args.overrides, f"seed={args.seed}"])[0]
                for name, path, overrides in presets}
    yard_cfg, _ = load_run_config(args.yardstick, [*args.yardstick_set, f"inner.students={args.yardstick_students}",
                                              f"outer.batch={args.yardstick_states}", "inner.truncate=0"])
    try:
        teacher_file = resolve_asset("teacher", args.teacher)
    except ObdError as exc:
        raise ObdError(f"--teacher: {exc}") from None
    # synthetic sets name the teacher by the spec given, as `obd distill` runs do
    teacher_label = str(args.teacher)
    for cfg in (*cfgs.values(), yard_cfg):
        cfg.validate()

    dataset = load_dataset_spec(str(args.dataset))
    teacher = load_teacher(str(teacher_file), resolve_device(yard_cfg.device))
    yardstick = Yardstick(Distiller(yard_cfg, dataset, teacher, progress=False, teacher_label=teacher_label),
                          args.yardstick_students, args.yardstick_states, args.yardstick_seed)

    runs = {}
    for i, ((name, _, _), run_dir) in enumerate(zip(presets, run_dirs or [None] * len(presets))):
        if run_dir is not None:
            runs[name] = read_run(run_dir, yardstick, args.clock, dataset, teacher, costs[i] if costs else None,
                                  teacher_label)
        else:
            runs[name] = run_preset(name, cfgs[name], dataset, teacher, yardstick, args.budget_seconds,
                                    args.probe_every, min(args.first_probe, args.probe_every), teacher_label)

    ref = presets[0][0]
    target = runs[ref]["probes"][-1][2]
    ref_time = first_reach(runs[ref]["probes"], target)[0]
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "settings": {"dataset": str(args.dataset), "teacher": teacher_label, "seed": args.seed,
                     "runs": [str(r) for r in run_dirs], "clock": args.clock if run_dirs else "wall",
                     "sec_per_step": costs or None,
                     "budget_seconds": None if run_dirs else args.budget_seconds, "probe_every": args.probe_every,
                     "first_probe": args.first_probe, "threads": args.threads, "overrides": args.overrides,
                     "device": str(yardstick.d.device), "yardstick": yardstick.d.objective.label,
                     "yardstick_config": config_to_dict(yard_cfg), "yardstick_students": args.yardstick_students,
                     "yardstick_states": args.yardstick_states, "yardstick_seed": args.yardstick_seed,
                     "eval_students": args.eval_students, "eval_episodes": args.eval_episodes},
        "reference": ref, "target_H": target, "reference_time_to_target": ref_time, "presets": {},
    }
    for name, path, overrides in presets:
        r = runs[name]
        reach = first_reach(r["probes"], target)
        i_reach = None if reach is None else r["probes"].index(reach)
        final_syn = r["snapshots"][-1]
        final_syn.save(args.out / name / "final.hdf5")
        final_eval = evaluate(final_syn, args)
        target_eval = None
        if i_reach is not None:
            r["snapshots"][i_reach].save(args.out / name / "at_target.hdf5")
            target_eval = final_eval if i_reach == len(r["probes"]) - 1 else evaluate(r["snapshots"][i_reach], args)
        result["presets"][name] = {
            "config_file": str(path), "overrides": overrides, "config": config_to_dict(cfgs[name]),
            "probes": r["probes"], "outer_steps": r["outer_steps"], "wall_seconds": r["wall_seconds"],
            "sec_per_step": r["sec_per_step"], "setup_seconds": r["setup_seconds"],
            "probe_seconds": r["probe_seconds"],
            "time_to_target": None if reach is None else reach[0],
            "steps_to_target": None if reach is None else reach[1],
            "speedup": speedup(ref_time, reach), "final_eval": final_eval, "target_eval": target_eval,
        }
    json_result = {**result, "presets": {n: {**v, "speedup": ("inf" if v["speedup"] is not None and
                                                              math.isinf(v["speedup"]) else v["speedup"])}
                                         for n, v in result["presets"].items()}}
    write_json_atomic(args.out / "compare.json", json_result)
    md = render_md(result)
    write_text_atomic(args.out / "compare.md", md)
    plot(result, args.out / "compare.png")
    print(md)
    return 0


main = cli_entry(main_)

if __name__ == "__main__":
    sys.exit(main())
