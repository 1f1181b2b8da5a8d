"""``obd sweep`` (``python -m obd.sweep``): a grid of distillations and baselines as Ray tasks, resumable.

    obd sweep --datasets hopper-medium-v5,walker2d-medium-v5 --methods avpbc,sdw,random,bc,teacher \\
        --seeds 0,1,2 --config paper_avpbc eval.students=10 --out runs/sweep
    obd sweep ... --methods 'avpbc,avpbc[outer.action=sample]'   # a variant: its own row in the table
    obd sweep ... --address auto            # an existing Ray cluster (ray start --head)
    obd sweep merge runs/a runs/b --out runs/grid   # one table from sweeps run apart (obd.sweep.merge)

``--config`` is a YAML file or a shipped preset. Teachers: ``--teachers SPEC=FILE,...``, else the one
shipped for the dataset's task and level (``obd.assets``). ``key=value`` overrides go to every distillation's config,
``eval.*`` keys to the evaluation protocol (obd.sweep.grid.EvalConfig). Re-running the same command skips
finished trials and resumes interrupted ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from obd.cli import add_common, parse_args
from obd.errors import cli_entry

DEFAULT_METHODS = "random,dbc,pbc,avpbc,sdw,bc,teacher"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="obd sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="distillation config overrides (e.g. outer_steps=2000) and eval.* keys")
    p.add_argument("--datasets", required=True, metavar="SPEC[,SPEC]", help="load_dataset specs, comma-separated")
    p.add_argument("--methods", default=DEFAULT_METHODS,
                   help=f"comma-separated (default {DEFAULT_METHODS}); a distillation method with overrides of "
                        "its own is a variant row: 'avpbc[student.head=paper;q_clip=true]'")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated integers (default 0,1,2)")
    p.add_argument("--config", default=None, metavar="PRESET_OR_FILE",
                   help="distillation preset name or YAML file; an 'eval:' section sets the protocol")
    p.add_argument("--teachers", default=None, metavar="SPEC=FILE[,...]", help="teacher file per dataset spec")
    p.add_argument("--out", required=True, type=Path, help="sweep folder (trials/, results.jsonl, table.md)")
    p.add_argument("--address", default=None, help="Ray cluster: auto or ray://HOST:PORT (default: a local Ray)")
    p.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray (default: this machine's cores)")
    p.add_argument("--cpus-per-trial", type=int, default=1, help="CPUs (= torch threads) per trial (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=None,
                   help="GPU fraction per trial (default: the cluster's GPUs shared by the trials run at once)")
    p.add_argument("--verbose", action="store_true", help="show the workers' logs")
    # each trial's threads, seed and device come from --cpus-per-trial, --seeds and Ray's GPUs
    add_common(p, out=None, threads=False, device=False, seed=False, progress=False)
    return p


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["merge"]:
        from obd.sweep.merge import _main as merge_main

        return merge_main(argv[1:])
    args = parse_args(build_parser(), argv)
    from obd.io import check_writable
    from obd.sweep.driver import run_sweep
    from obd.sweep.grid import build_grid, load_settings, parse_list, parse_methods, parse_seeds, parse_teachers

    datasets = parse_list("--datasets", args.datasets)
    methods = parse_methods(args.methods)
    seeds = parse_seeds(args.seeds)
    settings = load_settings(args.config, args.overrides)
    teachers = parse_teachers(args.teachers, datasets)
    trials = build_grid(datasets, methods, seeds, settings, teachers, args.out)
    check_writable(args.out, is_dir=True)
    return run_sweep(trials, args.out, settings, ["obd", "sweep", *argv], address=args.address,
                     cpus=args.cpus, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                     verbose=args.verbose)


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
