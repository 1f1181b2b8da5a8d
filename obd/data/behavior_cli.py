"""``obd data train-behavior TASK``: train (or resume) the SAC behavior policies of a task.

Everything goes to the run folder (default ``.obd_cache/behavior/<task>`` in the working directory):
checkpoint, replay buffer and the ``behavior_{medium,expert}.pt`` policies (``--policy-dir`` elsewhere).
The shipped policies inside the installed package are never written.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from obd.data.sac_config import SACConfig
from obd.errors import ObdError

DEFAULT_RUNS = Path(".obd_cache") / "behavior"
#: SACConfig fields that are not flags (the task is positional; the band is the medium definition)
NOT_FLAGS = ("task", "medium_band", "seed")
#: flags that may be 0 (the rest must be positive)
MAY_BE_ZERO = ("start_steps",)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from obd.cli import add_common

    p = sub.add_parser("train-behavior", help="train SAC behavior policies (medium/expert) for a task",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task")
    add_common(p, out="dir", out_help=f"run folder (default {DEFAULT_RUNS}/<task>)", device=False)
    p.add_argument("--policy-dir", type=Path, default=None,
                   help="where behavior_{medium,expert}.pt go (default: the run folder)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    for f in dataclasses.fields(SACConfig):
        if f.name not in NOT_FLAGS:
            p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                           help=f"(default {f.default})")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> SACConfig:
    """The :class:`SACConfig` of the flags; a non-positive count or rate is a one-line error naming the flag."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(SACConfig) if f.name not in NOT_FLAGS}
    for name, value in values.items():
        low = 0 if name in MAY_BE_ZERO else 1e-300
        if not value >= low:
            raise ObdError(f"--{name.replace('_', '-')}: expected a number {'>= 0' if low == 0 else '> 0'}, "
                           f"got {value}")
    if values["start_steps"] >= values["total_steps"]:
        raise ObdError(f"--start-steps {values['start_steps']}: must be below --total-steps {values['total_steps']}")
    return SACConfig(task=args.task, seed=args.seed, **values)


def run(args: argparse.Namespace) -> int:
    from obd.data.sac import SACTrainer
    from obd.envs import get_task

    task = get_task(args.task).name
    cfg = config_from_args(args)
    out = args.out or DEFAULT_RUNS / task
    from obd.io import check_writable

    check_writable(out, is_dir=True)
    policy_dir = args.policy_dir or out
    check_writable(policy_dir, is_dir=True, flag="--policy-dir")
    trainer = SACTrainer(cfg, out, policy_dir=policy_dir)
    if args.resume and (out / "checkpoint.pt").is_file():
        trainer.load_checkpoint()
        print(f"resumed {out} at step {trainer.step}", flush=True)
    result = trainer.train(progress=not args.no_progress)
    print(f"done: medium={result['medium']} expert={result['expert']} (policies in {policy_dir})")
    return 0
