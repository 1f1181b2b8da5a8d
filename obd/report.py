"""``python -m obd.report RUN_DIR... [--out DIR]``: evaluate distillation runs and write a Markdown report.

For every run folder (``RUN/config.yaml``, ``RUN/checkpoints/step_XXXXXXX.hdf5``, ``RUN/synthetic.hdf5``)
each checkpoint's synthetic set is evaluated with ``obd.evaluate.evaluate_synthetic`` (K fresh students of
the run's own student and inner loop unless ``--arch``/``--hidden``/``--layers``/``--optimizer`` ask for a
variant, E episodes each; scores with mean episode length and forward progress beside them) by
:mod:`obd.evaluate.runs`, which caches the results in ``RUN/eval_cache.json`` so re-running only evaluates
new checkpoints. This module draws the plots and writes the tables. Outputs, written only after
every evaluation has finished and each file atomically: ``report.md`` (tables), ``curves.png`` (normalized
return vs outer step per run), ``methods.png`` (final checkpoints, methods side by side per task) and,
when the runs differ in synthetic-set size, ``size_sweep.png``. ``--video`` also records one episode
of a student trained on each run's final synthetic set as ``<run>.gif`` (skipped, with a message, when
MuJoCo has no OpenGL backend; :mod:`obd.evaluate.video`). With SDW runs among them, ``diversity.png`` and a
table show how the synthetic states cover the dataset next to Av-PBC's (:mod:`obd.report_diversity`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from obd.errors import ObdError, cli_entry
from obd.evaluate.runs import RunEval, evaluate_run, load_run
from obd.evaluate.video import record_video
from obd.io import save_figure, write_json_atomic, write_text_atomic


def plot_curves(runs: list[RunEval]) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for run in runs:
        x = np.array([c.outer_step for c in run.checkpoints])
        y = np.array([c.score for c in run.checkpoints])
        s = np.array([c.std for c in run.checkpoints])
        line, = ax.plot(x, y, marker="o", ms=3, label=f"{run.name} ({run.method}, {run.task}, N={run.n_syn})")
        ax.fill_between(x, y - s, y + s, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("outer step")
    ax.set_ylabel("normalized return")
    ax.set_title("Normalized return of fresh students vs outer step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def _final_by(runs: list[RunEval], last: int) -> dict[tuple[str, str, int], list[float]]:
    """Final scores (mean of the last ``last`` checkpoints) grouped by (task, method, n_syn); seeds pool."""
    groups: dict[tuple[str, str, int], list[float]] = {}
    for run in runs:
        groups.setdefault((run.task, run.method, run.n_syn), []).append(run.last_mean(last))
    return groups


def plot_methods(runs: list[RunEval], last: int) -> Any:
    import matplotlib.pyplot as plt

    groups = _final_by(runs, last)
    tasks = sorted({k[0] for k in groups})
    methods = sorted({(k[1], k[2]) for k in groups})
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(5, 1.8 * len(tasks) * max(1, len(methods) / 2)), 4))
    for j, (method, n) in enumerate(methods):
        xs, ys, es = [], [], []
        for i, task in enumerate(tasks):
            vals = groups.get((task, method, n))
            if vals:
                xs.append(i + (j - (len(methods) - 1) / 2) * width)
                ys.append(np.mean(vals))
                es.append(np.std(vals))
        label = method if len({m for m, _ in methods}) == len(methods) else f"{method} N={n}"
        ax.bar(xs, ys, width, yerr=es, capsize=3, label=label)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel(f"normalized return (mean of last {last} checkpoints)")
    ax.set_title("Methods side by side (final checkpoints; error bar: std over runs)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return fig


def plot_size_sweep(runs: list[RunEval], last: int) -> Any:
    import matplotlib.pyplot as plt

    groups = _final_by(runs, last)
    fig, ax = plt.subplots(figsize=(6, 4))
    for task, method in sorted({(k[0], k[1]) for k in groups}):
        sizes = sorted(n for (t, m, n) in groups if (t, m) == (task, method))
        ys = [np.mean(groups[(task, method, n)]) for n in sizes]
        ax.plot(sizes, ys, marker="o", label=f"{task} {method}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("synthetic-set size N_syn")
    ax.set_ylabel(f"normalized return (mean of last {last} checkpoints)")
    ax.set_title("Synthetic-size sweep")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def render_markdown(runs: list[RunEval], settings: dict[str, Any], last: int, images: list[str],
                    videos: dict[str, str]) -> str:
    lines = ["# OBD report", ""]
    opts = ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None)
    lines += [f"Each checkpoint: fresh students trained under the evaluation protocol ({opts}); normalized "
              "return = D4RL score `100 * (R - R_random) / (R_expert - R_random)` in Gymnasium `-v5` envs, "
              "mean +- std over students.", ""]
    lines += ["Ep. length: mean episode length (env steps); progress: mean forward progress (torso x "
              "displacement per episode), so a student collecting the alive bonus in place shows as such.", ""]
    lines += [f"| run | task | method | N_syn | checkpoints | final step | final score | ep. length | progress | "
              f"last-{last} mean | best | student |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        best = max(r.checkpoints, key=lambda c: c.score)
        lines.append(f"| {r.name} | {r.task} | {r.method} | {r.n_syn} | {len(r.checkpoints)} | "
                     f"{r.final.outer_step} | {r.final.score:.1f} +- {r.final.std:.1f} | {r.final.gait} | "
                     f"{r.last_mean(last):.1f} | {best.score:.1f} (step {best.outer_step}) | "
                     f"{_student_label(r.final.result)} |")
    lines.append("")
    for img in images:
        lines += [f"![{img}]({img})", ""]
    for r in runs:
        lines += [f"## {r.name}", "", f"Folder: `{r.path}`", ""]
        if r.name in videos:
            lines += [f"Rollout video: [{videos[r.name]}]({videos[r.name]})", ""]
        if "student" in r.final.result:
            lines += [f"Students: {r.final.result['student']['protocol']}.", ""]
        lines += ["| outer step | file | normalized score | return mean | ep. length | progress |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for c in r.checkpoints:
            lines.append(f"| {c.outer_step} | {c.path.name} | {c.score:.1f} +- {c.std:.1f} | "
                         f"{c.result['return_mean']:.1f} | {c.gait} |")
        lines.append("")
    return "\n".join(lines)


def _student_label(result: dict[str, Any]) -> str:
    """``mlp3x128, 50 sgd steps`` from an evaluation result's settings."""
    return f"{result.get('arch', '?')}, {result.get('steps', '?')} {result.get('optimizer', '?')} steps"


def build_parser() -> argparse.ArgumentParser:
    from obd.cli import add_common

    p = argparse.ArgumentParser(prog="obd report", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--students", type=int, default=10)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--max-steps", type=int, default=None, help="cap episode length (default: the task's)")
    own = "the run's own student and inner loop (3x256 / 100 SGD steps for sets that record none)"
    p.add_argument("--steps", type=int, default=None, help=f"student training steps (default: {own})")
    p.add_argument("--arch", default=None, help=f"student architecture, a cross-architecture score (default: {own})")
    p.add_argument("--hidden", type=int, default=None, help="student width (default: the run's own)")
    p.add_argument("--layers", type=int, default=None, help="student hidden layers / blocks (default: the run's own)")
    p.add_argument("--optimizer", default=None, help=f"student optimizer, a cross-optimizer score (default: {own})")
    p.add_argument("--lr", type=float, default=None, help="student learning rate (default: the run's own; "
                                                          "with --optimizer, that optimizer's)")
    p.add_argument("--last", type=int, default=5, help="checkpoints averaged for the final score (default 5)")
    p.add_argument("--video", action="store_true", help="record one rollout GIF per run (needs OpenGL + imageio)")
    add_common(p, out="dir", out_help="output folder (default: the run folder for one run, else obd_report)")
    return p


def _main(argv: list[str] | None = None) -> int:
    from obd.cli import apply_common, parse_args

    args = parse_args(build_parser(), argv)
    for name in ("students", "episodes", "last"):
        if getattr(args, name) < 1:
            raise ObdError(f"--{name} must be >= 1, got {getattr(args, name)}")
    from obd.evaluate import PAPER_STUDENT, resolve_student

    for name in ("steps", "hidden", "layers"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "steps" else 1):
            raise ObdError(f"--{name} must be >= {0 if name == 'steps' else 1}, got {value}")
    resolve_student(PAPER_STUDENT, args.arch, args.hidden, args.layers, args.steps, args.optimizer, args.lr)
    runs_in = [Path(r) for r in args.runs]
    loaded = [load_run(r) for r in runs_in]
    names = [r.resolve().name for r in runs_in]
    if len(set(names)) != len(names):
        raise ObdError(f"run folders must have distinct names, got {names}")
    out = Path(args.out) if args.out else (runs_in[0] if len(runs_in) == 1 else Path("obd_report"))
    args.out = out
    apply_common(args)
    settings = {"students": args.students, "episodes": args.episodes, "steps": args.steps, "arch": args.arch,
                "hidden": args.hidden, "layers": args.layers, "optimizer": args.optimizer, "lr": args.lr,
                "seed": args.seed, "max_steps": args.max_steps}
    eval_settings = dict(settings, device=None if args.device == "auto" else args.device)
    runs = [evaluate_run(r, eval_settings, progress=not args.no_progress) for r in loaded]

    import matplotlib

    matplotlib.use("Agg")
    figures = {"curves.png": plot_curves(runs), "methods.png": plot_methods(runs, args.last)}
    if len({r.n_syn for r in runs}) > 1:
        figures["size_sweep.png"] = plot_size_sweep(runs, args.last)
    videos: dict[str, str] = {}
    if args.video:
        for run in runs:
            name = f"{run.name}.gif"
            reason = record_video(run.final.path, run.task, run.final.result.get("student"), out / name, args.seed,
                                  args.max_steps)
            if reason is None:
                videos[run.name] = name
            else:
                print(f"video skipped for {run.name}: {reason}", file=sys.stderr)
    from obd.report_diversity import diversity_panel

    panel = diversity_panel(loaded, seed=args.seed)
    for name, fig in figures.items():
        save_figure(fig, out / name)
    if panel is not None:
        save_figure(panel.figure, out / panel.image)
    write_text_atomic(out / "report.md", render_markdown(runs, settings, args.last, list(figures), videos)
                      + (panel.markdown if panel is not None else ""))
    summary = [{"run": r.name, "task": r.task, "method": r.method, "n_syn": r.n_syn,
                "final_step": r.final.outer_step, "final_score": r.final.score,
                "final_episode_length": r.final.result.get("episode_length_mean"),
                "final_forward_progress": r.final.result.get("forward_progress_mean"),
                f"last_{args.last}_mean": r.last_mean(args.last), "student": r.final.result.get("student")}
               for r in runs]
    write_json_atomic(out / "report.json", summary)
    for s in summary:
        print(f"{s['run']}: {s['task']} {s['method']} N={s['n_syn']} step {s['final_step']}: "
              f"final {s['final_score']:.1f}, last-{args.last} mean {s[f'last_{args.last}_mean']:.1f}")
    print(f"wrote {out / 'report.md'}")
    return 0


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
