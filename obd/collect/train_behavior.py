"""``obd collect train-behavior TASK``: train (or resume) the SAC behavior policies of a task.

Everything goes to the run folder (default ``.obd_cache/behavior/<task>`` in the working directory):
checkpoint, replay buffer and the ``behavior_{medium,expert}.pt`` policies (``--policy-dir`` elsewhere).
The shipped policies inside the installed package are never written.

    obd collect train-behavior hopper --total-steps 1000000
    obd collect train-behavior --resume .obd_cache/behavior/hopper --total-steps 2000000

A resumed run takes its task and settings from its run folder unless a flag changes them (a change is
recorded in the checkpoint's ``config_changes``); its networks, learning rate, seed and medium band are the
checkpoint's (``obd.run_folder.RESUME_MAY_CHANGE``). Without ``--resume`` the run folder must be new or empty.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from obd.collect.sac_config import SACConfig
from obd.errors import ObdError

DEFAULT_RUNS = Path(".obd_cache") / "behavior"
#: SACConfig fields that are not flags (the task is positional; the band is the medium definition)
NOT_FLAGS = ("task", "medium_band", "seed")
#: flags that may be 0 (the rest must be positive)
MAY_BE_ZERO = ("start_steps",)


def _default_out(args: argparse.Namespace) -> Path:
    from obd.envs import get_task

    if args.task is None:
        raise ObdError("--resume: name the run folder (--resume RUN_DIR) or the task")
    return DEFAULT_RUNS / get_task(args.task).name


def add_parser(sub: argparse._SubParsersAction) -> None:
    from obd.cli import add_common

    p = sub.add_parser("train-behavior", help="train SAC behavior policies (medium/expert) for a task",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", nargs="?", default=None, help="hopper, halfcheetah or walker2d (a resumed run's own "
                                                         "when left out)")
    add_common(p, out="dir", out_help=f"run folder (default {DEFAULT_RUNS}/<task>)", device=False,
               resume="continue the run in RUN_DIR (or, bare, in --out or the default run folder) from its "
                      "checkpoint, with its own task and settings unless flags change them")
    p.add_argument("--policy-dir", type=Path, default=None,
                   help="where behavior_{medium,expert}.pt go (default: the run folder)")
    for f in dataclasses.fields(SACConfig):
        if f.name not in NOT_FLAGS:
            p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=None,
                           help=f"(default {f.default}; a resumed run's own)")
    p.set_defaults(func=run, _default_out=_default_out)


def config_from_args(args: argparse.Namespace, saved: dict[str, Any] | None = None) -> SACConfig:
    """The :class:`SACConfig` of the flags, over ``saved`` (a resumed run's config) or the defaults; a
    non-positive count or rate is a one-line error naming the flag."""
    saved = saved or {}
    defaults = {f.name: saved.get(f.name, f.default) for f in dataclasses.fields(SACConfig) if f.name not in NOT_FLAGS}
    values = {name: default if getattr(args, name, None) is None else getattr(args, name)
              for name, default in defaults.items()}
    for name, value in values.items():
        low = 0 if name in MAY_BE_ZERO else 1e-300
        if not value >= low:
            raise ObdError(f"--{name.replace('_', '-')}: expected a number {'>= 0' if low == 0 else '> 0'}, "
                           f"got {value}")
    if values["start_steps"] >= values["total_steps"]:
        raise ObdError(f"--start-steps {values['start_steps']}: must be below --total-steps {values['total_steps']}")
    seed = args.seed if args.seed is not None else saved.get("seed", 0)
    return SACConfig(task=args.task, seed=seed, **values)


def _saved_config(out: Path) -> dict[str, Any]:
    """The config of the run in ``out`` ({} when there is none): its ``config.yaml``, or for a run written
    before runs had one, its checkpoint's."""
    from obd.run_folder import RunFolder

    folder = RunFolder(out, keep=False)
    if folder.config_path.is_file() or not folder.rolling_path.is_file():
        return folder.config()
    from obd.io import torch_load_weights

    saved = torch_load_weights(folder.rolling_path, "SAC checkpoint").get("config")
    return saved if isinstance(saved, dict) else {}


def run(args: argparse.Namespace) -> int:
    from obd.collect.sac import SACTrainer
    from obd.envs import get_task
    from obd.io import check_writable
    from obd.run_folder import RunFolder

    saved = _saved_config(args.out) if args.resume is not None else {}
    if args.task is None:
        if not saved.get("task"):
            raise ObdError("task: required (hopper, halfcheetah or walker2d), or --resume RUN_DIR of a run")
        args.task = saved["task"]
    task = get_task(args.task).name
    cfg = config_from_args(args, saved)
    out = args.out or DEFAULT_RUNS / task
    check_writable(out, is_dir=True)
    policy_dir = args.policy_dir or out
    check_writable(policy_dir, is_dir=True, flag="--policy-dir")
    resuming = RunFolder(out, keep=False).start(args.resume is not None)
    trainer = SACTrainer(cfg, out, policy_dir=policy_dir)
    if resuming:
        trainer.load_checkpoint()
        print(f"resumed {out} at step {trainer.step}", flush=True)
    result = trainer.train(progress=not args.no_progress)
    print(f"done: medium={result['medium']} expert={result['expert']} (policies in {policy_dir})")
    return 0
