"""``obd distill`` (``python -m obd.distill``): run or resume a distillation.

    obd distill --config fast_avpbc --dataset hopper-medium-v5 --teacher hopper-medium-v5 --out RUN
    obd distill --config paper_avpbc.yaml dataset=FILE teacher=FILE --out RUN logger=tensorboard
    obd distill --resume RUN [outer_steps=30000]

``--config`` is a YAML file or a shipped preset (``fast_*``, ``paper_*``, ``small_*`` x ``dbc``, ``pbc``,
``avpbc``, ``sdw``: the preset's ``objective``; ``sdw`` is Av-PBC weighted by state density, set up by the
``density.*`` keys); ``--teacher hopper-medium-v5`` (or ``teacher=hopper-medium-v5``) is the teacher shipped
for that dataset. ``--seed``, ``--device``, ``--dataset`` and ``--teacher`` may be written ``key=value``
too, not both ways at once. A resumed run may change only outer_steps, checkpoint_every, device and logger.
Ctrl-C stops after the current outer step, saves a checkpoint and prints the ``--resume`` command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from obd.cli import add_common, apply_common, lazy, parse_args, resolve_config, resume_dir
from obd.errors import ObdError, cli_entry


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obd distill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(parser, out="dir", out_help="run folder (default runs/distill/<config name>_seed<seed>)",
               config=lazy("obd.distill.config", "DistillConfig"), device_default=None, seed_default=None,
               inputs={"dataset": None, "teacher": None},
               resume="continue the run in RUN_DIR (or, bare, in --out) from its newest readable checkpoint")
    return parser


def resolve_run_config(args: argparse.Namespace):
    """(DistillConfig, RunInputs) from ``--config`` <- ``--seed``/``--device``/``--dataset``/``--teacher`` <-
    ``key=value`` overrides, validated (:func:`obd.cli.resolve_config`); ``--print-config`` prints both as
    YAML and exits 0."""
    import dataclasses

    from obd.distill.config import INPUT_KEYS, DistillConfig, load_run_config, run_config_dict

    def load(path, overrides, base):
        cfg, inputs = load_run_config(path, overrides, base)
        cfg = cfg.resolved()  # validated here, before any data is read, and not again by the run
        return (cfg, inputs), run_config_dict(cfg, inputs)

    keys = {f.name for f in dataclasses.fields(DistillConfig)} | set(INPUT_KEYS)
    return resolve_config(args, cls=DistillConfig, load=load, keys=keys)


def _main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    run_dir = resume_dir(args)
    if run_dir is not None:
        given = [flag for flag, value in (("--config", args.config), ("--seed", args.seed),
                                          ("--dataset", args.dataset), ("--teacher", args.teacher),
                                          ("--print-config", args.print_config)) if value]
        if given:
            raise ObdError(f"--resume takes the run's own config.yaml; do not pass {', '.join(given)} with it")
        if args.device is not None:
            args.overrides.insert(0, f"device={args.device}")
    apply_common(args)
    from obd.distill.run import resume, start

    if run_dir is not None:
        syn = resume(run_dir, args.overrides, progress=not args.no_progress)
        out = run_dir
    else:
        cfg, inputs = resolve_run_config(args)
        name = Path(args.config).stem if args.config else cfg.objective
        out = Path(args.out) if args.out else Path("runs") / "distill" / f"{name}_seed{cfg.seed}"
        if args.out is None:
            from obd.io import check_writable

            check_writable(out, is_dir=True)
        syn = start(cfg, out, inputs.dataset, inputs.teacher if cfg.needs_teacher() else None,
                    progress=not args.no_progress, inputs=inputs)
    selected = syn.metadata.get("selected")
    at = f"outer step {syn.metadata['outer_step']}" if selected is None else \
        f"outer step {selected['outer_step']} of {selected['last_step']}, selected at {selected['score']:.1f}"
    print(f"synthetic set ({len(syn)} pairs, {at}): {out / 'synthetic.hdf5'}",
          file=sys.stderr)
    return 0


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
