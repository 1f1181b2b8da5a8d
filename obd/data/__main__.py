"""``obd data {build,inspect,train-behavior,select-behavior} ...`` (``python -m obd.data``): the data layer's
command line."""

from __future__ import annotations

import argparse
import sys

from obd.cli import apply_common, parse_args
from obd.data import behavior_cli, build, inspect, select_behavior
from obd.errors import cli_entry


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obd data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build.add_parser(sub)
    inspect.add_parser(sub)
    behavior_cli.add_parser(sub)
    select_behavior.add_parser(sub)
    return parser


def _main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    apply_common(args)
    return args.func(args)


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
