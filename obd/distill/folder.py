"""A distillation run folder: the shared layout of :class:`obd.run_folder.RunFolder` (kept checkpoints) plus
what distillation adds to it (the contract with ``obd.evaluate``, ``obd.report`` and
``scripts/compare_presets.py``)::

    RUN/config.yaml                          resolved DistillConfig and the run's inputs
    RUN/metrics.jsonl                        one line per outer step: step, loss, grad_norm, sec, cpu_sec,
                                             wall_time, cpu_time
    RUN/sdw_weights.json                     SDW runs: the weights' ESS, quantiles, alpha (obd.distill.sdw.SDWStats)
    RUN/checkpoints/step_XXXXXXX.hdf5        SyntheticDataset every checkpoint_every outer steps
    RUN/checkpoints/step_XXXXXXX.state.pt    synthetic tensors + optimizer + generator state
    RUN/synthetic.hdf5                       final synthetic set
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from obd.errors import ObdError
from obd.run_folder import RunFolder

SET_RE = re.compile(r"^step_(\d+)\.hdf5$")


class DistillFolder(RunFolder):
    """Paths and readers of one distillation run folder; nothing is read until asked."""

    def __init__(self, path: str | Path):
        super().__init__(path, keep=True)
        self.synthetic_path = self.path / "synthetic.hdf5"
        self.sdw_weights_path = self.path / "sdw_weights.json"

    def set_path(self, step: int) -> Path:
        """The synthetic set ``.hdf5`` saved beside the checkpoint at outer ``step``."""
        return self.checkpoints_dir / f"step_{step:07d}.hdf5"

    def checkpoint_sets(self) -> list[Path]:
        """``checkpoints/step_*.hdf5`` in step order (empty when there are none); an error when the folder is
        missing."""
        if not self.path.is_dir():
            raise ObdError(f"{self.path}: run folder not found")
        if not self.checkpoints_dir.is_dir():
            return []
        return sorted((p for p in self.checkpoints_dir.glob("step_*.hdf5") if SET_RE.match(p.name)),
                      key=lambda p: int(SET_RE.match(p.name).group(1)))

    def synthetic_sets(self) -> list[Path]:
        """:meth:`checkpoint_sets`, then ``synthetic.hdf5`` when present; an error when the folder is missing or
        holds none."""
        files = self.checkpoint_sets()
        if self.synthetic_path.is_file():
            files.append(self.synthetic_path)
        if not files:
            raise ObdError(f"{self.path}: no checkpoints (expected checkpoints/step_XXXXXXX.hdf5 or synthetic.hdf5)")
        return files


def config_value(cfg: dict[str, Any], key: str) -> Any:
    """``cfg[key]``, or the first ``cfg[section][key]`` one level down (None when absent)."""
    if key in cfg:
        return cfg[key]
    for value in cfg.values():
        if isinstance(value, dict) and key in value:
            return value[key]
    return None
