"""SDW density estimators: fit + score time, peak memory, held-out log-likelihood: the command line of
:mod:`obd.distill.bench_density`, whose docstring describes the flags."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from obd.distill.bench_density import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
