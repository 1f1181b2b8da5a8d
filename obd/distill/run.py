"""Distillation runs on disk: a run folder that can be killed at any moment and resumed bit-identically.

The folder's layout is :class:`obd.distill.folder.RunFolder`.

A resumed run reloads the newest readable ``.state.pt`` (exact synthetic tensors, optimizer and generator
state; damaged newer ones are skipped with a note on stderr), drops metric lines past it, and recomputes
the deterministic precomputations, so on the same device it ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from obd.distill.config import DistillConfig, RunInputs, load_run_config, run_config_dict, save_run_config
from obd.distill.engine import Distiller, NonFiniteStep
from obd.distill.folder import RunFolder
from obd.distill.synthetic import SyntheticDataset
from obd.errors import Interrupted, ObdError
from obd.interrupt import deferred_sigint
from obd.io import torch_load_weights, torch_save_atomic, write_json_atomic
from obd.loggers import make_loggers

#: config keys a resumed run may change; anything else would make it a different run.
RESUME_OVERRIDABLE = ("outer_steps", "checkpoint_every", "device", "logger")


def latest_checkpoint(run_dir: str | Path) -> tuple[int, Path] | None:
    """(outer step, path) of the newest ``step_XXXXXXX.state.pt`` of ``run_dir``, or None."""
    return RunFolder(run_dir).latest_state()


def save_checkpoint(distiller: Distiller, folder: RunFolder) -> None:
    syn_path, state_path = folder.checkpoint_paths(distiller.outer_step)
    distiller.synthetic().save(syn_path)
    torch_save_atomic(distiller.state_dict(), state_path)


def resume_hint(run_dir: Path) -> str:
    return f"obd distill --resume {run_dir}"


def run(distiller: Distiller, run_dir: str | Path, outer_steps: int | None = None,
        inputs: RunInputs | None = None) -> SyntheticDataset:
    """Drive ``distiller`` to ``outer_steps`` inside ``run_dir``: metrics every step, checkpoints every
    ``checkpoint_every`` steps and at the end, ``synthetic.hdf5`` when done. ``config.yaml`` records the
    config and ``inputs`` (default: the distiller's dataset source and teacher label).

    A NaN or infinite outer loss or gradient norm stops the run before anything of that step is written
    (:class:`ObdError` naming the last good checkpoint). Ctrl-C stops after the current outer step, saves a
    checkpoint and raises :class:`Interrupted` with the ``--resume`` command."""
    folder = RunFolder(run_dir)
    cfg = distiller.config
    total = cfg.outer_steps if outer_steps is None else outer_steps
    if inputs is None:
        inputs = RunInputs(distiller.dataset_source, distiller.teacher_label or None)
    save_run_config(cfg, inputs, folder.config_path)  # first: from here on the folder is a run to resume
    folder.checkpoints_dir.mkdir(parents=True, exist_ok=True)
    if distiller.sdw is not None:
        write_json_atomic(folder.sdw_weights_path, distiller.sdw.stats.to_dict())
    folder.truncate_metrics(distiller.outer_step)
    logged_config = run_config_dict(cfg, inputs)
    with folder.metrics_path.open("a") as log, make_loggers(cfg.logger, folder.path, logged_config) as sinks, \
            deferred_sigint() as stop:
        def record(d: Distiller, metrics: dict[str, Any]) -> None:
            # a skipped spike (outer.skip_spikes) left the set as it was, so only an applied step can stop the run
            if not metrics.get("skipped") and not all(math.isfinite(metrics[k]) for k in ("loss", "grad_norm")):
                raise NonFiniteStep(d.outer_step, metrics["loss"], metrics["grad_norm"])
            log.write(json.dumps({**metrics, "wall_time": round(d.wall_time, 4), "cpu_time": round(d.cpu_time, 4)})
                      + "\n")
            log.flush()
            sinks.log(d.outer_step, metrics)
            saved = bool(cfg.checkpoint_every and d.outer_step % cfg.checkpoint_every == 0)
            if saved:
                save_checkpoint(d, folder)
            if stop.requested:
                if not saved:
                    save_checkpoint(d, folder)
                raise Interrupted(f"saved checkpoint {folder.checkpoint_paths(d.outer_step)[1]} at outer step "
                                  f"{d.outer_step}; continue with: {resume_hint(folder.path)}")

        try:
            syn = distiller.fit(total, callback=record)
        except NonFiniteStep as exc:
            last = folder.latest_state()
            kept = f"last good checkpoint {last[1]} (outer step {last[0]})" if last else "no checkpoint yet"
            raise ObdError(f"{folder.path}: {exc}; {kept}") from None
    last = folder.latest_state()
    if last is None or last[0] != distiller.outer_step:
        save_checkpoint(distiller, folder)
    syn.save(folder.synthetic_path)
    return syn


def _spec(x: Any) -> str | None:
    """The spec a run folder records for a dataset or teacher given as a spec or an object."""
    if x is None or isinstance(x, (str, os.PathLike)):
        return None if x is None else str(x)
    source = getattr(x, "source", None)
    metadata = getattr(x, "metadata", None)
    return source or (metadata.get("source") if isinstance(metadata, dict) else None)


def start(cfg: DistillConfig, run_dir: str | Path, dataset: Any, teacher: Any = None, progress: bool = True,
          inputs: RunInputs | None = None) -> SyntheticDataset:
    """A new run in ``run_dir`` (which must not hold a run already) of ``cfg`` on ``dataset`` and ``teacher``
    (objects or specs, see :meth:`DistillConfig.create`); ``inputs``: the specs to record for a resume
    (default: those given, or what the objects say of their source)."""
    run_dir = Path(run_dir)
    if RunFolder(run_dir).config_path.exists():
        raise ObdError(f"{run_dir}: already holds a run (config.yaml); use --resume {run_dir} or another --out")
    if run_dir.is_dir() and any(p.is_file() for p in run_dir.rglob("*")):
        # its synthetic.hdf5 and metrics.jsonl would be overwritten, and whatever described them (a
        # quickstart's report.json) would then describe another set
        raise ObdError(f"{run_dir}: not empty and not a run folder (no config.yaml); give an empty or new folder "
                       f"as --out")
    distiller = cfg.create(dataset, teacher, progress=progress)
    return run(distiller, run_dir, inputs=inputs or RunInputs(_spec(dataset) or "", _spec(teacher)))


def resume(run_dir: str | Path, overrides: list[str] | None = None, dataset: Any = None, teacher: Any = None,
           progress: bool = True) -> SyntheticDataset:
    """Continue the run in ``run_dir`` from its newest checkpoint (from scratch if it has none), on the
    dataset and teacher its ``config.yaml`` names unless given. ``overrides`` may change only
    :data:`RESUME_OVERRIDABLE` keys."""
    run_dir = Path(run_dir)
    config_path = RunFolder(run_dir).config_path
    if not config_path.is_file():
        raise ObdError(f"{run_dir}: no run to resume (config.yaml missing)")
    for item in overrides or []:
        if item.split("=", 1)[0].strip() not in RESUME_OVERRIDABLE:
            raise ObdError(f"config override '{item}': a resumed run may only change {list(RESUME_OVERRIDABLE)}")
    cfg, inputs = load_run_config(config_path, overrides)
    if teacher is None and cfg.needs_teacher():
        teacher = inputs.teacher
    distiller = cfg.create(inputs.dataset if dataset is None else dataset, teacher, progress=progress)
    state, state_path = _newest_readable(run_dir)
    if state is not None:
        distiller.load_state_dict(state, str(state_path))
    return run(distiller, run_dir, inputs=inputs)


def _newest_readable(run_dir: Path) -> tuple[dict[str, Any] | None, Path | None]:
    """The newest checkpoint state that loads, saying on stderr which newer ones were skipped and why."""
    skipped: list[str] = []
    for step, path in RunFolder(run_dir).states():
        try:
            state = torch_load_weights(path, "checkpoint")
        except ObdError as exc:
            skipped.append(f"{path.name} ({exc.reason})")
            continue
        if not isinstance(state, dict) or state.get("outer_step") != step:
            skipped.append(f"{path.name} (not a checkpoint of outer step {step})")
            continue
        if skipped:
            print(f"resume: skipped unreadable checkpoint(s) {', '.join(skipped)}; resuming from {path} "
                  f"(outer step {step})", file=sys.stderr)
        return state, path
    if skipped:
        print(f"resume: no readable checkpoint in {run_dir / 'checkpoints'} (skipped {', '.join(skipped)}); "
              f"starting from outer step 0", file=sys.stderr)
    return None, None
