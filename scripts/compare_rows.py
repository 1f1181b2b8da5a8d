"""Compare method rows of a sweep against a base row, dataset by dataset, with paired seeds.

    python scripts/compare_rows.py SWEEP --base 'avpbc[outer.ema=0.995]' --methods 'avpbc[...],avpbc[...]' \
        [--datasets D1,D2] [--task-method hopper='avpbc[...]']

For each dataset and method (the base first): the trials' scores by seed, their mean, the interquartile mean of
every student's score with its 95% stratified-bootstrap interval (rliable, students resampled within each seed)
± the spread between students of one set, and the paired difference to the base on the seeds both ran. Then per
method the share of the teacher's score (mean score over the teacher's mean, averaged over the datasets where
both ran) beside the base's on the same datasets, and the interquartile mean over datasets of the trials' scores
with its interval (rliable, seeds resampled within each dataset) beside the base's, where both ran the same
number of seeds on every dataset. ``--task-method TASK=METHOD`` compares a preset whose ``tasks:`` entry changes
what runs on one task: on that task's datasets each compared method's rows are METHOD's. Reads ``results.jsonl``
only; distils nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from obd.data import dataset_task
from obd.envs import list_tasks
from obd.errors import ObdError, cli_entry
from obd.evaluate.stats import aggregate_iqm, iqm, student_spread
from obd.sweep.driver import recorded_builds
from obd.sweep.grid import parse_list, parse_methods
from obd.sweep.table import _students_by_seed, read_results


def _rows_by_cell(rows: list[dict]) -> dict[tuple[str, str], dict[int, dict]]:
    cells: dict[tuple[str, str], dict[int, dict]] = {}
    for r in rows:
        cells.setdefault((r["dataset"], r["method"]), {})[int(r["seed"])] = r
    return cells


def describe(by_seed: dict[int, dict]) -> str:
    """``s0 / s1 / s2; mean; IQM [CI] ± spread`` of one cell's trials."""
    seeds = sorted(by_seed)
    scores = [float(by_seed[s]["normalized_score_mean"]) for s in seeds]
    text = " / ".join(f"{x:.1f}" for x in scores) + f" (seeds {','.join(map(str, seeds))}); mean {np.mean(scores):.1f}"
    found = _students_by_seed([by_seed[s] for s in seeds])
    if found is not None:
        text += f"; IQM {iqm(found[0])} ± {student_spread(found[1]):.1f}"
    return text


def compare(sweep: Path, base: str, methods: list[str], datasets: list[str] | None,
            task_methods: dict[str, str] | None = None) -> str:
    task_methods = task_methods or {}
    rows = read_results(sweep / "results.jsonl")
    if not rows:
        raise ObdError(f"{sweep / 'results.jsonl'}: no finished trials")
    recorded_builds(rows, sweep)  # rows of two builds of one dataset would be paired as if on the same data
    cells = _rows_by_cell(rows)
    names = sorted({d for d, _ in cells}) if datasets is None else datasets
    known = {m for _, m in cells}
    for m in [base, *methods, *task_methods.values()]:
        if m not in known:
            raise ObdError(f"{sweep}: no rows for method {m!r}; its methods: {', '.join(sorted(known))}")
    out, shares = [], {m: [] for m in methods}
    # (seeds x datasets) score matrices where a method and the base ran the same seeds on every dataset
    matrices: dict[str, tuple[list[list[float]], list[list[float]]]] = {m: ([], []) for m in methods}
    for d in names:
        if (d, base) not in cells and not any((d, m) in cells for m in methods):
            continue
        out.append(f"## {d}")
        teacher = cells.get((d, "teacher"))
        t_mean = float(np.mean([r["normalized_score_mean"] for r in teacher.values()])) if teacher else None
        if t_mean is not None:
            out.append(f"teacher {t_mean:.1f}")
        b = cells.get((d, base), {})
        if b:
            out.append(f"base {base}: {describe(b)}")
        for m in methods:
            c = cells.get((d, task_methods.get(dataset_task(d) or "", m)))
            if not c:
                continue
            common = sorted(set(c) & set(b))
            diff = [float(c[s]["normalized_score_mean"]) - float(b[s]["normalized_score_mean"]) for s in common]
            paired = " / ".join(f"{x:+.1f}" for x in diff)
            out.append(f"{m}: {describe(c)}" + (f"; paired {paired} (mean {np.mean(diff):+.1f})" if diff else ""))
            if common:
                ours = [float(c[s]["normalized_score_mean"]) for s in common]
                theirs = [float(b[s]["normalized_score_mean"]) for s in common]
                matrices[m][0].append(ours)
                matrices[m][1].append(theirs)
                if t_mean:
                    shares[m].append((np.mean(ours) / t_mean, np.mean(theirs) / t_mean))
        out.append("")
    if task_methods:
        out.append("the methods' rows on " + "; ".join(f"{t}: {m}" for t, m in task_methods.items()))
    for m, pairs in shares.items():
        if pairs:
            ours, theirs = np.mean(pairs, axis=0)
            out.append(f"{m}: {100 * ours:.1f}% of the teacher against the base's {100 * theirs:.1f}% "
                       f"on {len(pairs)} datasets (same seeds)")
    for m, (ours_by_dataset, theirs_by_dataset) in matrices.items():
        if len({len(x) for x in ours_by_dataset}) == 1:  # rliable's matrix needs the same seeds everywhere
            ours_iqm = aggregate_iqm(np.array(ours_by_dataset).T)
            theirs_iqm = aggregate_iqm(np.array(theirs_by_dataset).T)
            out.append(f"{m}: IQM of the trials' scores over {len(ours_by_dataset)} datasets {ours_iqm} against the "
                       f"base's {theirs_iqm}")
    return "\n".join(out)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep", type=Path, help="sweep folder (its results.jsonl)")
    p.add_argument("--base", required=True, help="the method row to compare against")
    p.add_argument("--methods", required=True, help="method rows, comma-separated (brackets keep their commas)")
    p.add_argument("--datasets", default=None, help="comma-separated dataset specs (default: all in the sweep)")
    p.add_argument("--task-method", action="append", default=[], metavar="TASK=METHOD",
                   help="on TASK's datasets, take METHOD's rows for every compared method (repeatable)")
    args = p.parse_args(argv)
    task_methods = {}
    for item in args.task_method:
        task, sep, method = item.partition("=")
        found = parse_methods(method) if sep else []
        if task.strip() not in list_tasks() or len(found) != 1:
            raise ObdError(f"--task-method: expected TASK=METHOD with TASK one of {list_tasks()}, got {item!r}")
        task_methods[task.strip()] = found[0]
    base = parse_methods(args.base)
    if len(base) != 1:
        raise ObdError(f"--base: expected one method, got {args.base!r}")
    print(compare(args.sweep, base[0], parse_methods(args.methods),
                  None if args.datasets is None else parse_list("--datasets", args.datasets), task_methods))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
