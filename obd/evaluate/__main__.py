"""``obd evaluate {synthetic,random,bc,teacher} ...`` (``python -m obd.evaluate``): evaluate under the OBD
protocol.

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


def _student_args(p: argparse.ArgumentParser, steps: int, optimizer: str, students: int) -> None:
    p.add_argument("--students", type=int, default=students, help=f"fresh students (default {students})")
    p.add_argument("--arch", default="mlp3", help="student architecture, one of obd.evaluate.ARCHITECTURES "
                                                  "(mlp2, mlp3, ..., residual; default mlp3)")
    p.add_argument("--optimizer", default=optimizer, help="one of obd.evaluate.OPTIMIZERS (sgd, sgd_momentum, "
                                                          f"adam, adamw; default {optimizer})")
    p.add_argument("--steps", type=int, default=steps, help=f"training steps (default {steps})")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the optimizer's)")


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
    _student_args(p, steps=100, optimizer="sgd", students=10)
    p.add_argument("--ensemble", action="store_true", help="one policy averaging the students' actions")
    _common(p)
    p = sub.add_parser("random", help="baseline: N random real pairs of a dataset, evaluated like a synthetic set")
    p.add_argument("dataset", help="D4RL file or id, or Minari id")
    p.add_argument("--size", type=int, default=256)
    _student_args(p, steps=100, optimizer="sgd", students=10)
    p.add_argument("--ensemble", action="store_true")
    _common(p)
    p = sub.add_parser("bc", help="baseline: minibatch BC on the whole dataset")
    p.add_argument("dataset", help="D4RL file or id, or Minari id")
    _student_args(p, steps=10_000, optimizer="adam", students=1)
    p.add_argument("--batch-size", type=int, default=256)
    _common(p)
    p = sub.add_parser("teacher", help="roll out a teacher checkpoint's deterministic action")
    p.add_argument("file", help="teacher file or shipped name (hopper-medium-v5)")
    _common(p)
    return parser


def format_table(result: dict[str, Any]) -> str:
    """Two-column text table of a result dict (settings, then scores)."""
    rows: list[tuple[str, str]] = []
    for key in ("kind", "task", "n_syn", "dataset_size", "students", "episodes", "arch", "optimizer", "lr",
                "steps", "batch_size", "ensemble", "seed", "max_steps"):
        if key in result and result[key] is not None:
            rows.append((key, str(result[key])))
    rows.append(("normalized score", f"{result['normalized_score_mean']:.1f} +- {result['normalized_score_std']:.1f}"))
    rows.append(("return mean", f"{result['return_mean']:.1f}"))
    rows.append(("episode length mean", f"{result['episode_length_mean']:.1f}"))
    if len(result.get("per_policy_normalized_score", [])) > 1:
        rows.append(("per student", " ".join(f"{s:.1f}" for s in result["per_policy_normalized_score"])))
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
    for name in ("episodes", "students", "steps", "size", "batch_size", "max_steps"):
        value = getattr(args, name, None)
        if value is not None and value < (0 if name == "steps" else 1):
            raise ObdError(f"--{name.replace('_', '-')} must be >= {0 if name == 'steps' else 1}, got {value}")
    apply_common(args)
    from obd.evaluate.baselines import evaluate_bc, evaluate_teacher, random_selection
    from obd.evaluate.protocol import check_arch, evaluate_synthetic
    from obd.evaluate.students import resolve_lr
    from obd.io import write_json_atomic

    train = {}
    if args.command != "teacher":
        check_arch(args.arch)
        resolve_lr(args.optimizer, args.lr)
        train = dict(students=args.students, steps=args.steps, lr=args.lr, optimizer=args.optimizer, arch=args.arch)
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
        dataset = _load_dataset(args.dataset)
        _check_task(args.task, dataset.task, args.dataset)
        syn = random_selection(dataset, size=args.size, seed=args.seed)
        result = evaluate_synthetic(syn, task=args.task, ensemble=args.ensemble, device=device,
                                    where=args.dataset, **train, **common)
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
