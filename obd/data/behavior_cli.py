"""``python -m obd.data train-behavior TASK``: train (or resume) the SAC behavior policies of a task."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from obd.data.sac import SACConfig, SACTrainer

DEFAULT_RUNS = Path(".obd_cache") / "behavior"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-behavior", help="train SAC behavior policies (medium/expert) for a task")
    p.add_argument("task")
    p.add_argument("--out", type=Path, default=None, help=f"run folder (default {DEFAULT_RUNS}/<task>)")
    p.add_argument("--policy-dir", type=Path, default=None, help="where behavior_{medium,expert}.pt go (default envs/<task>)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--threads", type=int, default=1)
    for name, field in SACConfig.__dataclass_fields__.items():
        if name in ("task", "medium_band"):
            continue
        p.add_argument("--" + name.replace("_", "-"), type=type(field.default), default=field.default)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    cfg = SACConfig(task=args.task, **{k: getattr(args, k) for k in SACConfig.__dataclass_fields__
                                         if k not in ("task", "medium_band")})
    out = args.out or DEFAULT_RUNS / args.task
    trainer = SACTrainer(cfg, out, policy_dir=args.policy_dir)
    if args.resume and (out / "checkpoint.pt").is_file():
        trainer.load_checkpoint()
        print(f"resumed {out} at step {trainer.step}", flush=True)
    result = trainer.train()
    print(f"done: medium={result['medium']} expert={result['expert']}")
    return 0
