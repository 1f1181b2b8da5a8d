"""``obd data inspect SPEC`` (``python -m obd.data``): the data layer's command line (datasets are built with
``obd collect``)."""

from __future__ import annotations

import argparse
import sys

from obd.cli import subcommand_main
from obd.data import inspect


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obd data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    inspect.add_parser(sub)
    return parser


main = subcommand_main(build_parser)

if __name__ == "__main__":
    sys.exit(main())
