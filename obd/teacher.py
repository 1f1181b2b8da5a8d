"""``python -m obd.teacher``: the old spelling of ``python -m obd.teachers`` (``obd teacher``), kept because
published commands use it."""

import sys

from obd.teachers.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
