"""Optional metric sinks behind one callback interface: TensorBoard and Weights & Biases.

Every run writes ``metrics.jsonl`` regardless; ``logger=tensorboard``, ``logger=wandb`` or
``logger=tensorboard,wandb`` adds sinks. Neither package is required by obd: asking for one that is not
installed is a one-line error before any work starts (``pip install "obd[tensorboard]"`` / ``"obd[wandb]"``).

A sink is any object with ``log(step, metrics)`` and ``close()`` (:class:`MetricLogger`); numeric values
of ``metrics`` are logged as scalars under ``<prefix>/<key>``.

* TensorBoard: event files in ``RUN/tensorboard/`` through ``torch.utils.tensorboard.SummaryWriter``;
* wandb: ``wandb.init(dir=RUN, name=RUN's name, id=<stable per run>, resume="allow")`` in project
  ``$WANDB_PROJECT`` (default ``obd``); wandb's own ``WANDB_MODE`` (``offline``, ``disabled``) is respected.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from pathlib import Path
from typing import Any, Protocol

from obd.errors import ObdError

LOGGERS = {"tensorboard": "tensorboard", "wandb": "wandb"}  # name -> the package it needs


class MetricLogger(Protocol):
    def log(self, step: int, metrics: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def parse_loggers(text: str, key: str = "logger") -> list[str]:
    """``"tensorboard,wandb"`` -> ``["tensorboard", "wandb"]``, each known and its package importable."""
    names = [n.strip().lower() for n in str(text or "").split(",") if n.strip() and n.strip().lower() != "none"]
    for name in names:
        if name not in LOGGERS:
            raise ObdError(f"config key '{key}': unknown logger '{name}'; expected some of {sorted(LOGGERS)} "
                           f"(comma-separated) or nothing")
        if importlib.util.find_spec(LOGGERS[name]) is None:
            raise ObdError(f"config key '{key}': logger '{name}' needs the '{LOGGERS[name]}' package "
                           f"(pip install \"obd[{name}]\")")
    return names


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)) and k != "step"}


class TensorBoardLogger:
    """Scalars into TensorBoard event files under ``log_dir``."""

    def __init__(self, log_dir: str | Path, prefix: str = "distill"):
        from torch.utils.tensorboard import SummaryWriter

        self.prefix = prefix
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        for k, v in _scalars(metrics).items():
            self.writer.add_scalar(f"{self.prefix}/{k}", v, step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class WandbLogger:
    """Scalars into a wandb run bound to the run folder (a resumed run continues the same wandb run)."""

    def __init__(self, run_dir: str | Path, config: dict[str, Any] | None = None, prefix: str = "distill"):
        import wandb

        run_dir = Path(run_dir)
        self.prefix = prefix
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "obd"), name=run_dir.name, dir=str(run_dir),
                              id=hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16], resume="allow",
                              config=config or {})

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        self.run.log({f"{self.prefix}/{k}": v for k, v in _scalars(metrics).items()}, step=step)

    def close(self) -> None:
        self.run.finish()


class LoggerGroup:
    """Fans ``log`` / ``close`` out to several sinks; usable as a context manager."""

    def __init__(self, loggers: list[MetricLogger]):
        self.loggers = loggers

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.log(step, metrics)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()

    def __enter__(self) -> "LoggerGroup":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_loggers(text: str, run_dir: str | Path, config: dict[str, Any] | None = None,
                 prefix: str = "distill") -> LoggerGroup:
    """The sinks ``text`` names (see :func:`parse_loggers`) for the run in ``run_dir``."""
    sinks: list[MetricLogger] = []
    for name in parse_loggers(text):
        if name == "tensorboard":
            sinks.append(TensorBoardLogger(Path(run_dir) / "tensorboard", prefix))
        else:
            sinks.append(WandbLogger(run_dir, config, prefix))
    return LoggerGroup(sinks)


__all__ = ["MetricLogger", "TensorBoardLogger", "WandbLogger", "LoggerGroup", "make_loggers", "parse_loggers",
           "LOGGERS"]
