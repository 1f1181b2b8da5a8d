"""``python -m obd.teacher``: train offline RL teachers, import CORL checkpoints, inspect teacher files.

    python -m obd.teacher train --dataset hopper-medium-v5 --algo td3bc --steps 50000 --out runs/teachers/x
    python -m obd.teacher train --dataset SPEC --algo iql --steps N --out DIR --resume beta=3.0
    python -m obd.teacher train --dataset hopper-medium-v5 --algo calql --out DIR --teacher-out envs/hopper/teacher_calql_medium.pt
    python -m obd.teacher import-corl CKPT --task hopper --out FILE --stats-from DATASET
    python -m obd.teacher info FILE
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from obd.config import load_config
from obd.data.dataset import Normalizer
from obd.errors import ObdError, cli_entry
from obd.teachers import ALGOS, RunConfig, Teacher, import_corl, train_teacher


def _load_dataset(spec: str):
    import obd.data

    if not hasattr(obd.data, "load_dataset"):
        raise ObdError(f"dataset '{spec}': this obd build has no dataset loader (obd.data.load_dataset)")
    return obd.data.load_dataset(spec)


def _floats(text: str, flag: str) -> np.ndarray:
    try:
        return np.asarray([float(x) for x in text.split(",") if x.strip() != ""], dtype=np.float32)
    except ValueError:
        raise ObdError(f"{flag}: expected comma-separated numbers, got {text!r}") from None


def cmd_train(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    algo_cls, cfg_cls = ALGOS[args.algo]
    config = args.config
    if config is None:
        default = Path(__file__).resolve().parents[1] / "configs" / f"teacher_{args.algo}.yaml"
        config = default if default.is_file() else None
    algo_cfg = load_config(cfg_cls, config, args.overrides)
    run = RunConfig(dataset=args.dataset, algo=args.algo, steps=args.steps, seed=args.seed,
                    eval_every=args.eval_every, eval_episodes=args.eval_episodes, eval_max_steps=args.eval_max_steps,
                    checkpoint_every=args.checkpoint_every, log_every=args.log_every, device=args.device)
    for name in ("steps", "eval_episodes"):
        if getattr(run, name) < 1:
            raise ObdError(f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(run, name)}")
    if args.resume and not (args.out / "checkpoint.pt").is_file():
        print(f"no checkpoint in {args.out}; starting a new run", file=sys.stderr)
    data = _load_dataset(args.dataset)
    teacher = train_teacher(algo_cls, algo_cfg, data, run, args.out, resume=args.resume, progress=not args.no_progress)
    written = [args.out / "teacher.pt"]
    if args.teacher_out is not None:
        teacher.save(args.teacher_out)
        written.append(args.teacher_out)
    score = teacher.metadata.get("normalized_score")
    print(f"wrote {' and '.join(map(str, written))}: {teacher}"
          + (f", normalized score {score:.1f} over {teacher.metadata['eval_episodes']} episodes" if score is not None else ""))
    return 0


def cmd_import_corl(args: argparse.Namespace) -> int:
    if args.stats_from is not None and (args.obs_mean or args.obs_std):
        raise ObdError("import-corl: give either --stats-from or --obs-mean/--obs-std, not both")
    if args.stats_from is not None:
        data = _load_dataset(args.stats_from)
        normalizer, source = data.normalizer, args.stats_from
    elif args.obs_mean and args.obs_std:
        normalizer = Normalizer(_floats(args.obs_mean, "--obs-mean"), _floats(args.obs_std, "--obs-std"))
        source = "--obs-mean/--obs-std"
    else:
        raise ObdError("import-corl: the state normalizer is required: --stats-from DATASET or --obs-mean and --obs-std")
    teacher = import_corl(args.ckpt, args.task, normalizer, {"normalizer_source": source}, device="cpu")
    teacher.save(args.out)
    print(f"wrote {args.out}: {teacher}")
    return 0


INFO_KEYS = ("algo", "training_steps", "dataset", "dataset_sha256", "normalized_score", "eval_episodes")


def cmd_info(args: argparse.Namespace) -> int:
    """The teacher's provenance first (null where a file written before a key existed lacks it), then
    its architecture and the full metadata."""
    teacher = Teacher.load(args.file, device="cpu")
    summary = {key: teacher.metadata.get(key) for key in INFO_KEYS}
    print(json.dumps({"task": teacher.task, **summary, "obs_dim": teacher.obs_dim, "act_dim": teacher.act_dim,
                      "stochastic": teacher.stochastic, "critic": teacher.critic is not None,
                      "arch": teacher.state()["arch"], "metadata": teacher.metadata}, indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m obd.teacher",
                                description="Train offline RL teachers, import CORL checkpoints, inspect teacher files.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a teacher with offline RL (TD3+BC, IQL or Cal-QL)")
    t.add_argument("--dataset", required=True, help="dataset path, D4RL id or Minari id")
    t.add_argument("--algo", choices=sorted(ALGOS), default="td3bc")
    t.add_argument("--steps", type=int, default=RunConfig.steps, help="gradient updates")
    t.add_argument("--out", type=Path, required=True, help="run folder")
    t.add_argument("--teacher-out", type=Path, default=None,
                   help="also write the final teacher file here (e.g. envs/hopper/teacher_td3bc_medium.pt)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--eval-every", type=int, default=RunConfig.eval_every, help="0 = no evaluation")
    t.add_argument("--eval-episodes", type=int, default=RunConfig.eval_episodes)
    t.add_argument("--eval-max-steps", type=int, default=0, help="episode length cap in evaluation (0 = task's)")
    t.add_argument("--checkpoint-every", type=int, default=RunConfig.checkpoint_every)
    t.add_argument("--log-every", type=int, default=RunConfig.log_every)
    t.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when present)")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    t.add_argument("--config", type=Path, default=None, help="algorithm config YAML (default configs/teacher_ALGO.yaml)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("overrides", nargs="*", help="algorithm config overrides key=value")
    t.set_defaults(func=cmd_train)

    c = sub.add_parser("import-corl", help="convert a CORL Cal-QL/CQL checkpoint into a teacher file")
    c.add_argument("ckpt", type=Path)
    c.add_argument("--task", required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--stats-from", default=None, help="dataset whose state mean/std CORL normalized with")
    c.add_argument("--obs-mean", default=None, help="comma-separated state mean")
    c.add_argument("--obs-std", default=None, help="comma-separated state std")
    c.set_defaults(func=cmd_import_corl)

    i = sub.add_parser("info", help="print a teacher file's algorithm, updates, dataset (id, sha256), score, "
                                    "architecture and metadata")
    i.add_argument("file", type=Path)
    i.set_defaults(func=cmd_info)
    return p


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
