"""The driver: hand every unfinished trial to Ray as one task, record each finished one as it arrives.

Ray does the scheduling. Each trial is a task declaring ``num_cpus`` (its torch thread count) and, when the
cluster has GPUs, a ``num_gpus`` fraction (the GPUs shared evenly by as many trials as the CPUs admit at
once), so a 2-core machine runs two one-thread trials side by side and never more. Drivers write
``OUT/results.jsonl`` (rewritten atomically after every finished trial), ``OUT/table.md`` and
``OUT/table.png``; workers write only inside their own trial folders. Each write happens under a lock on
``OUT/.results.lock`` and re-reads the file first, so several drivers may share one ``OUT`` (e.g. one per
dataset, started as the data lands, or one per machine on a shared file system) without losing rows.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from filelock import FileLock

from obd.errors import ObdError
from obd.io import write_json_atomic, write_text_atomic
from obd.sweep.grid import SweepSettings, Trial
from obd.sweep.table import read_results, write_outputs

RESULTS_NAME = "results.jsonl"
SWEEP_NAME = "sweep.json"
LOCK_NAME = ".results.lock"
#: the parts of a sweep's settings that must agree for two trials' rows to share one table
SETTINGS_KEYS = ("preset", "overrides", "eval")


def settings_mismatch(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The first of :data:`SETTINGS_KEYS` on which the sweep settings ``a`` and ``b`` differ, or None."""
    return next((key for key in SETTINGS_KEYS if a.get(key) != b.get(key)), None)


def results_lock(out: Path) -> FileLock:
    """The lock every writer of ``OUT/results.jsonl`` and ``OUT/sweep.json`` holds while it reads and rewrites them."""
    return FileLock(str(out / LOCK_NAME))


def _ray_trial(trial: Trial, threads: int) -> dict[str, Any]:
    """The Ray task body: run the trial in this worker and say which node ran it."""
    import ray

    from obd.sweep.trial import run_trial

    return {**run_trial(trial, threads), "ray_node_id": ray.get_runtime_context().get_node_id()}


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def record_command(out: Path, settings: SweepSettings, argv: list[str]) -> list[list[str]]:
    """Check that ``out`` holds no sweep with other settings, then add ``argv`` to ``OUT/sweep.json``.
    Returns every command recorded there."""
    out.mkdir(parents=True, exist_ok=True)
    with results_lock(out):
        return _record_command(out, settings, argv)


def _record_command(out: Path, settings: SweepSettings, argv: list[str]) -> list[list[str]]:
    path = out / SWEEP_NAME
    current = _jsonable(settings.as_dict())
    commands: list[list[str]] = []
    if path.is_file():
        saved = json.loads(path.read_text())
        key = settings_mismatch(saved["settings"], current)
        if key is not None:
            raise ObdError(f"--out {out}: holds a sweep with other {key} settings ({saved['settings'].get(key)} "
                           f"then, {current[key]} now); use another --out")
        commands = saved.get("commands", [])
    if argv not in commands:
        commands.append(argv)
    write_json_atomic(path, {"settings": current, "commands": commands})
    return commands


def write_results(out: Path, rows: list[dict[str, Any]]) -> None:
    write_text_atomic(out / RESULTS_NAME, "".join(json.dumps(r) + "\n" for r in rows))


def record_row(out: Path, row: dict[str, Any]) -> list[dict[str, Any]]:
    """Add ``row`` to ``OUT/results.jsonl`` as it is on disk now (another driver may have added rows since
    this one read it), replacing an earlier row of the same trial, and regenerate the table; returns the rows."""
    key = (row["dataset"], row["method"], row["seed"])
    with results_lock(out):
        rows = [r for r in read_results(out / RESULTS_NAME) if (r["dataset"], r["method"], r["seed"]) != key]
        rows.append(row)
        write_results(out, rows)
        sweep = json.loads((out / SWEEP_NAME).read_text()) if (out / SWEEP_NAME).is_file() else {}
        write_outputs(out, rows, sweep.get("commands"))
    return rows


#: the raylet setting of the niceness Ray adds to its worker processes (Ray's default: 15)
WORKER_NICENESS_ENV = "RAY_worker_niceness"


def local_cpus() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def init_ray(address: str | None, cpus: int | None, verbose: bool) -> bool:
    """Start a local Ray (``address`` None) or connect to a cluster; False when Ray was already running
    in this process (then it is left running)."""
    import ray

    if ray.is_initialized():
        return False
    if address is None:
        # Ray starts its workers at niceness 15 so that its own daemons stay responsive; on a machine that
        # runs anything else, trials at that niceness get a sliver of a core. Ours run at the driver's
        # niceness unless the user set RAY_worker_niceness.
        os.environ.setdefault(WORKER_NICENESS_ENV, "0")
        # "local": a new Ray of our own, even where RAY_ADDRESS or a `ray start` cluster is around
        ray.init(address="local", num_cpus=cpus or local_cpus(), include_dashboard=False, log_to_driver=verbose,
                 logging_level=logging.WARNING)
    else:
        # ship this obd to the cluster so every node runs the driver's code
        ray.init(address=address, log_to_driver=verbose, logging_level=logging.WARNING,
                 runtime_env={"py_modules": [str(Path(__file__).resolve().parents[1])]})
    return True


def gpu_fraction(cpus_per_trial: int) -> float:
    """The cluster's GPUs shared evenly by the trials its CPUs run at once (0 without GPUs); Ray takes
    fractions to 4 decimals, so it is rounded down."""
    import ray

    res = ray.cluster_resources()
    gpus = res.get("GPU", 0.0)
    if not gpus:
        return 0.0
    slots = max(1, int(res.get("CPU", 1) // cpus_per_trial))
    return min(1.0, math.floor(gpus / slots * 1e4) / 1e4)


def check_feasible(cpus_per_trial: int, gpus_per_trial: float) -> None:
    """Fail instead of waiting forever when no node of the cluster could run a trial."""
    import ray

    res = ray.cluster_resources()
    if res.get("CPU", 0) < cpus_per_trial:
        raise ObdError(f"--cpus-per-trial: {cpus_per_trial} but the Ray cluster has {res.get('CPU', 0):g} CPUs")
    if gpus_per_trial > 0 and res.get("GPU", 0) == 0:
        raise ObdError(f"--gpus-per-trial: {gpus_per_trial} but the Ray cluster has no GPU")


def recorded_builds(rows: list[dict[str, Any]], where: Path) -> dict[str, str]:
    """dataset -> the data fingerprint its rows in ``where`` were made on (rows that record one). Two builds of
    one dataset in one folder raise ObdError: their rows would be paired and averaged as if on the same data."""
    builds: dict[str, str] = {}
    for row in rows:
        found = row.get("dataset_fingerprint")
        if not found:
            continue
        kept = builds.setdefault(row["dataset"], found)
        if kept != found:
            raise ObdError(f"{where}: rows for {row['dataset']} were made on two builds of its data (fingerprints "
                           f"{kept[:12]} and {found[:12]}); keep one build's rows per sweep folder")
    return builds


def run_sweep(trials: list[Trial], out: Path, settings: SweepSettings, argv: list[str], address: str | None = None,
              cpus: int | None = None, cpus_per_trial: int = 1, gpus_per_trial: float | None = None,
              verbose: bool = False) -> int:
    """Run every trial without a row in ``OUT/results.jsonl``; 0 when all finished, 1 when some failed."""
    import ray

    if cpus_per_trial < 1:
        raise ObdError(f"--cpus-per-trial: expected an integer >= 1, got {cpus_per_trial}")
    if gpus_per_trial is not None and not 0 <= gpus_per_trial <= 1:
        raise ObdError(f"--gpus-per-trial: expected a number in [0, 1], got {gpus_per_trial}")
    if cpus is not None and cpus < cpus_per_trial:
        raise ObdError(f"--cpus: {cpus} is fewer than --cpus-per-trial {cpus_per_trial}")
    rows = read_results(out / RESULTS_NAME)
    commands = record_command(out, settings, argv)
    builds = recorded_builds(rows, out)
    done = {(r["dataset"], r["method"], r["seed"]) for r in rows}
    todo = [dataclasses.replace(t, build=builds.get(t.dataset)) for t in trials if t.key not in done]
    print(f"{len(trials)} trials: {len(trials) - len(todo)} finished already, {len(todo)} to run", flush=True)
    if not todo:
        with results_lock(out):
            write_outputs(out, rows, commands)
        return 0
    started = init_ray(address, cpus, verbose)
    failures = []
    try:
        gpus = gpu_fraction(cpus_per_trial) if gpus_per_trial is None else gpus_per_trial
        check_feasible(cpus_per_trial, gpus)
        task = ray.remote(_ray_trial).options(num_cpus=cpus_per_trial, num_gpus=gpus)
        pending = {task.remote(t, cpus_per_trial): t for t in todo}
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            trial = pending.pop(ref)
            try:
                row = ray.get(ref)
            except Exception as exc:  # a trial's failure must not stop the others; Ray wraps the cause
                cause = getattr(exc, "cause", None) or exc
                failures.append(trial.name)
                print(f"trial {trial.name} failed: {cause.__class__.__name__}: {str(cause).splitlines()[0]}",
                      file=sys.stderr, flush=True)
                continue
            rows = record_row(out, row)
            print(f"[{len(rows)}] {trial.name}: {row['normalized_score_mean']:.1f} ({row['seconds']:.0f} s, node "
                  f"{row['ray_node_id'][:8]})", flush=True)
    finally:
        if started:
            ray.shutdown()
    if failures:
        print(f"{len(failures)} trial(s) failed ({', '.join(failures)}); re-run the same command to retry them",
              file=sys.stderr)
        return 1
    print(f"results: {out / RESULTS_NAME}, table: {out / 'table.md'}", flush=True)
    return 0
