"""Race distillation presets (or finished run folders) on the paper's outer objective H: the command line of
:mod:`obd.compare`, whose docstring describes the flags and outputs.

    python scripts/compare_presets.py --dataset SPEC --teacher hopper-medium-v5 --presets paper_avpbc,fast_avpbc \\
        --budget-seconds 600 --out runs/compare
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obd.compare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
