"""One trial, start to finish, in whatever process runs it (a Ray worker, or the caller in tests).

A distillation trial is an ordinary obd run folder (``obd.distill.run``): started if new, resumed from its
newest checkpoint if a previous attempt was killed, left alone if finished. Its last ``eval.last_k``
checkpoints (with ``select.every``, the set the run chose instead) are then evaluated with
``obd.evaluate.runs.evaluate_run`` (cached in the run folder, so a killed evaluation keeps what it finished).
Baselines (``random``, ``bc``, ``teacher``) are evaluated once. The trial's result is written to
``TRIAL/result.json``; a trial that has one returns it without doing anything, so a driver killed after the
trial finished but before it recorded the row loses nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from obd.errors import ObdError
from obd.io import write_json_atomic
from obd.sweep.grid import Trial, trial_budget

RESULT_NAME = "result.json"


def eval_settings(trial: Trial) -> dict[str, Any]:
    """``evaluate_synthetic`` keyword arguments of a trial (``arch``/``steps``/``lr`` None: the set's own
    student and inner loop)."""
    ev = trial.eval
    return {"students": ev.students, "episodes": ev.episodes, "seed": trial.seed, "steps": ev.steps, "lr": ev.lr,
            "arch": ev.arch, "max_steps": ev.max_steps}


def _recorded_eval(trial: Trial, result: dict[str, Any]) -> dict[str, Any]:
    """What a row records of its evaluation: the protocol's settings and the student that was trained."""
    ev = trial.eval
    out: dict[str, Any] = {"episodes": ev.episodes, "seed": trial.seed, "max_steps": ev.max_steps}
    if trial.method != "teacher":
        out.update({k: result.get(k) for k in ("students", "arch", "steps", "optimizer", "lr", "batch_size")})
        out["protocol"] = result.get("student", {}).get("protocol")
    if trial.distill is not None:
        out["last_k"] = ev.last_k
    return out


def _distill(trial: Trial, dataset: Any, teacher: Any, device: Any) -> tuple[list[dict[str, Any]], dict, float]:
    """Finish the trial's run and evaluate its last checkpoints: (per-checkpoint scores, the last evaluation
    result, distill seconds)."""
    from obd.distill.config import RunInputs
    from obd.distill.folder import DistillFolder
    from obd.distill.run import resume, start
    from obd.distill.synthetic import SyntheticDataset
    from obd.evaluate.runs import RunFiles, evaluate_run, load_run

    run_dir = Path(trial.trial_dir)
    cfg = trial.distill
    folder = DistillFolder(run_dir)
    if not folder.synthetic_path.is_file():
        if folder.is_run():
            resume(run_dir, [f"outer_steps={cfg.outer_steps}"], dataset=dataset, teacher=teacher, progress=False)
        else:
            start(cfg, run_dir, dataset, teacher, progress=False,
                  inputs=RunInputs(trial.spec, trial.teacher if cfg.needs_teacher() else None))
    files = load_run(run_dir)
    last = RunFiles(files.path, files.config, files.checkpoints[-trial.eval.last_k:])
    chosen = SyntheticDataset.load(folder.synthetic_path)
    if "selected" in chosen.metadata:  # select.every: the set the run returns is the one its rollouts chose
        last = RunFiles(files.path, files.config,
                        [(int(chosen.metadata["outer_step"]), folder.synthetic_path, chosen)])
    evaluated = evaluate_run(last, {**eval_settings(trial), "device": str(device)}, progress=False)
    rows = folder.metrics()
    seconds = float(rows[-1]["wall_time"]) if rows else 0.0
    return [{"step": c.outer_step, "normalized_score_mean": c.score, "normalized_score_std": c.std,
             "per_student": c.result["per_policy_normalized_score"]} for c in evaluated.checkpoints], \
        evaluated.checkpoints[-1].result, seconds


def _baseline(trial: Trial, dataset: Any, teacher: Any, device: Any) -> dict[str, Any]:
    from obd.evaluate import evaluate_bc, evaluate_synthetic, evaluate_teacher, random_selection
    from obd.evaluate.student_spec import config_student

    ev = trial.eval
    if trial.method == "random":
        syn = random_selection(dataset, trial.base.n_syn, trial.seed)
        syn.save(Path(trial.trial_dir) / "synthetic.hdf5")
        # trained like the distilled sets it is compared with: the preset's student and inner loop
        return evaluate_synthetic(syn, where=trial.name, device=device,
                                  student=config_student(trial.base.student, trial.base.inner), **eval_settings(trial))
    if trial.method == "bc":
        return evaluate_bc(dataset, steps=ev.bc_steps, seed=trial.seed, students=ev.bc_students,
                           episodes=ev.episodes, max_steps=ev.max_steps, device=device)
    return evaluate_teacher(teacher, episodes=ev.episodes, seed=trial.seed, max_steps=ev.max_steps)


def run_trial(trial: Trial, threads: int = 1) -> dict[str, Any]:
    """Run ``trial`` with ``threads`` torch CPU threads and return its result row (also ``TRIAL/result.json``).

    Row: dataset, spec, method, seed, ``normalized_score_mean`` (mean over the evaluated checkpoints of
    each one's mean over students), ``normalized_score_std`` (std over all of their students),
    ``checkpoints`` (step, score and ``per_student`` scores of each; a baseline has one entry at step 0; the
    interquartile means and bootstrap intervals of :mod:`obd.sweep.table` come from those), ``seconds`` (this
    call's wall time), ``distill_seconds`` (the run's outer steps over all its attempts), task,
    dataset size and fingerprint (:meth:`TransitionDataset.fingerprint`: which build of the data), teacher and
    the fingerprint of the data it was trained on (its ``dataset_sha256``, None when it records none), budget
    and evaluation settings.
    """
    import torch

    torch.set_num_threads(threads)
    start_time = time.perf_counter()
    result_path = Path(trial.trial_dir) / RESULT_NAME
    if result_path.is_file():
        return json.loads(result_path.read_text())
    Path(trial.trial_dir).mkdir(parents=True, exist_ok=True)
    from obd.data import load_dataset
    from obd.device import resolve_device
    from obd.teachers import Teacher

    dataset = load_dataset(trial.spec)
    fingerprint = dataset.fingerprint()
    if trial.build is not None and fingerprint != trial.build:
        raise ObdError(f"{trial.spec}: its data (fingerprint {fingerprint[:12]}) is another build than the one "
                       f"this sweep's rows for {trial.dataset} were made on ({trial.build[:12]}); "
                       "sweep it into another --out")
    device = resolve_device((trial.distill or trial.base).device)
    teacher = Teacher.load(trial.teacher, device=device) if trial.teacher else None
    distill_seconds = 0.0
    if trial.distill is not None:
        checkpoints, res, distill_seconds = _distill(trial, dataset, teacher, device)
        per_student = [s for c in checkpoints for s in c["per_student"]]
        task = res["task"]
    else:
        res = _baseline(trial, dataset, teacher, device)
        per_student = res["per_policy_normalized_score"]
        checkpoints = [{"step": 0, "normalized_score_mean": res["normalized_score_mean"],
                        "normalized_score_std": res["normalized_score_std"], "per_student": list(per_student)}]
        task = res["task"]
    row = {
        "dataset": trial.dataset, "spec": trial.spec, "method": trial.method, "seed": trial.seed,
        "normalized_score_mean": float(np.mean([c["normalized_score_mean"] for c in checkpoints])),
        "normalized_score_std": float(np.std(per_student)),
        "checkpoints": checkpoints,
        "seconds": round(time.perf_counter() - start_time, 3),
        "distill_seconds": round(distill_seconds, 3),
        "task": task, "dataset_size": len(dataset),
        "dataset_fingerprint": fingerprint, "teacher": trial.teacher,
        "teacher_dataset_fingerprint": (getattr(teacher, "metadata", None) or {}).get("dataset_sha256"),
        "device": str(device),
        "threads": torch.get_num_threads(), "budget": trial_budget(trial), "eval": _recorded_eval(trial, res),
    }
    write_json_atomic(result_path, row)
    return row
