"""Reproduce the layout of Table 1 of *Offline Behavior Distillation* on the datasets obd can build.

For every dataset: random selection of N real pairs, DBC, PBC, Av-PBC and SDW (SDW-weighted Av-PBC)
distilled with one preset, each over several seeds, plus behavior cloning on the whole dataset and the
teacher itself, all evaluated with the same protocol (``obd.evaluate``). Writes a Markdown table with
the published numbers beside ours to ``docs/results.md`` (atomically).

Resumable: each distillation is a run folder under ``--out`` (``python -m obd.distill`` layout) that is
resumed if it was killed, and every evaluation is cached as JSON next to it, so re-running the same
command only does what is missing.

    python scripts/reproduce.py --dataset hopper-medium-v5=hopper-medium-v5 \
        --seeds 0,1 --outer-steps 500 --out runs/reproduce
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from obd.config import load_config
from obd.data import load_dataset
from obd.distill import DistillConfig
from obd.distill.run import resume, start
from obd.distill.synthetic import SyntheticDataset
from obd.errors import ObdError, cli_entry
from obd.evaluate import config_student, evaluate_bc, evaluate_synthetic, evaluate_teacher, random_selection
from obd.io import write_json_atomic, write_text_atomic
from obd.teachers import Teacher

METHODS = ("random", "dbc", "pbc", "avpbc", "sdw")
LABELS = {"random": "Random selection", "dbc": "DBC", "pbc": "PBC", "avpbc": "Av-PBC", "sdw": "SDW (Av-PBC)",
          "bc": "BC on the whole dataset", "teacher": "Teacher"}
OVERRIDES = {"dbc": ["objective=dbc"], "pbc": ["objective=pbc"], "avpbc": ["objective=avpbc"],
             "sdw": ["objective=avpbc", "sdw=true"]}
# Published normalized returns (D4RL v2, N_syn = 256, Cal-QL teachers); the paper's "teacher" row is Cal-QL.
PAPER_COLUMNS = [f"{env}-{level}" for env in ("halfcheetah", "hopper", "walker2d")
                 for level in ("medium-replay", "medium", "medium-expert")]
PUBLISHED = {method: dict(zip(PAPER_COLUMNS, values)) for method, values in {
    "random": (0.9, 1.8, 2.0, 19.1, 19.2, 11.6, 1.9, 4.9, 6.7),
    "dbc": (2.5, 28.2, 29.0, 12.1, 37.8, 31.1, 6.1, 29.3, 11.7),
    "pbc": (19.4, 30.9, 20.5, 35.6, 25.1, 33.4, 41.5, 33.2, 34.0),
    "avpbc": (35.9, 36.9, 22.0, 40.9, 32.5, 38.7, 55.0, 39.5, 42.1),
    "bc": (14.0, 42.3, 59.8, 22.9, 50.2, 51.7, 14.6, 65.9, 89.6),
    "teacher": (45.8, 47.6, 50.8, 98.0, 56.4, 107.3, 87.4, 84.0, 109.0),
}.items()}


def family(dataset_id: str) -> str:
    """``hopper-medium-replay-v5`` -> ``hopper-medium-replay`` (the paper's column)."""
    parts = dataset_id.split("-")
    return "-".join(parts[:-1]) if parts[-1].startswith("v") and parts[-1][1:].isdigit() else dataset_id


class NotRun(Exception):
    """A result that ``--cached-only`` asked not to compute."""


CACHED_ONLY = False


def cached(path: Path, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    if path.is_file():
        return json.loads(path.read_text())
    if CACHED_ONLY:
        raise NotRun(str(path))
    result = compute()
    write_json_atomic(path, result)
    return result


def distill(run_dir: Path, preset: Path, overrides: list[str], dataset: Any, teacher: Any) -> SyntheticDataset:
    """Finish (or resume) the run in ``run_dir`` and return its final synthetic set."""
    final = run_dir / "synthetic.hdf5"
    if final.is_file():
        return SyntheticDataset.load(final)
    if CACHED_ONLY:
        raise NotRun(str(final))
    if (run_dir / "config.yaml").is_file():
        return resume(run_dir, dataset=dataset, teacher=teacher)
    cfg = load_config(DistillConfig, preset, overrides)
    return start(cfg, run_dir, dataset=dataset, teacher=teacher)


def run_method(method: str, seed: int, dataset: Any, teacher: Any, teacher_path: Path, root: Path,
               args: argparse.Namespace, eval_kw: dict[str, int]) -> dict[str, Any]:
    """Evaluation result of one (method, seed): random selection, or a distillation run then its evaluation."""
    if method == "random":
        preset = load_config(DistillConfig, args.preset)
        # trained like the distilled sets (the preset's student and inner loop), so the rows compare data
        return cached(root / f"random_seed{seed}.json",
                      lambda: evaluate_synthetic(random_selection(dataset, preset.n_syn, seed), seed=seed,
                                                 student=config_student(preset.student, preset.inner), **eval_kw))
    overrides = OVERRIDES[method] + [f"seed={seed}", f"teacher={teacher_path}"] + args.extra
    if method == "sdw":
        overrides.append(f"density.estimator={args.sdw_estimator}")
    if args.outer_steps is not None:
        overrides.append(f"outer_steps={args.outer_steps}")
    run_dir = root / f"{method}_seed{seed}"
    eval_path = run_dir / "eval.json"
    if eval_path.is_file():
        return json.loads(eval_path.read_text())
    syn = distill(run_dir, args.preset, overrides, dataset, teacher)
    return cached(eval_path, lambda: evaluate_synthetic(syn, seed=seed, **eval_kw))


def score(r: dict[str, Any]) -> float:
    return float(r["normalized_score_mean"])


def main_(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", action="append", required=True, metavar="SPEC=TEACHER",
                   help="a dataset spec and its teacher file; repeat for several datasets")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--preset", default="small_avpbc", help="YAML config file or shipped preset name")
    p.add_argument("--outer-steps", type=int, default=None, help="override the preset's outer_steps")
    p.add_argument("--students", type=int, default=10)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--bc-steps", type=int, default=20_000)
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="key=value",
                   help="extra config override for every distillation")
    p.add_argument("--sdw-estimator", default="gmm", help="SDW density estimator (kde, knn, gmm, flow)")
    p.add_argument("--cached-only", action="store_true",
                   help="only assemble the table from results already computed under --out (seeds run separately)")
    p.add_argument("--out", type=Path, default=Path("runs/reproduce"))
    p.add_argument("--results", type=Path, default=Path("docs/results.md"))
    args = p.parse_args(argv)
    global CACHED_ONLY
    CACHED_ONLY = args.cached_only

    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            raise ObdError(f"--methods: unknown method '{m}'; expected some of {list(METHODS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s != ""]
    pairs = []
    for item in args.dataset:
        spec, sep, teacher = item.partition("=")
        if not sep:
            raise ObdError(f"--dataset '{item}': expected SPEC=TEACHER_FILE")
        pairs.append((spec, Path(teacher)))

    eval_kw = dict(students=args.students, episodes=args.episodes)
    table: dict[str, dict[str, list[float]]] = {}
    times: dict[str, float] = {}
    distill_seconds: list[float] = []
    t_all = time.perf_counter()
    for spec, teacher_path in pairs:
        dataset = load_dataset(spec)
        teacher = Teacher.load(teacher_path)
        name = Path(spec).stem if Path(spec).suffix else spec
        col = family(name.replace("_", "-"))
        root = args.out / name
        try:
            table.setdefault("teacher", {})[col] = [score(cached(
                root / "teacher.json", lambda: evaluate_teacher(teacher, episodes=args.episodes)))]
        except NotRun:
            pass
        for seed in seeds:
            t0 = time.perf_counter()
            try:
                table.setdefault("bc", {}).setdefault(col, []).append(score(cached(
                    root / f"bc_seed{seed}.json",
                    lambda: evaluate_bc(dataset, steps=args.bc_steps, seed=seed, students=1, episodes=args.episodes))))
            except NotRun:
                pass
            times[f"{col} bc"] = times.get(f"{col} bc", 0.0) + time.perf_counter() - t0
            for method in methods:
                t0 = time.perf_counter()
                try:
                    result = run_method(method, seed, dataset, teacher, teacher_path, root, args, eval_kw)
                except NotRun:
                    continue
                table.setdefault(method, {}).setdefault(col, []).append(score(result))
                metrics = root / f"{method}_seed{seed}" / "metrics.jsonl"
                if metrics.is_file():
                    distill_seconds.append(json.loads(metrics.read_text().splitlines()[-1])["wall_time"])
                times[f"{col} {method}"] = times.get(f"{col} {method}", 0.0) + time.perf_counter() - t0
    total = time.perf_counter() - t_all
    columns = list(dict.fromkeys(family((Path(s).stem if Path(s).suffix else s).replace("_", "-")) for s, _ in pairs))
    text = render(table, columns, methods, args, seeds, total, argv if argv is not None else sys.argv[1:],
                  distill_seconds)
    write_text_atomic(args.results, text)
    print(text)
    return 0


def render(table: dict[str, dict[str, list[float]]], columns: list[str], methods: list[str], args: argparse.Namespace,
           seeds: list[int], total: float, argv: list[str], distill_seconds: list[float]) -> str:
    rows = methods + ["bc", "teacher"]
    head = "| method | " + " | ".join(f"{c} (ours)" + " | " + f"{c} (paper)" for c in columns) + " |"
    sep = "| --- |" + " --- | --- |" * len(columns)
    lines = [head, sep]
    for row in rows:
        cells = []
        for c in columns:
            vals = table.get(row, {}).get(c, [])
            ours = f"{np.mean(vals):.1f} ± {np.std(vals):.1f}" if len(vals) > 1 else (f"{vals[0]:.1f}" if vals else "")
            pub = PUBLISHED.get(row, {}).get(c.rsplit("-v", 1)[0])
            cells.append(ours)
            cells.append("" if pub is None else f"{pub:.1f}")
        lines.append(f"| {LABELS[row]} | " + " | ".join(cells) + " |")
    cmd = "python scripts/reproduce.py " + " ".join(argv)
    return "\n".join([
        "# Results: offline behavior distillation on obd-built datasets",
        "",
        "D4RL normalized return (100 = D4RL expert SAC, 0 = random policy). *Ours*: mean ± std over seeds "
        f"{seeds} of the final synthetic set, each evaluated with {args.students} fresh students x "
        f"{args.episodes} episodes (BC on the whole dataset: 1 student, {args.bc_steps} Adam steps; teacher: "
        f"{args.episodes} episodes); a cell without ± holds one seed. *Paper*: Lei, Zhang, Tao (NeurIPS 2024), "
        "Table 1.",
        "",
        "**Not the same experiment.** The paper's numbers come from D4RL v2 datasets (mujoco-py `*-v2` envs) "
        "and Cal-QL teachers distilled for 20k-200k outer steps and averaged over 5 seeds x the last 5 "
        "checkpoints; ours come from datasets obd built itself in Gymnasium `-v5` envs with its own SAC "
        "behavior policies, TD3+BC teachers trained briefly on CPU, and the scale below.",
        "",
        *lines,
        "",
        "## Scale and compute",
        f"- Preset `{args.preset}`" + (f", outer steps overridden to {args.outer_steps}" if args.outer_steps else "")
        + (f", extra overrides {args.extra}" if args.extra else "") + f"; SDW density: {args.sdw_estimator}.",
        f"- Seeds {seeds}; {args.students} students x {args.episodes} episodes per synthetic set.",
        f"- Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"{'cuda' if torch.cuda.is_available() else 'CPU only'}; "
        + ("table assembled from results computed earlier under the same --out (--cached-only)."
           if CACHED_ONLY else f"total wall time of this invocation {total / 60:.1f} min (cached results are not "
                                "re-timed)."),
        f"- Distillation: {len(distill_seconds)} runs, {sum(distill_seconds) / 60:.1f} min of outer steps in all "
        f"({min(distill_seconds, default=0):.0f}-{max(distill_seconds, default=0):.0f} s per run, from each run's "
        "metrics.jsonl; evaluation, teacher precomputation and density estimation not included).",
        "",
        "## Command",
        "",
        "```",
        cmd,
        "```",
        "",
    ])


main = cli_entry(main_)

if __name__ == "__main__":
    sys.exit(main())
