"""A distillation run folder, the one place that knows its layout (the contract with ``obd.evaluate``,
``obd.report`` and ``scripts/compare_presets.py``)::

    RUN/config.yaml                          resolved DistillConfig
    RUN/metrics.jsonl                        one line per outer step: step, loss, grad_norm, sec, cpu_sec,
                                             wall_time, cpu_time
    RUN/sdw_weights.json                     SDW runs: the weights' ESS, quantiles, alpha (obd.distill.sdw.SDWStats)
    RUN/checkpoints/step_XXXXXXX.hdf5        SyntheticDataset every checkpoint_every outer steps
    RUN/checkpoints/step_XXXXXXX.state.pt    synthetic tensors + optimizer + generator state
    RUN/synthetic.hdf5                       final synthetic set
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from obd.errors import ObdError
from obd.io import read_metrics_lines, truncate_metrics

STATE_RE = re.compile(r"^step_(\d{7})\.state\.pt$")
SET_RE = re.compile(r"^step_(\d+)\.hdf5$")


@dataclass(frozen=True)
class RunFolder:
    """Paths and readers of one run folder; nothing is read until asked."""

    path: Path
    config_path: Path = field(init=False)
    metrics_path: Path = field(init=False)
    checkpoints_dir: Path = field(init=False)
    synthetic_path: Path = field(init=False)
    sdw_weights_path: Path = field(init=False)

    def __post_init__(self) -> None:
        path = Path(self.path)
        for name, value in (("path", path), ("config_path", path / "config.yaml"),
                            ("metrics_path", path / "metrics.jsonl"), ("checkpoints_dir", path / "checkpoints"),
                            ("synthetic_path", path / "synthetic.hdf5"),
                            ("sdw_weights_path", path / "sdw_weights.json")):
            object.__setattr__(self, name, value)

    def checkpoint_paths(self, step: int) -> tuple[Path, Path]:
        """(synthetic set ``.hdf5``, resumable state ``.state.pt``) of the checkpoint at outer ``step``."""
        stem = self.checkpoints_dir / f"step_{step:07d}"
        return stem.with_suffix(".hdf5"), stem.with_suffix(".state.pt")

    def states(self) -> list[tuple[int, Path]]:
        """(outer step, path) of every ``step_XXXXXXX.state.pt``, newest first."""
        found = [(int(m.group(1)), p) for p in self.checkpoints_dir.glob("step_*.state.pt")
                 if (m := STATE_RE.match(p.name))]
        return sorted(found, reverse=True)

    def latest_state(self) -> tuple[int, Path] | None:
        """(outer step, path) of the newest ``step_XXXXXXX.state.pt``, or None."""
        found = self.states()
        return found[0] if found else None

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

    def config(self) -> dict[str, Any]:
        """``config.yaml`` as a plain mapping (empty when there is none)."""
        if not self.config_path.is_file():
            return {}
        try:
            cfg = yaml.safe_load(self.config_path.read_text())
        except yaml.YAMLError as exc:
            raise ObdError(f"{self.config_path}: not valid YAML ({exc.__class__.__name__})") from None
        if cfg is None:
            return {}
        if not isinstance(cfg, dict):
            raise ObdError(f"{self.config_path}: expected a mapping")
        return cfg

    def metrics(self, upto: int | None = None) -> list[dict[str, Any]]:
        """The metrics rows up to outer step ``upto`` (all when None), stopping at a line cut by a kill."""
        return [json.loads(line) for line in read_metrics_lines(self.metrics_path, upto)]

    def truncate_metrics(self, upto: int) -> None:
        """Drop the metrics rows past outer step ``upto`` (what a run resumed from there did not do yet)."""
        truncate_metrics(self.metrics_path, upto)


def config_value(cfg: dict[str, Any], key: str) -> Any:
    """``cfg[key]``, or the first ``cfg[section][key]`` one level down (None when absent)."""
    if key in cfg:
        return cfg[key]
    for value in cfg.values():
        if isinstance(value, dict) and key in value:
            return value[key]
    return None
