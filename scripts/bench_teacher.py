"""Teacher updates per second against a plain CORL-style loop: the command line of :mod:`obd.teachers.bench`,
whose docstring describes the flags and what is compared.

    python scripts/bench_teacher.py [--algo td3bc|iql|calql|all] [--device cpu|cuda|auto] [--steps N] [--json]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from obd.teachers.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
