"""``obd distill`` (``python -m obd.distill``): run or resume a distillation.

    obd distill --config fast_avpbc dataset=hopper-medium-v5 teacher=hopper-medium-v5 --out RUN
    obd distill --config paper_avpbc.yaml dataset=FILE teacher=FILE --out RUN logger=tensorboard
    obd distill --resume RUN [outer_steps=30000]

``--config`` is a YAML file or a shipped preset (``fast_*``, ``paper_*``, ``small_*`` x ``dbc``, ``pbc``,
``avpbc``, ``sdw``: the preset's ``objective``; ``sdw`` is Av-PBC weighted by state density, set up by the
``density.*`` keys); ``teacher=hopper-medium-v5`` is the teacher shipped for that dataset. Ctrl-C stops after
the current outer step, saves a checkpoint and prints the ``--resume`` command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from obd.cli import add_common, apply_common, lazy, parse_args
from obd.errors import ObdError, cli_entry


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obd distill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(parser, out="dir", out_help="run folder (default runs/distill/<config name>_seed<seed>)",
               config=lazy("obd.distill.config", "DistillConfig"), device_default=None, seed_default=None)
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest readable "
                                                            "checkpoint")
    return parser


def resolve_run_config(args: argparse.Namespace):
    """(DistillConfig, RunInputs) from ``--config`` <- ``--seed``/``--device`` <- ``key=value`` overrides
    (``dataset=``/``teacher=`` among them), validated; ``--print-config`` prints both as YAML and exits 0."""
    from obd.distill.config import load_run_config, run_config_dict

    flags = [f"{k}={getattr(args, k)}" for k in ("seed", "device") if getattr(args, k, None) is not None]
    cfg, inputs = load_run_config(args.config, flags + list(args.overrides))
    cfg.validate()
    if args.print_config:
        import yaml

        sys.stdout.write(yaml.safe_dump(run_config_dict(cfg, inputs), sort_keys=False))
        raise SystemExit(0)
    return cfg, inputs


def _main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    if args.resume:
        if args.config or args.out or args.seed is not None or args.print_config:
            raise ObdError("--resume takes the run's own config.yaml; do not pass --config, --out, --seed or "
                           "--print-config with it")
        if args.device is not None:
            args.overrides.insert(0, f"device={args.device}")
        args.out = Path(args.resume)
    apply_common(args)
    from obd.distill.run import resume, start

    if args.resume:
        syn = resume(args.resume, args.overrides, progress=not args.no_progress)
        out = Path(args.resume)
    else:
        cfg, inputs = resolve_run_config(args)
        name = Path(args.config).stem if args.config else cfg.objective
        out = Path(args.out) if args.out else Path("runs") / "distill" / f"{name}_seed{cfg.seed}"
        if args.out is None:
            from obd.io import check_writable

            check_writable(out, is_dir=True)
        syn = start(cfg, out, inputs.dataset, inputs.teacher if cfg.needs_teacher() else None,
                    progress=not args.no_progress, inputs=inputs)
    print(f"synthetic set ({len(syn)} pairs, outer step {syn.metadata['outer_step']}): {out / 'synthetic.hdf5'}",
          file=sys.stderr)
    return 0


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
