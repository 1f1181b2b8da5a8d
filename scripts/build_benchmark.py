"""Rebuild obd's D4RL-level benchmark, one seeded and resumable stage at a time.

    python scripts/build_benchmark.py --tasks hopper --stages behavior,select,data,bc
    python scripts/build_benchmark.py --tasks hopper --stages teachers --algos td3bc --teacher-steps 300000
    python scripts/build_benchmark.py --tasks hopper,halfcheetah,walker2d --dry-run     # print the commands

Stages (each one obd command per task or dataset). Like make, a command is skipped when its output is newer
than everything it is made from (``--force`` reruns it):

* ``behavior``: the task's SAC run (``obd collect train-behavior``, seed 0, the recipe's ``update_every``),
  resumed from its checkpoint, to the recipe's ``total_steps``; every evaluation leaves a snapshot.
* ``select``: ``obd collect select-behavior`` picks the earliest snapshot whose stochastic rollouts score the
  task's ``medium_target`` (+- 5) and writes it as the shipped ``behavior_medium.pt``.
* ``data``: ``obd collect build`` of ``<task>-medium`` (1M), ``-medium-replay`` (the SAC buffer up to that
  snapshot) and ``-medium-expert`` (2M: medium, then the shipped expert policy).
* ``bc``: whole-data BC (``obd evaluate bc``, 3 students x 10 episodes) of each dataset, JSON into
  ``docs/benchmark/bc/`` (``--results``).
* ``teachers``: ``obd teacher train`` on each full dataset (evaluated every 25k updates on 10 episodes,
  ``--select best``), resumable, the teacher written as the shipped ``teacher_<algo>_<level>.pt``.

Every command runs with one torch thread (``--threads 1``); run one invocation per free core.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("behavior", "select", "data", "bc", "teachers")
LEVELS = ("medium", "medium-replay", "medium-expert")


@dataclass(frozen=True)
class Recipe:
    """How a task's SAC run is trained: env steps per gradient update, and how far it runs."""

    update_every: int
    total_steps: int


RECIPES = {
    "hopper": Recipe(update_every=2, total_steps=300_000),
    "halfcheetah": Recipe(update_every=2, total_steps=150_000),
    "walker2d": Recipe(update_every=1, total_steps=300_000),
}


def _task_dir(task: str) -> Path:
    from obd.envs import get_task

    return get_task(task).directory


Command = tuple[str, list[str], "Path | None", Callable[[], list[Path]]]


def commands(task: str, stages: list[str], algos: list[str], teacher_steps: int, cache: Path,
             results: Path, teacher_runs: Path | None = None) -> list[Command]:
    """``(stage, argv, output, inputs)`` for every command of ``stages`` on ``task``. ``inputs()`` lists what the
    output is made from, looked up when the command is reached (earlier stages may have just made it);
    ``output`` None: always run (the SAC stage, which resumes by itself). Teacher runs go to
    ``teacher_runs`` (default ``cache/teachers``)."""
    obd = [sys.executable, "-m", "obd"]
    teacher_runs = teacher_runs or cache / "teachers"
    run = cache / "behavior" / task
    recipe = RECIPES[task]
    shipped = _task_dir(task)
    medium = shipped / "behavior_medium.pt"
    out: list[Command] = []
    if "behavior" in stages:
        out.append(("behavior", [*obd, "collect", "train-behavior", task, "--out", str(run), "--resume",
                                 "--update-every", str(recipe.update_every),
                                 "--total-steps", str(recipe.total_steps), "--threads", "1", "--no-progress"],
                    None, list))
    if "select" in stages:
        out.append(("select", [*obd, "collect", "select-behavior", task, "--run", str(run),
                               "--out", str(medium), "--threads", "1"], medium,
                    lambda: sorted((run / "snapshots").glob("step_*.pt"))[-1:] or [run / "snapshots"]))
    for level in LEVELS:
        dataset = f"{task}-{level}-v5"
        if "data" in stages:
            argv = [*obd, "collect", "build", f"{task}-{level}", "--overwrite", "--threads", "1", "--no-progress"]
            if level == "medium-replay":
                argv += ["--behavior-run", str(run)]
            out.append(("data", argv, _d4rl_file(task, level), lambda: [medium]))
        if "bc" in stages:
            json_out = results / "bc" / f"{dataset}.json"
            out.append(("bc", [*obd, "evaluate", "bc", dataset, "--students", "3", "--episodes", "10",
                               "--threads", "1", "--no-progress", "--json", "--out", str(json_out)],
                        json_out, lambda level=level: [_d4rl_file(task, level)]))
        if "teachers" in stages:
            for algo in algos:
                teacher = shipped / f"teacher_{algo}_{level.replace('-', '_')}.pt"
                out.append(("teachers", [*obd, "teacher", "train", "--dataset", dataset, "--algo", algo,
                                         "--steps", str(teacher_steps), "--eval-every", "25000",
                                         "--eval-episodes", "10", "--checkpoint-every", "10000",
                                         "--select", "best",
                                         "--out", str(teacher_runs / f"{dataset}-{algo}"),
                                         "--teacher-out", str(teacher), "--resume", "--threads", "1",
                                         "--no-progress"],
                            teacher, lambda level=level: [_d4rl_file(task, level)]))
    return sorted(out, key=lambda c: STAGES.index(c[0]))  # stage-major: every dataset before any teacher


def up_to_date(output: Path | None, inputs: list[Path]) -> bool:
    """True when ``output`` exists and every input exists and is no newer than it."""
    if output is None or not output.exists() or not all(i.exists() for i in inputs):
        return False
    return all(output.stat().st_mtime >= i.stat().st_mtime for i in inputs)


def _d4rl_file(task: str, level: str) -> Path:
    from obd.data.d4rl import d4rl_dataset_dir

    return d4rl_dataset_dir() / f"{task}_{level.replace('-', '_')}-v5.hdf5"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="hopper,halfcheetah,walker2d")
    p.add_argument("--stages", default=",".join(STAGES[:4]), help=f"comma-separated, of {', '.join(STAGES)}")
    p.add_argument("--algos", default="td3bc", help="teacher algorithms (td3bc, iql, calql)")
    p.add_argument("--teacher-steps", type=int, default=1_000_000)
    p.add_argument("--cache", type=Path, default=Path(".obd_cache"), help="SAC and teacher run folders")
    p.add_argument("--teacher-runs", type=Path, default=None,
                   help="teacher run folders (default CACHE/teachers; a run that continues in a later session "
                        "keeps its rolling checkpoint in docs/benchmark/teacher_runs)")
    p.add_argument("--results", type=Path, default=REPO / "docs" / "benchmark", help="where measurements go")
    p.add_argument("--force", action="store_true", help="rerun stages whose outputs exist")
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = p.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    stages = [s for s in args.stages.split(",") if s]
    for name, given, known in (("--tasks", tasks, RECIPES), ("--stages", stages, STAGES)):
        bad = [x for x in given if x not in known]
        if bad:
            print(f"{name}: unknown {bad}; expected some of {list(known)}", file=sys.stderr)
            return 2
    for task in tasks:
        for stage, cmd, output, inputs in commands(task, stages, args.algos.split(","), args.teacher_steps, args.cache,
                                                   args.results, args.teacher_runs):
            if not args.force and up_to_date(output, inputs()):
                print(f"[{stage}] skip (up to date: {output})", flush=True)
                continue
            print(f"[{stage}] {shlex.join(cmd)}", flush=True)
            if not args.dry_run and subprocess.call(cmd, cwd=REPO) != 0:
                print(f"[{stage}] failed: {shlex.join(cmd)}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
