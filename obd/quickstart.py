"""``obd quickstart --out DIR``: the whole pipeline on the built-in default, offline, on a CPU.

1. data: the default dataset (``hopper-medium-v5``, 100k transitions) is built from the shipped SAC
   behavior policy (``obd/tasks/hopper/behavior_medium.pt``) into a cache folder the first time;
2. teacher: the shipped TD3+BC teacher of that dataset (``--teacher hopper-medium-v5``);
3. distill: Av-PBC with the shipped CPU preset ``quickstart`` (``obd/configs/quickstart.yaml``) into
   ``DIR/distill``;
4. evaluate: the synthetic set and a random selection of the same size, both with the distillation's own
   student and inner loop, and the teacher; prints a three-row table (normalized score, return, mean
   episode length, mean forward progress) and writes ``DIR/report.json``, ``DIR/synthetic.hdf5`` and
   ``DIR/*.png``;
5. watch: ``DIR/rollout.gif``, one episode each of a student trained on the synthetic set, one trained on
   the random selection and the teacher, side by side, rendered offscreen by MuJoCo (EGL or OSMesa,
   whichever works; one line says so when neither does, and the quickstart finishes without it).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obd.cli import add_common, apply_common, lazy, parse_args
from obd.errors import ObdError, cli_entry

DEFAULT_CONFIG = "quickstart"           # a shipped preset (obd.assets)
DEFAULT_TEACHER = "hopper-medium-v5"    # the shipped teacher of that dataset
ROWS = ("synthetic", "random_selection", "teacher")
VIDEO = "rollout.gif"
#: what report.json keeps of each row's evaluation
ROW_KEYS = ("normalized_score_mean", "normalized_score_std", "return_mean", "episode_length_mean",
            "forward_progress_mean", "per_policy_normalized_score", "per_policy_episode_length",
            "per_policy_forward_progress")


@dataclass
class QuickstartSettings:
    """What the quickstart runs; the defaults are the README's command."""

    out: Path
    task: str = "hopper"
    level: str = "medium"
    transitions: int = 100_000
    dataset: str | None = None          # any load_dataset spec instead of the built default
    teacher: str | Path = DEFAULT_TEACHER
    config: str | Path = DEFAULT_CONFIG
    overrides: tuple[str, ...] = ()
    students: int = 10
    episodes: int = 10
    max_steps: int | None = None        # episode cap (tests); None = the task's 1000 steps
    seed: int = 0
    cache: Path | None = None
    progress: bool = True
    video: bool = True                  # DIR/rollout.gif


def cache_dir(settings: QuickstartSettings) -> Path:
    root = settings.cache or Path(os.environ.get("OBD_CACHE", Path.home() / ".cache" / "obd"))
    return Path(root).expanduser() / "datasets" / f"{settings.task}-{settings.level}-{settings.transitions}"


def default_dataset(settings: QuickstartSettings) -> Any:
    """Load the default dataset, building it from the shipped behavior policy on first use."""
    from obd.collect.build import BuildConfig, build
    from obd.data import load_d4rl

    folder = cache_dir(settings)
    # overwrite: a half-built Minari copy left by a killed run must not block the rebuild
    # one default dataset whatever --seed: the cache folder is keyed by task, level and size only, and
    # --seed varies the distillation and evaluation, not the data
    cfg = BuildConfig(settings.task, settings.level, settings.transitions, seed=0,
                      out_dir=str(folder), minari_dir=str(folder / "minari"), overwrite=True,
                      progress=settings.progress)
    if not cfg.d4rl_file.is_file():
        print(f"[1/4] building {settings.task}-{settings.level} ({settings.transitions} transitions) into {folder}",
              flush=True)
        build(cfg)
    else:
        print(f"[1/4] dataset {cfg.d4rl_file} (cached)", flush=True)
    return load_d4rl(cfg.d4rl_file)


def run_quickstart(settings: QuickstartSettings) -> dict[str, Any]:
    """Run the four stages and return the report (also written to ``out/report.json``)."""
    from obd.assets import resolve_asset
    from obd.data import dataset_task, load_dataset
    from obd.distill.config import RunInputs, load_run_config
    from obd.distill.run import start
    from obd.evaluate import distilled_student, evaluate_synthetic, evaluate_teacher, random_selection
    from obd.io import check_writable, write_json_atomic
    from obd.teachers import Teacher

    out = check_writable(settings.out, is_dir=True)
    t_start = time.perf_counter()
    teacher_file = resolve_asset("teacher", settings.teacher)
    # the seed goes after the preset (whose own ``seed: 0`` would otherwise win) and before key=value overrides;
    # a preset's entry for the task applies (the task of --dataset, else the built default's)
    task = dataset_task(settings.dataset) if settings.dataset else settings.task
    cfg, _ = load_run_config(settings.config, [f"seed={settings.seed}", *settings.overrides], task=task)
    cfg.validate()

    dataset = load_dataset(settings.dataset) if settings.dataset else default_dataset(settings)
    teacher = Teacher.load(teacher_file)
    # the shipped teacher was trained on the full build of its dataset, so the engine notes that the
    # quickstart's smaller build is other data; say here that this is by design
    made_for = "" if settings.dataset or str(settings.teacher) != DEFAULT_TEACHER else \
        f", trained on the full {DEFAULT_TEACHER} of the same behavior policy"
    print(f"[2/4] teacher {settings.teacher} ({teacher.metadata.get('algo', '?')}{made_for})", flush=True)

    chosen = f", keeping the set its rollouts score highest every {cfg.select.every} steps" if cfg.select.every else ""
    print(f"[3/4] distilling {cfg.n_syn} pairs with {cfg.objective} for {cfg.outer_steps} outer steps{chosen}",
          flush=True)
    t0 = time.perf_counter()
    syn = start(cfg, out / "distill", dataset, teacher, progress=settings.progress,
                inputs=RunInputs(dataset.source, str(teacher_file)))
    distill_seconds = time.perf_counter() - t0
    syn.save(out / "synthetic.hdf5")

    print(f"[4/4] evaluating: {settings.students} students x {settings.episodes} episodes per set", flush=True)
    # the random selection is trained like the synthetic set, so the two rows compare data, not students
    student = distilled_student(syn.metadata)
    common = dict(students=settings.students, episodes=settings.episodes, seed=settings.seed,
                  max_steps=settings.max_steps, student=student)
    random_set = random_selection(dataset, cfg.n_syn, settings.seed)
    results = {
        "synthetic": evaluate_synthetic(syn, **common),
        "random_selection": evaluate_synthetic(random_set, where="random selection", **common),
        "teacher": evaluate_teacher(teacher, episodes=settings.episodes, seed=settings.seed,
                                    max_steps=settings.max_steps),
    }
    report = {row: {k: results[row][k] for k in ROW_KEYS} for row in ROWS}
    report["settings"] = {"dataset": dataset.source, "transitions": len(dataset), "teacher": str(settings.teacher),
                          "config": str(settings.config), "overrides": list(settings.overrides),
                          "n_syn": cfg.n_syn, "outer_steps": cfg.outer_steps,
                          "selected_step": (syn.metadata.get("selected") or {}).get("outer_step"),
                          "students": settings.students,
                          "episodes": settings.episodes, "max_steps": settings.max_steps, "seed": settings.seed,
                          "student": results["synthetic"]["student"]}
    if settings.video:
        report["video"] = write_rollout_video(out / VIDEO, results["synthetic"]["task"], syn, random_set, teacher,
                                              student, settings)
    report["seconds"] = {"distill": distill_seconds, "total": time.perf_counter() - t_start}
    plots = write_plots(out, out / "distill" / "metrics.jsonl", report)
    report["plots"] = plots
    write_json_atomic(out / "report.json", report)
    print(format_table(report))
    return report


def write_rollout_video(path: Path, task: str, syn: Any, random_set: Any, teacher: Any, student: Any,
                        settings: QuickstartSettings) -> dict[str, Any]:
    """``rollout.gif``: one episode each (the same initial state) of a fresh student trained on the synthetic
    set, one trained on the random selection (both as the evaluation trains them) and the teacher, side by
    side; prints one line, the file or why there is none. Returns ``{"file": name or None, "reason": ...}``."""
    from obd.evaluate.video import Panel, choose_backend, record_side_by_side, student_act

    t0 = time.perf_counter()
    backend, reason = choose_backend(task)
    if backend is not None:
        panels = [Panel("synthetic set", student_act(syn, student, settings.seed)),
                  Panel("random selection", student_act(random_set, student, settings.seed)),
                  Panel(f"teacher ({teacher.metadata.get('algo', 'teacher')})",
                        lambda obs: teacher.act(obs[None])[0].detach().cpu().numpy())]
        reason = record_side_by_side(task, panels, path, seed=settings.seed, steps=settings.max_steps or 1000)
    if reason is not None:
        print(f"no rollout video: {reason}", flush=True)
        return {"file": None, "reason": reason}
    print(f"rollout video: {path} (synthetic set, random selection and teacher side by side; MuJoCo on {backend}, "
          f"{time.perf_counter() - t0:.0f} s)", flush=True)
    return {"file": path.name, "backend": backend, "seconds": time.perf_counter() - t0}


def format_table(report: dict[str, Any]) -> str:
    """The three rows: normalized score (mean +- std over students), return, mean episode length and mean
    forward progress (torso x displacement per episode, metres), which tell a moving policy from one
    collecting the alive bonus in place."""
    lines = [f"{'':<18}{'normalized score':>20}{'return':>10}{'ep. length':>12}{'progress':>10}", "-" * 70]
    names = {"synthetic": "synthetic set", "random_selection": "random selection", "teacher": "teacher"}
    for row in ROWS:
        r = report[row]
        lines.append(f"{names[row]:<18}{r['normalized_score_mean']:>12.1f} +- {r['normalized_score_std']:<5.1f}"
                     f"{r['return_mean']:>10.0f}{r['episode_length_mean']:>12.0f}{r['forward_progress_mean']:>10.2f}")
    s = report["settings"]
    st = s["student"]
    whose = "the distillation's own" if st["source"] == "distillation" else st["protocol"]
    steps = f"{s['outer_steps']} outer steps" if s.get("selected_step") is None else \
        f"the set of outer step {s['selected_step']} of {s['outer_steps']}, chosen by its rollouts"
    lines.append(f"({s['n_syn']} pairs, {steps}, {s['students']} students x "
                 f"{s['episodes']} episodes; students {st['name']}, {st['steps']} {st['optimizer']} steps at lr "
                 f"{st['lr']:g} ({whose}); progress: torso x displacement per episode; "
                 f"{report['seconds']['total']:.0f} s in all)")
    return "\n".join(lines)


def write_plots(out: Path, metrics_path: Path, report: dict[str, Any]) -> list[str]:
    """``outer_loss.png`` (outer objective against outer step) and ``scores.png`` (the three rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from obd.io import save_figure

    metrics = [json.loads(line) for line in metrics_path.read_text().splitlines()] if metrics_path.is_file() else []
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([m["step"] for m in metrics], [m["loss"] for m in metrics], lw=1)
    ax.set(xlabel="outer step", ylabel="outer objective H", yscale="log", title="distillation")
    save_figure(fig, out / "outer_loss.png")

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(["synthetic set", "random selection", "teacher"], [report[r]["normalized_score_mean"] for r in ROWS],
           yerr=[report[r]["normalized_score_std"] for r in ROWS], capsize=4,
           color=["tab:blue", "tab:gray", "tab:green"])
    ax.set_ylabel("D4RL normalized score")
    save_figure(fig, out / "scores.png")
    return ["outer_loss.png", "scores.png"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="obd quickstart", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transitions", type=int, default=100_000, help="size of the built default dataset")
    p.add_argument("--students", type=int, default=10)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--max-steps", type=int, default=None, help="cap episode length (quick checks)")
    p.add_argument("--cache", type=Path, default=None, help="dataset cache (default $OBD_CACHE or ~/.cache/obd)")
    p.add_argument("--no-video", action="store_true", help=f"do not render DIR/{VIDEO}")
    add_common(p, out="dir", out_help="output folder (required)",
               config=lazy("obd.distill.config", "DistillConfig"), preset=DEFAULT_CONFIG, device_default=None,
               inputs={"dataset": "use this dataset (D4RL/Minari id or file) instead of building the default "
                                  "(also dataset=SPEC)",
                       "teacher": f"teacher file or shipped name (default {DEFAULT_TEACHER}; also teacher=SPEC)"})
    return p


def _main(argv: list[str] | None = None) -> int:
    a = parse_args(build_parser(), argv)
    for name in ("transitions", "students", "episodes", "max_steps"):
        if getattr(a, name) is not None and getattr(a, name) < 1:
            raise ObdError(f"--{name.replace('_', '-')}: expected an integer >= 1, got {getattr(a, name)}")
    if a.device is not None:
        a.overrides.insert(0, f"device={a.device}")
    if a.print_config:
        from obd.cli import resolve_config

        resolve_config(a, base={"seed": a.seed})
    if a.out is None:
        raise ObdError("--out: required (the output folder)")
    apply_common(a)
    run_quickstart(QuickstartSettings(
        out=a.out, transitions=a.transitions, dataset=a.dataset, teacher=a.teacher or DEFAULT_TEACHER,
        config=a.config,
        overrides=tuple(a.overrides), students=a.students, episodes=a.episodes, max_steps=a.max_steps,
        seed=a.seed, cache=a.cache, progress=not a.no_progress, video=not a.no_video))
    return 0


main = cli_entry(_main)
