"""``obd evaluate {synthetic,random,bc,teacher} ...`` (``python -m obd.evaluate``): evaluate under the OBD
protocol.

``synthetic`` trains the set's own student (the distillation's student and inner loop, from its
metadata; the paper's 3x256 / 100 SGD steps when it records none); ``--arch``, ``--hidden``, ``--layers``,
``--optimizer``, ``--lr`` and ``--steps`` ask for a variant (a cross-architecture / cross-optimizer score).
Prints a readable table, or with ``--json`` one JSON object on stdout; ``--out FILE`` also writes that
JSON atomically (checked writable before the work). ``teacher`` takes a file or a shipped name
(``hopper-medium-v5``). Bad input exits 2 with a one-line ``error: ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from obd.cli import add_common, apply_common, parse_args
from obd.errors import ObdError, cli_entry


def _student_args(p: argparse.ArgumentParser, students: int, default: str) -> None:
    p.add_argument("--students", type=int, default=students, help=f"fresh students (default {students})")
    # names spelled out, not read from obd.evaluate.ARCHITECTURES / OPTIMIZERS: --help must not import torch
    p.add_argument("--arch", default=None,
                   help=f"student architecture: mlp, mlp2, mlp3, mlp5, mlp6 or residual (default: {default})")
    p.add_argument("--hidden", type=int, default=None, help=f"student width (default: {default})")
    p.add_argument("--layers", type=int, default=None,
                   help=f"hidden layers (mlp) or residual blocks (residual) (default: {default})")
    p.add_argument("--optimizer", default=None, help=f"sgd, sgd_momentum, adam or adamw (default: {default})")
    p.add_argument("--steps", type=int, default=None, help=f"training steps (default: {default})")
    p.add_argument("--lr", type=float, default=None,
                   help=f"learning rate (default: {default}; with --optimizer, that optimizer's)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--episodes", type=int, default=10, help="episodes per policy (default 10)")
    p.add_argument("--task", default=None, help="task name (default: from the file, else from its dims); must "
                                                "match the file's task when that is recorded")
    p.add_argument("--max-steps", type=int, default=None, help="cap episode length (default: the task's)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    add_common(p, out="file", out_help="also write the JSON result to this file (atomically)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obd evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("synthetic", help="train fresh students on a synthetic set file and roll them out")
    p.add_argument("file")
    _student_args(p, students=10, default="the set's own student and inner loop, else 3x256 / 100 SGD steps")
    p.add_argument("--ensemble", action="store_true", help="one policy averaging the students' actions")
    _common(p)
    p = sub.add_parser("random", help="baseline: N random real pairs of a dataset, evaluated like a synthetic set")
    p.add_argument("dataset", help="D4RL file or id, or Minari id")
    p.add_argument("--size", type=int, default=256)
    _student_args(p, students=10, default="the paper's 3x256 / 100 SGD steps at lr 0.1, or --like's")
    p.add_argument("--like", default=None, metavar="FILE",
                   help="train the students like this synthetic set's own (its distillation's student and inner loop)")
    p.add_argument("--ensemble", action="store_true")
    _common(p)
    p = sub.add_parser("bc", help="baseline: minibatch BC on the whole dataset")
    p.add_argument("dataset", help="D4RL file or id, or Minari id")
    _student_args(p, students=1, default="3x256, 10,000 Adam steps at 1e-3")
    p.add_argument("--batch-size", type=int, default=None, help="minibatch size (default 256)")
    _common(p)
    p = sub.add_parser("teacher", help="roll out a teacher checkpoint's deterministic action")
    p.add_argument("file", help="teacher file or shipped name (hopper-medium-v5)")
    _common(p)
    return parser


def format_table(result: dict[str, Any]) -> str:
    """Two-column text table of a result dict (settings, then scores)."""
    rows: list[tuple[str, str]] = []
    for key in ("kind", "task", "n_syn", "dataset_size", "students", "episodes", "arch", "optimizer", "lr",
                "momentum", "steps", "batch_size", "ensemble", "seed", "max_steps"):
        if key in result and result[key] is not None:
            rows.append((key, str(result[key])))
    if "student" in result:
        rows.append(("student from", result["student"]["protocol"]))
    rows.append(("normalized score", f"{result['normalized_score_mean']:.1f} +- {result['normalized_score_std']:.1f}"))
    rows.append(("return mean", f"{result['return_mean']:.1f}"))
    rows.append(("episode length mean", f"{result['episode_length_mean']:.1f}"))
    rows.append(("forward progress mean", f"{result['forward_progress_mean']:.2f}"))
    if len(result.get("per_policy_normalized_score", [])) > 1:
        rows.append(("per student", " ".join(f"{s:.1f}" for s in result["per_policy_normalized_score"])))
        rows.append(("per student length", " ".join(f"{s:.0f}" for s in result["per_policy_episode_length"])))
        rows.append(("per student progress", " ".join(f"{s:.2f}" for s in result["per_policy_forward_progress"])))
    for key in ("train_seconds", "rollout_seconds"):
        if key in result:
            rows.append((key, f"{result[key]:.2f}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _load_dataset(spec: str):
    from obd.data import load_dataset

    return load_dataset(spec)


def _load_teacher(path: str, device: str | None):
    from obd.teachers import Teacher

    return Teacher.load(path, device=device)


def _check_task(flag: str | None, recorded: str | None, where: str) -> None:
    """``--task`` must name the task a file records (same dims would otherwise run silently on the wrong env)."""
    if flag is None or recorded is None:
        return
    from obd.envs import get_task

    if get_task(flag).name != get_task(recorded).name:
        raise ObdError(f"{where}: recorded for task '{recorded}', not --task {flag}")


def _main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    for name in ("episodes", "students", "steps", "size", "batch_size", "hidden", "layers", "max_steps"):
        value = getattr(args, name, None)
        if value is not None and value < (0 if name == "steps" else 1):
            raise ObdError(f"--{name.replace('_', '-')} must be >= {0 if name == 'steps' else 1}, got {value}")
    apply_common(args)
    from obd.evaluate.baselines import evaluate_bc, random_selection
    from obd.evaluate.protocol import evaluate_synthetic
    from obd.io import write_json_atomic
    from obd.teachers.evaluation import evaluate_teacher

    train = {}
    if args.command != "teacher":
        train = dict(students=args.students, steps=args.steps, lr=args.lr, optimizer=args.optimizer, arch=args.arch,
                     hidden=args.hidden, layers=args.layers)
    common = dict(episodes=args.episodes, seed=args.seed, max_steps=args.max_steps)
    device = None if args.device == "auto" else args.device
    progress = not (args.json or args.no_progress)
    if args.command == "synthetic":
        from obd.distill.synthetic import SyntheticDataset

        syn = SyntheticDataset.load(args.file)
        _check_task(args.task, syn.task, args.file)
        result = evaluate_synthetic(syn, task=args.task, ensemble=args.ensemble, device=device,
                                    where=args.file, **train, **common)
        result["file"] = args.file
    elif args.command == "random":
        student = None
        if args.like:
            from obd.distill.synthetic import SyntheticDataset
            from obd.evaluate.student_spec import distilled_student

            student = distilled_student(SyntheticDataset.load(args.like).metadata, args.like)
            if student is None:
                raise ObdError(f"--like {args.like}: the file records no distillation config (metadata 'config')")
        dataset = _load_dataset(args.dataset)
        _check_task(args.task, dataset.task, args.dataset)
        syn = random_selection(dataset, size=args.size, seed=args.seed)
        result = evaluate_synthetic(syn, task=args.task, ensemble=args.ensemble, device=device,
                                    where=args.dataset, student=student, **train, **common)
        result.update(kind="random", dataset=args.dataset)
    elif args.command == "bc":
        dataset = _load_dataset(args.dataset)
        _check_task(args.task, dataset.task, args.dataset)
        result = evaluate_bc(dataset, batch_size=args.batch_size, task=args.task, device=device,
                             progress=progress, **train, **common)
        result["dataset"] = args.dataset
    else:
        teacher = _load_teacher(args.file, device)
        _check_task(args.task, teacher.task, args.file)
        result = evaluate_teacher(teacher, **common)
        result["file"] = args.file
    if args.out:
        write_json_atomic(args.out, result)
    if args.json:
        json.dump(result, sys.stdout, default=str)
        sys.stdout.write("\n")
    else:
        print(format_table(result))
    return 0


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
