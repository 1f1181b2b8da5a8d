"""``obd teacher`` (``python -m obd.teachers``): train offline RL teachers, import CORL checkpoints, inspect
teacher files.

    obd teacher train --dataset hopper-medium-v5 --algo td3bc --steps 50000 --out runs/teachers/x
    obd teacher train --resume runs/teachers/x --steps 100000      # the run's own dataset, algo and config
    obd teacher train --dataset SPEC --algo td3bc --print-config     # the resolved algorithm config
    obd teacher train --dataset hopper-medium-v5 --algo calql --out DIR \
        --teacher-out obd/tasks/hopper/teacher_calql_medium.pt
    obd teacher import-corl CKPT --task hopper --out FILE --stats-from DATASET
    obd teacher info FILE                                            # or a shipped name: hopper-medium-v5
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from obd.cli import add_common, apply_common, parse_args, positive, resolve_config, resume_dir
from obd.errors import ObdError, cli_entry

#: flags that set obd.teachers.RunConfig fields; left out, RunConfig's defaults apply (read at run time, so
#: ``--help`` does not import torch)
RUN_FLAGS = ("steps", "eval_every", "eval_episodes", "eval_max_steps", "checkpoint_every", "log_every", "select")


def _load_dataset(spec: str):
    import obd.data

    if not hasattr(obd.data, "load_dataset"):
        raise ObdError(f"dataset '{spec}': this obd build has no dataset loader (obd.data.load_dataset)")
    return obd.data.load_dataset(spec)


def _floats(text: str, flag: str):
    import numpy as np

    try:
        return np.asarray([float(x) for x in text.split(",") if x.strip() != ""], dtype=np.float32)
    except ValueError:
        raise ObdError(f"{flag}: expected comma-separated numbers, got {text!r}") from None


def _algo(name: str):
    from obd.teachers import ALGOS

    if name not in ALGOS:
        raise ObdError(f"--algo: unknown algorithm '{name}'; expected one of {sorted(ALGOS)}")
    return ALGOS[name]


def cmd_train(args: argparse.Namespace) -> int:
    # a resumed run keeps what its config.yaml says unless a flag or key=value changes it
    saved = {}
    if args.resume is not None and args.out is not None:
        from obd.run_folder import RunFolder

        saved = RunFolder(args.out, keep=False).config()
    saved_run = saved.get("run") if isinstance(saved.get("run"), dict) else {}
    args.algo = args.algo or saved_run.get("algo") or "td3bc"
    args.dataset = args.dataset or saved_run.get("dataset")
    if not args.print_config:
        if not args.dataset:
            raise ObdError("--dataset: required (or dataset=SPEC; a resumed run takes its own)")
        if args.out is None:
            raise ObdError("--out: required (the run folder)")
    algo_cls, cfg_cls = _algo(args.algo)
    base = saved.get(args.algo) if args.config is None and saved_run.get("algo") == args.algo else None
    if args.config is None and base is None:
        from obd.assets import configs_dir

        default = configs_dir() / f"teacher_{args.algo}.yaml"
        args.config = str(default) if default.is_file() else None
    algo_cfg = resolve_config(args, cls=cfg_cls, base=base)
    from obd.teachers import RunConfig, train_teacher

    values = {k: saved_run[k] for k in (*RUN_FLAGS, "seed", "device") if saved_run.get(k) is not None}
    values.update({k: getattr(args, k) for k in (*RUN_FLAGS, "seed", "device") if getattr(args, k) is not None})
    run = RunConfig(dataset=args.dataset, algo=args.algo, **values)
    data = _load_dataset(args.dataset)
    teacher = train_teacher(algo_cls, algo_cfg, data, run, args.out, resume=args.resume is not None,
                            progress=not args.no_progress)
    written = [args.out / "teacher.pt"]
    if args.teacher_out is not None:
        teacher.save(args.teacher_out)
        written.append(args.teacher_out)
    score = teacher.metadata.get("normalized_score")
    print(f"wrote {' and '.join(map(str, written))}: {teacher}"
          + (f", normalized score {score:.1f} over {teacher.metadata['eval_episodes']} episodes"
             if score is not None else ""))
    return 0


def cmd_import_corl(args: argparse.Namespace) -> int:
    if args.stats_from is not None and (args.obs_mean or args.obs_std):
        raise ObdError("import-corl: give either --stats-from or --obs-mean/--obs-std, not both")
    from obd.data.dataset import Normalizer
    from obd.teachers import import_corl

    if args.stats_from is not None:
        data = _load_dataset(args.stats_from)
        normalizer, source = data.normalizer, args.stats_from
    elif args.obs_mean and args.obs_std:
        normalizer = Normalizer.checked(_floats(args.obs_mean, "--obs-mean"), _floats(args.obs_std, "--obs-std"),
                                        "--obs-mean/--obs-std")
        source = "--obs-mean/--obs-std"
    else:
        raise ObdError("import-corl: the state normalizer is required: --stats-from DATASET or --obs-mean and "
                       "--obs-std")
    teacher = import_corl(args.ckpt, args.task, normalizer, {"normalizer_source": source}, device="cpu")
    teacher.save(args.out)
    print(f"wrote {args.out}: {teacher}")
    return 0


INFO_KEYS = ("algo", "training_steps", "dataset", "dataset_sha256", "normalized_score", "eval_episodes")


def cmd_info(args: argparse.Namespace) -> int:
    """The teacher's provenance first (null where a file written before a key existed lacks it), then
    its architecture and the full metadata."""
    from obd.teachers import Teacher

    teacher = Teacher.load(args.file, device="cpu")
    summary = {key: teacher.metadata.get(key) for key in INFO_KEYS}
    print(json.dumps({"task": teacher.task, **summary, "obs_dim": teacher.obs_dim, "act_dim": teacher.act_dim,
                      "stochastic": teacher.stochastic, "critic": teacher.critic is not None,
                      "arch": teacher.state()["arch"], "metadata": teacher.metadata}, indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="obd teacher", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a teacher with offline RL (TD3+BC, IQL, Cal-QL)",
                       epilog="The algorithm's config keys and defaults: obd teacher train --algo ALGO --dataset X "
                              "--out Y --print-config (shipped presets teacher_td3bc, teacher_iql, teacher_calql).")
    t.add_argument("--algo", default=None, help="an algorithm of obd.teachers.ALGOS: td3bc (default), iql, calql")
    t.add_argument("--steps", type=int, default=None, help="gradient updates (default: RunConfig's, CORL's 1M)")
    t.add_argument("--eval-every", type=int, default=None, help="updates between evaluations; 0 = none")
    t.add_argument("--eval-episodes", type=int, default=None, help="episodes per evaluation")
    t.add_argument("--eval-max-steps", type=int, default=None, help="episode length cap in evaluation (0 = task's)")
    t.add_argument("--checkpoint-every", type=int, default=None, help="updates between checkpoints")
    t.add_argument("--log-every", type=int, default=None, help="updates averaged per metrics.jsonl line")
    t.add_argument("--select", choices=("final", "best"), default=None,
                   help="the teacher: the final policy (default) or the best-scoring one of the periodic evaluations, "
                        "its score re-measured on fresh episodes")
    t.add_argument("--teacher-out", type=Path, default=None,
                   help="also write the final teacher file here (e.g. obd/tasks/hopper/teacher_td3bc_medium.pt)")
    # the algorithm's config class depends on --algo, so its keys are listed by --print-config, not --help
    add_common(t, out="dir", out_help="run folder (required)", seed_default=None, device_default=None,
               inputs={"dataset": "dataset path, D4RL id or Minari id (also dataset=SPEC)"},
               resume="continue the run in RUN_DIR (or, bare, in --out) from its checkpoint.pt, with its own dataset, "
                      "algorithm and config unless given (steps and the evaluation settings may change)")
    t.add_argument("--config", default=None, metavar="PRESET_OR_FILE",
                   help="algorithm config: YAML file or shipped preset (default teacher_ALGO)")
    t.add_argument("--print-config", action="store_true", help="print the resolved algorithm config and exit")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="algorithm config overrides")
    t.set_defaults(func=cmd_train)

    c = sub.add_parser("import-corl", help="convert a CORL Cal-QL/CQL checkpoint into a teacher file")
    c.add_argument("ckpt", type=Path)
    c.add_argument("--task", required=True)
    c.add_argument("--stats-from", default=None, help="dataset whose state mean/std CORL normalized with")
    c.add_argument("--obs-mean", default=None, help="comma-separated state mean")
    c.add_argument("--obs-std", default=None, help="comma-separated state std")
    add_common(c, out="file", out_required=True, out_help="teacher file to write", seed=False, progress=False,
               device=False)
    c.set_defaults(func=cmd_import_corl)

    i = sub.add_parser("info", help="print a teacher file's algorithm, updates, dataset (id, sha256), final score, "
                                    "architecture and metadata")
    i.add_argument("file", help="teacher file or shipped name (hopper-medium-v5)")
    add_common(i, out=None, seed=False, progress=False, device=False)
    i.set_defaults(func=cmd_info)
    return p


def _main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    resume_dir(args)
    positive(args, "steps", "eval_episodes")
    positive(args, "eval_every", "eval_max_steps", "checkpoint_every", "log_every", minimum=0)
    apply_common(args)
    return args.func(args)


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
