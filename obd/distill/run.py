"""Distillation runs on disk: a run folder that can be killed at any moment and resumed bit-identically.

Layout (the contract with ``obd.evaluate``)::

    RUN/config.yaml                          resolved DistillConfig
    RUN/metrics.jsonl                        one line per outer step: step, loss, grad_norm, sec, cpu_sec, wall_time, cpu_time
    RUN/sdw_weights.json                     SDW runs: the weights' ESS, quantiles, alpha (obd.distill.sdw.SDWStats)
    RUN/checkpoints/step_XXXXXXX.hdf5        SyntheticDataset every checkpoint_every outer steps
    RUN/checkpoints/step_XXXXXXX.state.pt    synthetic tensors + optimizer + generator state
    RUN/synthetic.hdf5                       final synthetic set

A resumed run reloads the newest ``.state.pt`` (exact synthetic tensors, optimizer and generator state),
drops metric lines past it, and recomputes the deterministic precomputations, so on the same device it
ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from obd.config import load_config, save_config
from obd.distill.engine import DistillConfig, Distiller
from obd.distill.synthetic import SyntheticDataset
from obd.errors import ObdError
from obd.io import torch_save_atomic, write_json_atomic, write_text_atomic

CHECKPOINT_RE = re.compile(r"^step_(\d{7})\.state\.pt$")
#: config keys a resumed run may change; anything else would make it a different run.
RESUME_OVERRIDABLE = ("outer_steps", "checkpoint_every", "device")


def checkpoint_paths(run_dir: Path, step: int) -> tuple[Path, Path]:
    stem = run_dir / "checkpoints" / f"step_{step:07d}"
    return stem.with_suffix(".hdf5"), stem.with_suffix(".state.pt")


def latest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    """(outer step, path) of the newest ``step_XXXXXXX.state.pt`` in ``RUN/checkpoints``, or None."""
    found = [(int(m.group(1)), p) for p in (run_dir / "checkpoints").glob("step_*.state.pt")
             if (m := CHECKPOINT_RE.match(p.name))]
    return max(found) if found else None


def save_checkpoint(distiller: Distiller, run_dir: Path) -> None:
    syn_path, state_path = checkpoint_paths(run_dir, distiller.outer_step)
    distiller.synthetic().save(syn_path)
    torch_save_atomic(distiller.state_dict(), state_path)


def _read_metrics(path: Path, upto: int) -> list[str]:
    if not path.is_file():
        return []
    lines = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            step = json.loads(line)["step"]
        except (json.JSONDecodeError, KeyError, TypeError):
            break  # a line cut short by the kill; everything after it is gone too
        if step > upto:
            break
        lines.append(line)
    return lines


def run(distiller: Distiller, run_dir: str | Path, outer_steps: int | None = None) -> SyntheticDataset:
    """Drive ``distiller`` to ``outer_steps`` inside ``run_dir``: metrics every step, checkpoints every
    ``checkpoint_every`` steps and at the end, ``synthetic.hdf5`` when done."""
    run_dir = Path(run_dir)
    cfg = distiller.config
    total = cfg.outer_steps if outer_steps is None else outer_steps
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    if distiller.sdw is not None:
        write_json_atomic(run_dir / "sdw_weights.json", distiller.sdw.stats.to_dict())
    metrics_path = run_dir / "metrics.jsonl"
    write_text_atomic(metrics_path, "".join(line + "\n" for line in _read_metrics(metrics_path, distiller.outer_step)))
    with metrics_path.open("a") as log:
        def record(d: Distiller, metrics: dict[str, Any]) -> None:
            log.write(json.dumps({**metrics, "wall_time": round(d.wall_time, 4), "cpu_time": round(d.cpu_time, 4)})
                      + "\n")
            log.flush()
            if cfg.checkpoint_every and d.outer_step % cfg.checkpoint_every == 0:
                save_checkpoint(d, run_dir)

        syn = distiller.fit(total, callback=record)
    if latest_checkpoint(run_dir) is None or latest_checkpoint(run_dir)[0] != distiller.outer_step:
        save_checkpoint(distiller, run_dir)
    syn.save(run_dir / "synthetic.hdf5")
    return syn


def start(cfg: DistillConfig, run_dir: str | Path, dataset: Any = None, teacher: Any = None,
          progress: bool = True) -> SyntheticDataset:
    """A new run in ``run_dir`` (which must not hold a run already)."""
    run_dir = Path(run_dir)
    if (run_dir / "config.yaml").exists():
        raise ObdError(f"{run_dir}: already holds a run (config.yaml); use --resume {run_dir} or another --out")
    cfg.validate()
    return run(cfg.create(dataset, teacher, progress=progress), run_dir)


def resume(run_dir: str | Path, overrides: list[str] | None = None, dataset: Any = None, teacher: Any = None,
           progress: bool = True) -> SyntheticDataset:
    """Continue the run in ``run_dir`` from its newest checkpoint (from scratch if it has none).
    ``overrides`` may change only :data:`RESUME_OVERRIDABLE` keys."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ObdError(f"{run_dir}: no run to resume (config.yaml missing)")
    for item in overrides or []:
        if item.split("=", 1)[0].strip() not in RESUME_OVERRIDABLE:
            raise ObdError(f"config override '{item}': a resumed run may only change {list(RESUME_OVERRIDABLE)}")
    cfg = load_config(DistillConfig, config_path, overrides)
    distiller = cfg.create(dataset, teacher, progress=progress)
    found = latest_checkpoint(run_dir)
    if found is not None:
        state_path = found[1]
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged file: torch raises several unrelated types
            raise ObdError(f"{state_path}: unreadable checkpoint ({exc.__class__.__name__})") from None
        distiller.load_state_dict(state, str(state_path))
    return run(distiller, run_dir)
