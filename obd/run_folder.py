"""The folder of a resumable run, for every stage that has one (``obd distill``, ``obd teacher train``,
``obd collect train-behavior``): its layout, its checkpoints, its metrics and when a resume is allowed.

    RUN/config.yaml        the run's resolved config, written before anything else: a folder holding it is a run
    RUN/metrics.jsonl      one JSON object with a ``step`` per line, appended as the run goes
    RUN/checkpoints/step_XXXXXXX.state.pt   every checkpoint, kept (``keep=True``: distillation, whose
                                            checkpoints are evaluated afterwards)
    RUN/checkpoint.pt      the newest checkpoint only, rewritten (``keep=False``: training runs)

Each stage adds its own final output (``synthetic.hdf5``, ``teacher.pt``, behavior policies), written
atomically by its own ``save``. Checkpoints are written with :func:`obd.io.torch_save_atomic` and read with
:func:`obd.io.torch_load_weights`, so a kill never leaves a half-written one under its final name.

A resume loads the newest readable checkpoint, drops the metrics lines logged after it (what the killed run
did past it is done again, identically), and refuses a config that differs from the run's in a key outside
:data:`RESUME_MAY_CHANGE`, or inputs whose fingerprint differs (:func:`check_inputs`).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from obd.config import flatten
from obd.errors import ObdError
from obd.io import torch_load_weights, torch_save_atomic, write_text_atomic

#: per stage, the config keys (dotted for sections) a resumed run may change: how far it runs, how often it
#: checkpoints, logs and evaluates, and where. Every other key is part of what the checkpoint computed. The
#: behavior policies' SAC may also change how it samples and updates from here on (D4RL's expert phase updates
#: more often), not its networks, optimizer or seed, which its checkpoint restores.
RESUME_MAY_CHANGE: dict[str, tuple[str, ...]] = {
    "distill": ("outer_steps", "checkpoint_every", "device", "logger"),
    "teacher": ("run.steps", "run.checkpoint_every", "run.log_every", "run.eval_every", "run.eval_episodes",
                "run.eval_max_steps", "run.select", "run.device"),
    "behavior": ("total_steps", "checkpoint_every", "eval_every", "eval_episodes", "confirm_episodes",
                 "start_steps", "batch_size", "update_every", "gamma", "tau"),
}

KEPT_RE = re.compile(r"^step_(\d{7})\.state\.pt$")


class RunFolder:
    """Paths, checkpoints and metrics of one run folder; nothing is read or written until asked."""

    def __init__(self, path: str | Path, *, keep: bool):
        self.path = Path(path)
        self.keep = keep
        self.config_path = self.path / "config.yaml"
        self.metrics_path = self.path / "metrics.jsonl"
        self.checkpoints_dir = self.path / "checkpoints"
        self.rolling_path = self.path / "checkpoint.pt"

    # ------------------------------------------------------------------ layout
    def checkpoint_path(self, step: int) -> Path:
        """Where the checkpoint at ``step`` goes."""
        return self.checkpoints_dir / f"step_{step:07d}.state.pt" if self.keep else self.rolling_path

    def checkpoints(self) -> list[tuple[int | None, Path]]:
        """(step, path) of every checkpoint, newest first; the step is None where the name does not carry it
        (the rolling ``checkpoint.pt``, whose step is inside)."""
        if not self.keep:
            return [(None, self.rolling_path)] if self.rolling_path.is_file() else []
        if not self.checkpoints_dir.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.checkpoints_dir.glob("step_*.state.pt")
                 if (m := KEPT_RE.match(p.name))]
        return sorted(found, reverse=True)

    def latest_checkpoint(self) -> tuple[int | None, Path] | None:
        """(step, path) of the newest checkpoint (see :meth:`checkpoints`), or None."""
        found = self.checkpoints()
        return found[0] if found else None

    def is_run(self) -> bool:
        # a behavior-policy run written before runs had a config.yaml is known by its checkpoint
        return self.config_path.is_file() or (not self.keep and self.rolling_path.is_file())

    # ------------------------------------------------------------------ starting and resuming
    def check_new(self) -> None:
        """Refuse to start a run here when the folder holds a run, or any other file (which the run's outputs
        would overwrite, and whatever described them would then describe another run)."""
        if self.is_run():
            raise ObdError(f"{self.path}: already holds a run ({self.config_path.name}); use --resume {self.path} "
                           f"or another --out")
        if self.path.is_dir() and any(p.is_file() for p in self.path.rglob("*")):
            raise ObdError(f"{self.path}: not empty and not a run folder (no {self.config_path.name}); give an "
                           f"empty or new folder as --out")

    def start(self, resume: bool) -> bool:
        """Whether there is a run here to continue: with ``resume``, when the folder holds one; otherwise a new
        run starts, in a folder that must be new or empty (:meth:`check_new`), so ``--resume`` both starts a run
        and continues it (for stages whose flags give the whole config)."""
        check_folder(self.path, "--resume" if resume else "--out")
        if resume and self.is_run():
            return True
        self.check_new()
        if resume:
            print(f"resume: no run in {self.path} yet; starting a new one", file=sys.stderr)
        return False

    def check_resumable(self, flag: str = "--resume") -> None:
        """Refuse to resume anything but a run folder."""
        check_folder(self.path, flag)
        if not self.is_run():
            raise ObdError(f"{self.path}: no run to resume ({self.config_path.name} missing)")

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Write ``config.yaml`` (first thing a run does: from then on the folder is a run to resume)."""
        write_text_atomic(self.config_path, yaml.safe_dump(dict(config), sort_keys=False))

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

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, state: Mapping[str, Any], step: int) -> Path:
        path = self.checkpoint_path(step)
        torch_save_atomic(state, path)
        return path

    def load_checkpoint(self, what: str, step_key: str = "step",
                        map_location: Any = "cpu") -> tuple[dict[str, Any] | None, Path | None]:
        """(state, path) of the newest checkpoint that loads, or (None, None): unreadable newer ones are skipped
        and what was skipped, or that there is none, is said on stderr (the run then starts from step 0)."""
        skipped: list[str] = []
        for step, path in self.checkpoints():
            try:
                state = torch_load_weights(path, what, map_location=map_location)
            except ObdError as exc:
                skipped.append(f"{path.name} ({exc.reason})")
                continue
            if not isinstance(state, dict) or step_key not in state or step not in (None, state[step_key]):
                skipped.append(f"{path.name} (not a checkpoint{'' if step is None else f' of step {step}'})")
                continue
            if skipped:
                print(f"resume: skipped unreadable checkpoint(s) {', '.join(skipped)}; resuming from {path} "
                      f"({step_key.replace('_', ' ')} {state[step_key]})", file=sys.stderr)
            return state, path
        where = self.checkpoints_dir if self.keep else self.path
        if skipped:
            print(f"resume: no readable checkpoint in {where} (skipped {', '.join(skipped)}); starting from "
                  f"{step_key.replace('_', ' ')} 0", file=sys.stderr)
        else:
            print(f"resume: no checkpoint in {where} yet; starting from {step_key.replace('_', ' ')} 0",
                  file=sys.stderr)
        return None, None

    # ------------------------------------------------------------------ metrics
    def metrics(self, upto: int | None = None) -> list[dict[str, Any]]:
        """The metrics rows up to step ``upto`` (all when None), stopping at a line cut by a kill."""
        return [json.loads(line) for line in read_metrics_lines(self.metrics_path, upto)]

    def metrics_log(self, step: int) -> MetricsLog:
        """The metrics file of a run at ``step``, to append to: first the rows past ``step`` (a killed run's,
        which the resumed run logs again) are dropped, so a new run (``step`` 0) starts it empty."""
        kept = read_metrics_lines(self.metrics_path, step)
        write_text_atomic(self.metrics_path, "".join(line + "\n" for line in kept))
        return MetricsLog(self.metrics_path)


class MetricsLog:
    """Appends one JSON line per row, each written and closed at once, so a kill loses at most the line being
    written (which readers then skip)."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, row: Mapping[str, Any]) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(dict(row)) + "\n")


def read_metrics_lines(path: str | Path, upto: int | None = None) -> list[str]:
    """The lines of a JSON-lines metrics file (one object with a ``step`` per line) up to ``step <= upto``.

    Reading stops at the first line that does not parse (a line cut short by a kill: everything after it
    is gone too); blank lines are skipped; a missing file has no lines.
    """
    path = Path(path)
    if not path.is_file():
        return []
    lines = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            step = json.loads(line)["step"]
        except (json.JSONDecodeError, KeyError, TypeError):
            break
        if upto is not None and step > upto:
            break
        lines.append(line)
    return lines


def latest_checkpoint(run_dir: str | Path) -> tuple[int | None, Path] | None:
    """(step, path) of the newest kept checkpoint (``checkpoints/step_XXXXXXX.state.pt``) of ``run_dir``."""
    return RunFolder(run_dir, keep=True).latest_checkpoint()


def check_folder(path: str | Path, flag: str = "--resume") -> None:
    if Path(path).exists() and not Path(path).is_dir():
        raise ObdError(f"{flag} {path}: is a file, expected a run folder")


def check_changes(old: Mapping[str, Any], new: Mapping[str, Any], stage: str, where: str) -> dict[str, list[Any]]:
    """``{key: [old, new]}`` for the keys in which the resumed run's config ``new`` differs from the run's
    ``old`` (nested sections as dotted keys); :class:`ObdError` for a key outside ``RESUME_MAY_CHANGE[stage]``.
    A key ``old`` lacks (added to the config since the run started) takes its value from ``new``."""
    allowed = RESUME_MAY_CHANGE[stage]
    before, after = flatten(dict(old)), flatten(dict(new))
    # a tuple compares equal to the list YAML reads it back as
    changed = {k: [before[k], v] for k, v in after.items()
               if k in before and _plain(before[k]) != _plain(v)}
    for key, (was, now) in changed.items():
        if key not in allowed:
            raise ObdError(f"{where}: resume with {key}={now!r} but the run started with {was!r}; a resumed run "
                           f"may only change {list(allowed)}")
    return changed


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def check_inputs(saved: Mapping[str, str], now: Mapping[str, str], where: str) -> None:
    """Refuse to resume on inputs (``{"dataset": sha256, ...}``) other than those the run started with;
    inputs the checkpoint has no fingerprint of (older checkpoints) are not compared."""
    for key, then in saved.items():
        if key in now and then != now[key]:
            raise ObdError(f"{where}: the {key} differs from the one this run started with (sha256 {then[:12]}... "
                           f"then, {now[key][:12]}... now); resuming would not continue the same run")
