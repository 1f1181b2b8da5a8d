"""Table 1 of *Offline Behavior Distillation* as an ``obd sweep``: the command line of
:mod:`obd.sweep.reproduce`, whose docstring describes the grid.

    python scripts/reproduce.py --datasets hopper-medium-v5 --seeds 0,1 outer_steps=2000 --out runs/reproduce
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obd.sweep.reproduce import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
