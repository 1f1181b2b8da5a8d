"""Score runs that chose their set by its rollouts (``select.every``) against the last set of the same runs.

    python scripts/compare_selected.py RUN [RUN ...] [--students 10] [--episodes 10] [--seed 0] \
        [--teachers docs/sweeps/grid-coverage/results.jsonl]

A run with ``select.every`` returns the set its validation rollouts scored highest (``RUN/synthetic.hdf5``); its
newest checkpoint is the set the same run returns without selection (the selection draws nothing from the run's
generator). Both are scored alike by ``obd.evaluate.evaluate_synthetic`` (the run's own student, ``--students``
x ``--episodes``, seed ``--seed``), cached as ``RUN/selected.eval.json`` and ``RUN/last.eval.json``. Printed per
dataset (the runs grouped by their ``config.yaml``'s dataset, one run per seed): each seed's selected step and
the two scores, their means, the interquartile mean of every student's score with its 95% stratified-bootstrap
interval (rliable) ± the spread between students of one set, and the paired difference. With ``--teachers`` (a
sweep's ``results.jsonl`` holding ``teacher`` rows) the share of the teacher's score over the datasets too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from obd.distill.synthetic import SyntheticDataset
from obd.errors import ObdError, cli_entry
from obd.evaluate import evaluate_synthetic
from obd.evaluate.stats import iqm, student_spread
from obd.io import write_json_atomic


def scored(run: Path, students: int, episodes: int, seed: int) -> dict[str, Any]:
    """``{"dataset", "seed", "step", "selected": scores, "last": scores}`` of one run, evaluating what is not
    cached."""
    config = run / "config.yaml"
    if not config.is_file():
        raise ObdError(f"{run}: not a run folder (no config.yaml)")
    cfg = yaml.safe_load(config.read_text())
    chosen = run / "synthetic.hdf5"
    if not chosen.is_file():
        raise ObdError(f"{run}: the run has not finished (no synthetic.hdf5)")
    meta = SyntheticDataset.load(chosen).metadata
    if "selected" not in meta:
        raise ObdError(f"{chosen}: not a set chosen by its rollouts (run without select.every)")
    last = sorted((run / "checkpoints").glob("step_*.hdf5"))[-1]
    out: dict[str, Any] = {"dataset": Path(str(cfg["dataset"])).name, "seed": int(cfg["seed"]),
                           "step": int(meta["selected"]["outer_step"])}
    settings = {"students": students, "episodes": episodes, "seed": seed}
    for name, path in (("selected", chosen), ("last", last)):
        cache = run / f"{name}.eval.json"
        result = json.loads(cache.read_text()) if cache.is_file() else None
        if result is None or any(result.get(k) != v for k, v in settings.items()):
            result = evaluate_synthetic(path, **settings)
            write_json_atomic(cache, result)
        out[name] = [float(x) for x in result["per_policy_normalized_score"]]
    return out


def teacher_scores(path: Path) -> dict[str, float]:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    found: dict[str, list[float]] = {}
    for r in rows:
        if r.get("method") == "teacher":
            found.setdefault(Path(str(r["dataset"])).name, []).append(float(r["normalized_score_mean"]))
    return {d: float(np.mean(v)) for d, v in found.items()}


def report(runs: list[dict[str, Any]], teachers: dict[str, float] | None = None) -> str:
    lines = []
    shares: list[tuple[float, float]] = []
    for dataset in sorted({r["dataset"] for r in runs}):
        mine = sorted((r for r in runs if r["dataset"] == dataset), key=lambda r: r["seed"])
        sel = [float(np.mean(r["selected"])) for r in mine]
        last = [float(np.mean(r["last"])) for r in mine]
        seeds = ", ".join(f"seed {r['seed']}: step {r['step']}, {a:.1f} / {b:.1f}" for r, a, b in zip(mine, sel, last))
        lines.append(f"{dataset}: {seeds}")
        lines.append(f"  selected {np.mean(sel):.1f}, IQM {iqm([r['selected'] for r in mine])} ± "
                     f"{student_spread([r['selected'] for r in mine]):.1f}; last {np.mean(last):.1f}, IQM "
                     f"{iqm([r['last'] for r in mine])} ± {student_spread([r['last'] for r in mine]):.1f}; paired "
                     f"difference {np.mean(sel) - np.mean(last):+.1f}")
        if teachers and dataset in teachers:
            shares.append((np.mean(sel) / teachers[dataset], np.mean(last) / teachers[dataset]))
    if shares:
        share = np.mean(shares, axis=0)
        lines.append(f"share of the teacher over {len(shares)} datasets: selected {100 * share[0]:.1f}%, last "
                     f"{100 * share[1]:.1f}%")
    return "\n".join(lines)


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--students", type=int, default=10)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--teachers", type=Path, default=None, help="a sweep's results.jsonl with teacher rows")
    args = p.parse_args(argv)
    runs = [scored(r, args.students, args.episodes, args.seed) for r in args.runs]
    print(report(runs, teacher_scores(args.teachers) if args.teachers else None))
    return 0


main = cli_entry(_main)

if __name__ == "__main__":
    raise SystemExit(main())
