"""Table 1 of *Offline Behavior Distillation* under the paper's protocol: a preset of ``obd sweep``.

The nine D4RL columns (HalfCheetah, Hopper, Walker2d x medium-replay, medium, medium-expert), every method
(random selection, DBC, PBC, Av-PBC, SDW, BC on the whole dataset, the teacher), 5 seeds, the paper's
Av-PBC settings (the shipped preset ``paper_avpbc``) and its evaluation protocol (the sweep's defaults: the mean
over the last 5 of 20 checkpoints of 10 students x 10 episodes). Any ``obd.sweep`` flag or ``key=value``
given here replaces the preset's, e.g. a smaller grid on the datasets at hand:

    python scripts/reproduce.py --datasets hopper-medium-v5 --seeds 0,1 outer_steps=2000 --out runs/reproduce

The table is ``OUT/table.md`` (and ``OUT/table.png``); re-running resumes.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from obd.sweep.__main__ import main as sweep_main  # noqa: E402
from obd.sweep.table import PAPER_COLUMNS  # noqa: E402

PRESET = ["--datasets", ",".join(f"{column}-v5" for column in PAPER_COLUMNS),
          "--methods", "random,dbc,pbc,avpbc,sdw,bc,teacher", "--seeds", "0,1,2,3,4",
          "--config", "paper_avpbc", "--out", "runs/reproduce"]


def preset_argv(argv: list[str]) -> list[str]:
    """The ``obd.sweep`` arguments: the preset, then ``argv`` (a flag given twice takes its last value)."""
    return PRESET + list(argv)


def main(argv: list[str] | None = None) -> int:
    return sweep_main(preset_argv(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
