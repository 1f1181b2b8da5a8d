"""``python -m obd.report RUN_DIR... [--out DIR]``: evaluate distillation runs and write a Markdown report.

For every run folder (``RUN/config.yaml``, ``RUN/checkpoints/step_XXXXXXX.hdf5``, ``RUN/synthetic.hdf5``)
each checkpoint's synthetic set is evaluated with ``obd.evaluate.evaluate_synthetic`` (K fresh students of
the run's own student and inner loop unless ``--arch``/``--hidden``/``--layers``/``--optimizer`` ask for a
variant, E episodes each; scores with mean episode length and forward progress beside them). Evaluations are cached in ``RUN/eval_cache.json``, keyed by the file's size and mtime
and the evaluation settings, so re-running only evaluates new checkpoints. Outputs, written only after
every evaluation has finished and each file atomically: ``report.md`` (tables), ``curves.png`` (normalized
return vs outer step per run), ``methods.png`` (final checkpoints, methods side by side per task) and,
when the runs differ in synthetic-set size, ``size_sweep.png``. ``--video`` also records one episode
of a student trained on each run's final synthetic set as ``<run>.gif`` (skipped, with a message, when
MuJoCo has no OpenGL backend). With SDW runs among them, ``diversity.png`` and a table show how the
synthetic states cover the dataset next to Av-PBC's (:mod:`obd.report_diversity`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm.auto import tqdm

from obd.errors import ObdError, cli_entry
from obd.io import atomic_path, write_json_atomic, write_text_atomic

CACHE_NAME = "eval_cache.json"
STEP_RE = re.compile(r"^step_(\d+)\.hdf5$")


@dataclass
class CheckpointEval:
    path: Path
    outer_step: int
    n_syn: int
    result: dict[str, Any]

    @property
    def score(self) -> float:
        return float(self.result["normalized_score_mean"])

    @property
    def std(self) -> float:
        return float(self.result["normalized_score_std"])

    @property
    def gait(self) -> str:
        """Mean episode length and forward progress, as table cells (``n/a`` in results cached before them)."""
        r = self.result
        length, progress = r.get("episode_length_mean"), r.get("forward_progress_mean")
        return (f"{length:.0f}" if length is not None else "n/a") + " | " + \
            (f"{progress:.2f}" if progress is not None else "n/a")


@dataclass
class RunEval:
    """One run folder's evaluated checkpoints, sorted by outer step."""

    path: Path
    name: str
    method: str
    task: str
    checkpoints: list[CheckpointEval] = field(default_factory=list)

    @property
    def n_syn(self) -> int:
        return self.checkpoints[-1].n_syn

    @property
    def final(self) -> CheckpointEval:
        return self.checkpoints[-1]

    def last_mean(self, last: int) -> float:
        """Mean normalized score over the last ``last`` checkpoints (the paper averages the last 5)."""
        return float(np.mean([c.score for c in self.checkpoints[-last:]]))


def read_config(run: Path) -> dict[str, Any]:
    path = run / "config.yaml"
    if not path.is_file():
        return {}
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ObdError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise ObdError(f"{path}: expected a mapping")
    return cfg


def _config_value(cfg: dict[str, Any], key: str) -> Any:
    """``cfg[key]``, or the first ``cfg[section][key]`` one level down."""
    if key in cfg:
        return cfg[key]
    for value in cfg.values():
        if isinstance(value, dict) and key in value:
            return value[key]
    return None


def find_checkpoints(run: Path) -> list[Path]:
    """``RUN/checkpoints/step_*.hdf5`` in step order, then ``RUN/synthetic.hdf5`` when present."""
    if not run.is_dir():
        raise ObdError(f"{run}: run folder not found")
    ckpt_dir = run / "checkpoints"
    files = sorted((p for p in ckpt_dir.glob("step_*.hdf5") if STEP_RE.match(p.name)),
                   key=lambda p: int(STEP_RE.match(p.name).group(1))) if ckpt_dir.is_dir() else []
    if (run / "synthetic.hdf5").is_file():
        files.append(run / "synthetic.hdf5")
    if not files:
        raise ObdError(f"{run}: no checkpoints (expected checkpoints/step_XXXXXXX.hdf5 or synthetic.hdf5)")
    return files


def _cache_key(path: Path, settings: dict[str, Any]) -> str:
    st = path.stat()
    opts = ",".join(f"{k}={settings[k]}" for k in sorted(settings))
    return f"{path.name}|{st.st_size}|{st.st_mtime_ns}|{opts}"


def _read_cache(run: Path) -> dict[str, Any]:
    path = run / CACHE_NAME
    if not path.is_file():
        return {}
    try:
        cache = json.loads(path.read_text())
    except json.JSONDecodeError:
        print(f"warning: {path} is not valid JSON; re-evaluating", file=sys.stderr)
        return {}
    return cache if isinstance(cache, dict) else {}


@dataclass
class RunFiles:
    """A run folder's checkpoints, loaded and checked, before anything is evaluated."""

    path: Path
    config: dict[str, Any]
    checkpoints: list[tuple[int, Path, Any]]  # (outer step, file, SyntheticDataset), sorted by step


def load_run(run: Path) -> RunFiles:
    """Load every checkpoint of ``run`` and check its metadata, so bad input fails before any evaluation."""
    from obd.distill.synthetic import SyntheticDataset
    from obd.evaluate.protocol import resolve_task

    run = Path(run)
    files = find_checkpoints(run)
    cfg = read_config(run)
    found: dict[int, tuple[int, Path, Any]] = {}
    for path in files:
        syn = SyntheticDataset.load(path)
        step = syn.metadata.get("outer_step")
        if step is None:
            if path.name != "synthetic.hdf5":
                raise ObdError(f"{path}: metadata lacks 'outer_step'")
            step = _config_value(cfg, "outer_steps")
            if step is None:
                raise ObdError(f"{path}: metadata lacks 'outer_step' and {run / 'config.yaml'} lacks 'outer_steps'")
        try:
            step = int(step)
        except (TypeError, ValueError):
            raise ObdError(f"{path}: metadata 'outer_step' should be an integer, got {step!r}") from None
        resolve_task(_config_value(cfg, "task"), syn.task, syn.obs_dim, syn.act_dim, str(path))
        # the final synthetic.hdf5 usually repeats the last checkpoint's step; the checkpoint wins
        found.setdefault(step, (step, path, syn))
    return RunFiles(run, cfg, [found[s] for s in sorted(found)])


def evaluate_run(run: Path | RunFiles, settings: dict[str, Any], progress: bool = True) -> RunEval:
    """Evaluate (or read from the cache) every checkpoint of ``run``.

    ``settings`` are ``evaluate_synthetic`` keyword arguments (students, episodes, seed, max_steps, ...).
    """
    from obd.evaluate import evaluate_synthetic

    files = run if isinstance(run, RunFiles) else load_run(Path(run))
    run = files.path
    cfg = files.config
    cache = _read_cache(run)
    evals: list[CheckpointEval] = []
    method = None
    for step, path, syn in tqdm(files.checkpoints, desc=f"evaluate {run.name}", disable=not progress,
                                leave=False):
        method = method or syn.metadata.get("method")
        key = _cache_key(path, settings)
        if key in cache:
            result = cache[key]
        else:
            result = evaluate_synthetic(syn, task=_config_value(cfg, "task"), where=str(path), **settings)
            cache[key] = result
            # the cache is rewritten after each checkpoint so an interrupted report keeps its progress
            write_json_atomic(run / CACHE_NAME, cache)
        evals.append(CheckpointEval(path, step, len(syn), result))
    method = method or _config_value(cfg, "method") or _config_value(cfg, "objective") or "unknown"
    return RunEval(run, run.resolve().name, str(method), str(evals[-1].result["task"]), evals)


def save_figure(fig: Any, path: Path) -> None:
    """Write ``fig`` as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


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


def record_video(run: RunEval, path: Path, seed: int, max_steps: int | None) -> str | None:
    """Record one episode of a student trained on the run's final synthetic set as a GIF.

    Returns None on success, else the reason the video was skipped (no OpenGL backend, no imageio).
    """
    try:
        import imageio.v2 as imageio
    except ImportError:
        return "imageio is not installed (pip install 'obd[video]')"
    import torch

    from obd.distill.synthetic import SyntheticDataset
    from obd.envs import make_env
    from obd.evaluate import PAPER_STUDENT, StudentSpec, distilled_student, train_students

    # EGL renders headless; a user's own MUJOCO_GL choice wins
    os.environ.setdefault("MUJOCO_GL", "egl")
    syn = SyntheticDataset.load(run.final.path)
    recorded = run.final.result.get("student")
    spec = StudentSpec.from_dict(recorded) if recorded else distilled_student(syn.metadata) or PAPER_STUDENT
    batch = train_students(spec, syn.states, syn.actions, 1, seed, "cpu")[0]
    try:
        env = make_env(run.task, render_mode="rgb_array")
        obs, _ = env.reset(seed=seed)
        frames = [env.render()]
    except Exception as exc:  # noqa: BLE001 - any renderer failure means "no OpenGL backend"
        return f"no OpenGL backend for MuJoCo rendering ({type(exc).__name__}: {exc}); set MUJOCO_GL=egl or osmesa"
    limit = max_steps or 1000
    for _ in range(limit):
        x = torch.as_tensor(np.asarray(syn.normalizer.normalize(obs), dtype=np.float32))[None]
        act = batch.act_all(x)[0, 0].numpy()
        obs, _, term, trunc, _ = env.step(act)
        frames.append(env.render())
        if term or trunc:
            break
    env.close()
    with atomic_path(path) as tmp:
        imageio.mimsave(tmp, frames, format="GIF", duration=1000 / 30)
    return None


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
            reason = record_video(run, out / name, args.seed, args.max_steps)
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
