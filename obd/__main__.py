"""``python -m obd quickstart --out DIR``: the README's main job (see :mod:`obd.quickstart`).

The stages have their own entry points: ``python -m obd.data``, ``python -m obd.teacher``,
``python -m obd.distill``, ``python -m obd.evaluate``, ``python -m obd.report``.
"""

from __future__ import annotations

import argparse
import sys

from obd import quickstart
from obd.errors import cli_entry


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m obd", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    quickstart.add_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
