"""Distillation runs on disk: a run folder (:class:`obd.distill.folder.DistillFolder`) that can be killed at
any moment and resumed bit-identically.

A resumed run reloads the newest readable checkpoint (exact synthetic tensors, optimizer and generator
state; see :class:`obd.run_folder.RunFolder`), drops metric lines past it, and recomputes the deterministic
precomputations, so on the same device it ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from obd.distill.config import DistillConfig, RunInputs, load_run_config, run_config_dict
from obd.distill.engine import Distiller, NonFiniteStep
from obd.distill.folder import DistillFolder
from obd.distill.synthetic import SyntheticDataset
from obd.errors import Interrupted, ObdError
from obd.interrupt import deferred_sigint
from obd.io import write_json_atomic
from obd.loggers import make_loggers
from obd.run_folder import check_changes


def save_checkpoint(distiller: Distiller, folder: DistillFolder) -> Path:
    distiller.synthetic().save(folder.set_path(distiller.outer_step))
    return folder.save_checkpoint(distiller.state_dict(), distiller.outer_step)


def run(distiller: Distiller, run_dir: str | Path, outer_steps: int | None = None,
        inputs: RunInputs | None = None) -> SyntheticDataset:
    """Drive ``distiller`` to ``outer_steps`` inside ``run_dir``: metrics every step, checkpoints every
    ``checkpoint_every`` steps and at the end, ``synthetic.hdf5`` when done. ``config.yaml`` records the
    config and ``inputs`` (default: the distiller's dataset source and teacher label).

    A NaN or infinite outer loss or gradient norm stops the run before anything of that step is written
    (:class:`ObdError` naming the last good checkpoint). Ctrl-C stops after the current outer step, saves a
    checkpoint and raises :class:`Interrupted` with the ``--resume`` command."""
    folder = DistillFolder(run_dir)
    cfg = distiller.config
    total = cfg.outer_steps if outer_steps is None else outer_steps
    if inputs is None:
        inputs = RunInputs(distiller.dataset_source, distiller.teacher_label or None)
    logged_config = run_config_dict(cfg, inputs)
    folder.write_config(logged_config)
    folder.checkpoints_dir.mkdir(parents=True, exist_ok=True)
    if distiller.sdw is not None:
        write_json_atomic(folder.sdw_weights_path, distiller.sdw.stats.to_dict())
    log = folder.metrics_log(distiller.outer_step)
    with make_loggers(cfg.logger, folder.path, logged_config) as sinks, deferred_sigint() as stop:
        def record(d: Distiller, metrics: dict[str, Any]) -> None:
            # a skipped spike (outer.skip_spikes) left the set as it was, so only an applied step can stop the run
            if not metrics.get("skipped") and not all(math.isfinite(metrics[k]) for k in ("loss", "grad_norm")):
                raise NonFiniteStep(d.outer_step, metrics["loss"], metrics["grad_norm"])
            log.write({**metrics, "wall_time": round(d.wall_time, 4), "cpu_time": round(d.cpu_time, 4)})
            sinks.log(d.outer_step, metrics)
            saved = bool(cfg.checkpoint_every and d.outer_step % cfg.checkpoint_every == 0)
            if saved:
                save_checkpoint(d, folder)
            if stop.requested:
                if not saved:
                    save_checkpoint(d, folder)
                raise Interrupted(f"saved checkpoint {folder.checkpoint_path(d.outer_step)} at outer step "
                                  f"{d.outer_step}; continue with: obd distill --resume {folder.path}")

        try:
            syn = distiller.fit(total, callback=record)
        except NonFiniteStep as exc:
            last = folder.latest_checkpoint()
            kept = f"last good checkpoint {last[1]} (outer step {last[0]})" if last else "no checkpoint yet"
            raise ObdError(f"{folder.path}: {exc}; {kept}") from None
    last = folder.latest_checkpoint()
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
    DistillFolder(run_dir).check_new()
    distiller = cfg.create(dataset, teacher, progress=progress)
    return run(distiller, run_dir, inputs=inputs or RunInputs(_spec(dataset) or "", _spec(teacher)))


def resume(run_dir: str | Path, overrides: list[str] | None = None, dataset: Any = None, teacher: Any = None,
           progress: bool = True) -> SyntheticDataset:
    """Continue the run in ``run_dir`` from its newest readable checkpoint (from scratch if it has none), on
    the dataset and teacher its ``config.yaml`` names unless given. ``overrides`` may change only the keys
    ``obd.run_folder.RESUME_MAY_CHANGE["distill"]`` lists."""
    folder = DistillFolder(run_dir)
    folder.check_resumable()
    cfg, inputs = load_run_config(folder.config_path, overrides)
    check_changes(run_config_dict(*load_run_config(folder.config_path)), run_config_dict(cfg, inputs), "distill",
                  str(folder.config_path))
    if teacher is None and cfg.needs_teacher():
        teacher = inputs.teacher
    distiller = cfg.create(inputs.dataset if dataset is None else dataset, teacher, progress=progress)
    state, state_path = folder.load_checkpoint("checkpoint", step_key="outer_step")
    if state is not None:
        distiller.load_state_dict(state, str(state_path))
    return run(distiller, folder.path, inputs=inputs)
