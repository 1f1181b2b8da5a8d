"""``obd collect {build,train-behavior,select-behavior} ...`` (``python -m obd.collect``): data generation
online, in the environments: SAC behavior policies, the choice of a medium policy among a SAC run's
snapshots, and D4RL-style datasets collected with them."""

from __future__ import annotations

import argparse
import sys

from obd.cli import subcommand_main


def build_parser() -> argparse.ArgumentParser:
    from obd.collect import build, select_behavior, train_behavior

    parser = argparse.ArgumentParser(prog="obd collect", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build.add_parser(sub)
    train_behavior.add_parser(sub)
    select_behavior.add_parser(sub)
    return parser


main = subcommand_main(build_parser)

if __name__ == "__main__":
    sys.exit(main())
