"""Score a sweep's finished trials at a smaller budget: equal CPU-seconds against another method, from the
checkpoints the trials already have, without distilling again.

    python scripts/score_at_budget.py SWEEP --method 'M' --cpu-of 'BASE' [--last-k 5 --threads 1]
    python scripts/score_at_budget.py SWEEP --method 'M' --step 1200

A run with a constant outer learning rate does not depend on its length, so its first S outer steps are the
run of S steps; its checkpoints at or before S score that shorter run (they are the longer run's checkpoints,
one every 1/20 of it, not the shorter run's own). ``--cpu-of BASE``: per trial, S is the last checkpoint whose
``cpu_time`` (``metrics.jsonl``, the outer steps' CPU-seconds over all attempts) is at most what BASE's trial of
the same dataset and seed spent in all. Each trial's last ``--last-k`` checkpoints at or before S are scored
under the trial's own recorded protocol (students, episodes, seed; cached in its ``eval_cache.json``) and
averaged as the sweep scores a trial. Prints one JSON line per trial, then per dataset the seeds' scores, the
IQM of all students with its 95% stratified-bootstrap interval and the spread between students for BASE (or M
at full length) and M at the budget, and over the datasets the IQM of the trials' scores and the mean share of
the teacher's score.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from obd.distill.folder import DistillFolder
from obd.errors import ObdError, cli_entry
from obd.evaluate.runs import RunFiles, evaluate_run, load_run
from obd.evaluate.stats import aggregate_iqm, iqm, student_spread
from obd.sweep.grid import format_method, method_folder, parse_list, split_method
from obd.sweep.table import read_results


def budget_step(trial: Path, cpu_budget: float | None, step: int | None) -> int:
    """The last outer step of ``trial`` inside the budget: ``step`` itself, or the last metrics row whose
    cumulative ``cpu_time`` is at most ``cpu_budget``."""
    if step is not None:
        return step
    last = 0
    for row in DistillFolder(trial).metrics():
        if float(row["cpu_time"]) > cpu_budget:
            break
        last = int(row["step"])
    return last


def score_trial(trial: Path, row: dict[str, Any], until: int, last_k: int) -> tuple[list[int], list[list[float]]]:
    """(steps, per-student scores of each) of the ``last_k`` checkpoints of ``trial`` at or before ``until``,
    scored with the row's recorded protocol."""
    files = load_run(trial)
    chosen = [c for c in files.checkpoints if c[0] <= until][-last_k:]
    if len(chosen) < last_k:
        raise ObdError(f"{trial}: {len(chosen)} checkpoints at or before step {until}, --last-k asks for {last_k}")
    ev = row.get("eval")
    if not isinstance(ev, dict) or "students" not in ev:
        raise ObdError(f"{trial}: its sweep row has no recorded evaluation settings ('eval'); rerun its sweep")
    settings = {"students": ev["students"], "episodes": ev["episodes"], "seed": ev["seed"],
                "max_steps": ev.get("max_steps"), "device": "cpu"}
    evaluated = evaluate_run(RunFiles(files.path, files.config, chosen), settings, progress=False)
    return [c.outer_step for c in evaluated.checkpoints], \
        [list(c.result["per_policy_normalized_score"]) for c in evaluated.checkpoints]


def check_constant(trial: Path) -> None:
    """A run whose outer learning rate or on-policy share follows a schedule over its length is not its own
    prefix."""
    cfg = DistillFolder(trial).config()
    schedule = (cfg.get("outer") or {}).get("schedule", "constant")
    if schedule != "constant":
        raise ObdError(f"{trial}: outer.schedule is {schedule!r}; only a constant schedule makes a prefix of the "
                       "run the shorter run")
    share_end = (cfg.get("onpolicy") or {}).get("share_end")
    if share_end is not None:
        raise ObdError(f"{trial}: onpolicy.share_end is {share_end!r}; only a constant on-policy share makes a "
                       "prefix of the run the shorter run")


def summary(label: str, by_seed: list[float], students: list[list[list[float]]]) -> str:
    """``label: s0 / s1 / s2, IQM [CI] ± spread`` of one cell (``students``: seeds x checkpoints x students)."""
    flat = [[x for s in seed for x in s] for seed in students]
    sets = [s for seed in students for s in seed]
    return (f"{label}: {' / '.join(f'{x:.1f}' for x in by_seed)}, IQM {iqm(flat)} ± "
            f"{student_spread(sets):.1f}")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep", type=Path, help="a sweep folder (obd sweep --out)")
    p.add_argument("--method", required=True, help="the method to score at the budget, as in the sweep's rows")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--cpu-of", help="the method whose trials' CPU-seconds are the budget")
    budget.add_argument("--step", type=int, help="a fixed outer step")
    p.add_argument("--datasets", help="comma-separated dataset names of the sweep's rows (default: all)")
    p.add_argument("--last-k", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.last_k < 1:
        raise ObdError(f"--last-k: expected an integer >= 1, got {a.last_k}")
    method = format_method(*split_method(a.method))
    base = format_method(*split_method(a.cpu_of)) if a.cpu_of else method
    rows = read_results(a.sweep / "results.jsonl")
    if not rows:
        raise ObdError(f"{a.sweep / 'results.jsonl'}: no sweep rows")
    by_key = {(r["dataset"], r["method"], r["seed"]): r for r in rows}
    wanted = set(parse_list("--datasets", a.datasets)) if a.datasets else None
    mine = sorted((r for r in rows if r["method"] == method and (wanted is None or r["dataset"] in wanted)),
                  key=lambda r: (r["dataset"], r["seed"]))
    if not mine:
        raise ObdError(f"{a.sweep}: no finished trials of --method {method!r}")
    teacher = {d: float(np.mean([r["normalized_score_mean"] for r in rows
                                 if r["dataset"] == d and r["method"] == "teacher"]))
               for d in {r["dataset"] for r in rows if r["method"] == "teacher"}}
    cells: dict[str, dict[str, list[Any]]] = {}
    for r in mine:
        trial = a.sweep / "trials" / r["dataset"] / method_folder(method) / f"seed{r['seed']}"
        check_constant(trial)
        ref = by_key.get((r["dataset"], base, r["seed"]))
        if ref is None:
            raise ObdError(f"{a.sweep}: no finished trial of {base!r} on {r['dataset']} seed {r['seed']}")
        if any(c.get("per_student") is None for c in ref.get("checkpoints", [])):
            raise ObdError(f"{a.sweep}: the row of {base!r} on {r['dataset']} seed {r['seed']} predates per-student "
                           "scores")
        cpu = None
        if a.cpu_of:
            ref_rows = DistillFolder(a.sweep / "trials" / r["dataset"] / method_folder(base)
                                     / f"seed{r['seed']}").metrics()
            cpu = float(ref_rows[-1]["cpu_time"])
        until = budget_step(trial, cpu, a.step)
        steps, students = score_trial(trial, r, until, a.last_k)
        score = float(np.mean([np.mean(s) for s in students]))
        print(json.dumps({"dataset": r["dataset"], "seed": r["seed"], "cpu_budget": cpu, "until": until,
                          "steps": steps, "score": round(score, 2), "full_score": round(r["normalized_score_mean"], 2),
                          "reference": round(ref["normalized_score_mean"], 2)}), flush=True)
        cell = cells.setdefault(r["dataset"], {"ref": [], "ref_students": [], "new": [], "new_students": []})
        cell["ref"].append(ref["normalized_score_mean"])
        cell["ref_students"].append([c["per_student"] for c in ref["checkpoints"]])
        cell["new"].append(score)
        cell["new_students"].append(students)
    for d, c in cells.items():
        print(f"{d}: " + summary(base if a.cpu_of else "full length", c["ref"], c["ref_students"]) + "; "
              + summary("at the budget", c["new"], c["new_students"]))
    seeds = {len(c["new"]) for c in cells.values()}
    if len(cells) > 1 and len(seeds) == 1:
        for label, key in (("reference", "ref"), ("at the budget", "new")):
            matrix = np.array([cells[d][key] for d in cells]).T
            share = ""
            if all(d in teacher for d in cells):
                share = f", {100 * np.mean([np.mean(cells[d][key]) / teacher[d] for d in cells]):.0f}% of the teacher"
            print(f"all {len(cells)} datasets, {label}: IQM {aggregate_iqm(matrix)}{share}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
