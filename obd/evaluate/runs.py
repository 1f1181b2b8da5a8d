"""Evaluating distillation run folders: every checkpoint's synthetic set under the OBD protocol, with the
results cached in the run folder.

:func:`load_run` loads and checks every checkpoint of a run (so bad input fails before any evaluation);
:func:`evaluate_run` evaluates each with :func:`obd.evaluate.protocol.evaluate_synthetic` or reads it from
``RUN/eval_cache.json``, keyed by the file's size and mtime and the evaluation settings, so evaluating
again only evaluates new checkpoints (``obd report``, ``obd sweep``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from obd.distill.folder import DistillFolder, config_value
from obd.errors import ObdError
from obd.io import write_json_atomic

CACHE_NAME = "eval_cache.json"


@dataclass
class CheckpointEval:
    path: Path
    outer_step: int
    n_syn: int
    result: dict[str, Any]

    @property
    def score(self) -> float:
        return float(self.result["normalized_score_mean"])

    @property
    def std(self) -> float:
        return float(self.result["normalized_score_std"])

    @property
    def gait(self) -> str:
        """Mean episode length and forward progress, as table cells (``n/a`` in results cached before them)."""
        r = self.result
        length, progress = r.get("episode_length_mean"), r.get("forward_progress_mean")
        return (f"{length:.0f}" if length is not None else "n/a") + " | " + \
            (f"{progress:.2f}" if progress is not None else "n/a")


@dataclass
class RunEval:
    """One run folder's evaluated checkpoints, sorted by outer step."""

    path: Path
    name: str
    method: str
    task: str
    checkpoints: list[CheckpointEval] = field(default_factory=list)

    @property
    def n_syn(self) -> int:
        return self.checkpoints[-1].n_syn

    @property
    def final(self) -> CheckpointEval:
        return self.checkpoints[-1]

    def last_mean(self, last: int) -> float:
        """Mean normalized score over the last ``last`` checkpoints (the paper averages the last 5)."""
        return float(np.mean([c.score for c in self.checkpoints[-last:]]))


def _cache_key(path: Path, settings: dict[str, Any]) -> str:
    st = path.stat()
    opts = ",".join(f"{k}={settings[k]}" for k in sorted(settings))
    return f"{path.name}|{st.st_size}|{st.st_mtime_ns}|{opts}"


def _read_cache(run: Path) -> dict[str, Any]:
    path = run / CACHE_NAME
    if not path.is_file():
        return {}
    try:
        cache = json.loads(path.read_text())
    except json.JSONDecodeError:
        print(f"warning: {path} is not valid JSON; re-evaluating", file=sys.stderr)
        return {}
    return cache if isinstance(cache, dict) else {}


@dataclass
class RunFiles:
    """A run folder's checkpoints, loaded and checked, before anything is evaluated."""

    path: Path
    config: dict[str, Any]
    checkpoints: list[tuple[int, Path, Any]]  # (outer step, file, SyntheticDataset), sorted by step


def load_run(run: Path) -> RunFiles:
    """Load every checkpoint of ``run`` and check its metadata, so bad input fails before any evaluation."""
    from obd.distill.synthetic import SyntheticDataset
    from obd.evaluate.protocol import resolve_task

    run = Path(run)
    folder = DistillFolder(run)
    files = folder.synthetic_sets()
    cfg = folder.config()
    found: dict[int, tuple[int, Path, Any]] = {}
    for path in files:
        syn = SyntheticDataset.load(path)
        if path.name == "synthetic.hdf5" and "selected" in syn.metadata:
            continue  # the set chosen by select.every is not one more point of the run's trajectory
        step = syn.metadata.get("outer_step")
        if step is None:
            if path.name != "synthetic.hdf5":
                raise ObdError(f"{path}: metadata lacks 'outer_step'")
            step = config_value(cfg, "outer_steps")
            if step is None:
                raise ObdError(f"{path}: metadata lacks 'outer_step' and {folder.config_path} lacks 'outer_steps'")
        try:
            step = int(step)
        except (TypeError, ValueError):
            raise ObdError(f"{path}: metadata 'outer_step' should be an integer, got {step!r}") from None
        resolve_task(None, syn.task, syn.obs_dim, syn.act_dim, str(path))
        # the final synthetic.hdf5 usually repeats the last checkpoint's step; the checkpoint wins
        found.setdefault(step, (step, path, syn))
    return RunFiles(run, cfg, [found[s] for s in sorted(found)])


def evaluate_run(run: Path | RunFiles, settings: dict[str, Any], progress: bool = True) -> RunEval:
    """Evaluate (or read from the cache) every checkpoint of ``run``.

    ``settings`` are ``evaluate_synthetic`` keyword arguments (students, episodes, seed, max_steps, ...).
    """
    from obd.evaluate.protocol import evaluate_synthetic

    files = run if isinstance(run, RunFiles) else load_run(Path(run))
    run = files.path
    cfg = files.config
    cache = _read_cache(run)
    evals: list[CheckpointEval] = []
    method = None
    for step, path, syn in tqdm(files.checkpoints, desc=f"evaluate {run.name}", disable=not progress,
                                leave=False):
        method = method or syn.metadata.get("method")
        key = _cache_key(path, settings)
        if key in cache:
            result = cache[key]
        else:
            result = evaluate_synthetic(syn, where=str(path), **settings)
            cache[key] = result
            # the cache is rewritten after each checkpoint so an interrupted report keeps its progress
            write_json_atomic(run / CACHE_NAME, cache)
        evals.append(CheckpointEval(path, step, len(syn), result))
    method = method or config_value(cfg, "objective") or "unknown"
    return RunEval(run, run.resolve().name, str(method), str(evals[-1].result["task"]), evals)
