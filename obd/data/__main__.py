"""``python -m obd.data {build,inspect,train-behavior,select-behavior} ...``: the data layer's command line."""

from __future__ import annotations

import argparse
import sys

from obd.data import behavior_cli, build, inspect, select_behavior
from obd.errors import cli_entry


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m obd.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build.add_parser(sub)
    inspect.add_parser(sub)
    behavior_cli.add_parser(sub)
    select_behavior.add_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
