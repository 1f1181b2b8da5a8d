"""``python -m obd.distill``: run or resume a distillation.

    python -m obd.distill --config configs/paper_avpbc.yaml dataset=hopper-medium-v2 teacher=T.pt --out RUN
    python -m obd.distill --resume RUN [outer_steps=30000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from obd.errors import ObdError, cli_entry


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m obd.distill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. inner.steps=50")
    parser.add_argument("--config", help="YAML config (configs/*.yaml); defaults are the paper's Av-PBC settings")
    parser.add_argument("--out", help="run folder (default runs/distill/<config name>_seed<seed>)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's); on a machine shared with other jobs 1 is "
                             "often fastest. Keep it fixed across --resume for a bit-identical run")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            raise ObdError(f"--threads: expected an integer >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)

    from obd.config import load_config
    from obd.distill.engine import DistillConfig
    from obd.distill.run import resume, start

    if args.resume:
        if args.config or args.out:
            raise ObdError("--resume takes the run's own config.yaml; do not pass --config or --out with it")
        syn = resume(args.resume, args.overrides, progress=not args.no_progress)
        out = Path(args.resume)
    else:
        cfg = load_config(DistillConfig, args.config, args.overrides)
        cfg.validate()
        name = Path(args.config).stem if args.config else cfg.objective
        out = Path(args.out) if args.out else Path("runs") / "distill" / f"{name}_seed{cfg.seed}"
        syn = start(cfg, out, progress=not args.no_progress)
    print(f"synthetic set ({len(syn)} pairs, outer step {syn.metadata['outer_step']}): {out / 'synthetic.hdf5'}",
          file=sys.stderr)
    return 0


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
