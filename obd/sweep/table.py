"""The sweep's table and figure, regenerated from ``results.jsonl`` alone.

Each row of ``results.jsonl`` is one finished trial. A cell of the table is the mean +- std over seeds of
the trials' scores (each the mean over its last checkpoints, see :class:`obd.sweep.grid.EvalConfig`),
with the published number beside it when the dataset is one of the paper's nine. Below the table: which
data, teachers, budgets, evaluation settings and compute the numbers came from, and the commands.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from obd.config import config_to_dict
from obd.distill.config import DistillConfig
from obd.distill.density_config import DensityConfig
from obd.distill.registry import OBJECTIVES
from obd.errors import ObdError
from obd.sweep.grid import METHODS, base_method, split_method, task_and_level

LABELS = {"random": "Random selection", **{name: spec.label for name, spec in OBJECTIVES.items()},
          "bc": "BC on the whole dataset", "teacher": "Teacher"}
PAPER_COLUMNS = [f"{env}-{level}" for env in ("halfcheetah", "hopper", "walker2d")
                 for level in ("medium-replay", "medium", "medium-expert")]
#: Lei, Zhang, Tao (NeurIPS 2024), Table 1: D4RL v2, N_syn = 256, Cal-QL teachers (the "teacher" row is Cal-QL
#: on the whole dataset), 5 seeds x the last 5 checkpoints.
PUBLISHED = {method: dict(zip(PAPER_COLUMNS, values)) for method, values in {
    "random": (0.9, 1.8, 2.0, 19.1, 19.2, 11.6, 1.9, 4.9, 6.7),
    "dbc": (2.5, 28.2, 29.0, 12.1, 37.8, 31.1, 6.1, 29.3, 11.7),
    "pbc": (19.4, 30.9, 20.5, 35.6, 25.1, 33.4, 41.5, 33.2, 34.0),
    "avpbc": (35.9, 36.9, 22.0, 40.9, 32.5, 38.7, 55.0, 39.5, 42.1),
    "bc": (14.0, 42.3, 59.8, 22.9, 50.2, 51.7, 14.6, 65.9, 89.6),
    "teacher": (45.8, 47.6, 50.8, 98.0, 56.4, 107.3, 87.4, 84.0, 109.0),
}.items()}


def method_label(method: str) -> str:
    """A method's row label: ``Av-PBC`` for ``avpbc``, ``Av-PBC (student.head=paper)`` for a variant."""
    name, overrides = split_method(method)
    return LABELS[name] + (f" ({', '.join(overrides)})" if overrides else "")


def paper_column(spec: str) -> str | None:
    """``hopper-medium-replay`` for any spelling of that dataset (id, file, Minari id), None for others."""
    found = task_and_level(spec)
    return "-".join(found) if found else None


def read_results(path: Path) -> list[dict[str, Any]]:
    """The rows of ``results.jsonl`` (empty when it does not exist yet)."""
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise ObdError(f"{path}: line {n} is not JSON") from None
    return rows


def _grouped(rows: list[dict[str, Any]]) -> tuple[list[str], list[str], dict[tuple[str, str], list[float]]]:
    """Datasets (the paper's nine in its Table 1 order, then others as they first appear), methods, and the
    seeds' scores of each (dataset, method) cell."""
    spec_of = {r["dataset"]: r["spec"] for r in rows}
    appearance = list(spec_of)

    def order(d: str) -> tuple[int, int]:
        column = paper_column(spec_of[d])
        return (PAPER_COLUMNS.index(column), 0) if column else (len(PAPER_COLUMNS), appearance.index(d))

    datasets = sorted(appearance, key=order)
    present = list(dict.fromkeys(r["method"] for r in rows))
    # each variant right below its plain method, variants in the order they first appear
    methods = [m for name in METHODS for m in sorted((m for m in present if base_method(m) == name),
                                                     key=lambda m: m != name)]
    cells: dict[tuple[str, str], list[float]] = {}
    for r in sorted(rows, key=lambda r: r["seed"]):
        cells.setdefault((r["dataset"], r["method"]), []).append(float(r["normalized_score_mean"]))
    return datasets, methods, cells


def _cell(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{np.mean(values):.1f} ± {np.std(values):.1f}"


def _teacher_label(path: str) -> str:
    """A teacher file as the table names it: a shipped one (``.../obd/tasks/<task>/<file>.pt``, wherever
    obd was installed on the machine that ran the trial) by its place in the package, any other by its path."""
    parts = Path(path).parts
    if len(parts) >= 4 and parts[-4:-2] == ("obd", "tasks"):
        return f"`{'/'.join(parts[-4:])}` (shipped)"
    return f"`{path}`"


def _distinct(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _budget_line(b: dict[str, Any]) -> str:
    student, inner, outer = b.get("student", {}), b.get("inner", {}), b.get("outer", {})
    text = (f"{b.get('outer_steps')} outer steps (checkpoint every {b.get('checkpoint_every')}), "
            f"N_syn {b.get('n_syn')}, "
            f"init {b.get('init')}; student {student.get('depth')}x{student.get('hidden')} {student.get('kind')}; "
            f"inner {inner.get('steps')} steps lr {inner.get('lr')}; "
            f"outer {outer.get('optimizer')} lr {outer.get('lr')}, "
            f"batch {outer.get('batch')}")
    shown = {"objective", "n_syn", "init", "outer_steps", "checkpoint_every", "student.kind", "student.hidden",
             "student.depth", "inner.steps", "inner.lr", "outer.optimizer", "outer.lr", "outer.batch",
             "density.estimator", "density.target_ess", "density.alpha", "density.mode"}
    density = b.get("density")
    if isinstance(density, dict):
        tempering = (f"alpha {density['alpha']}" if density.get("alpha") is not None
                     else f"alpha solved for ESS {density.get('target_ess')}")
        text += f"; density {density.get('estimator')}, {tempering}, mode {density.get('mode')}"
    default = _flat(config_to_dict(DistillConfig(density=DensityConfig())))
    extras = {k: v for k, v in _flat(b).items() if k not in shown and v != default.get(k)}
    return text + ("; " + ", ".join(f"{k} {v}" for k, v in extras.items()) if extras else "")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _build_note(rows: list[dict[str, Any]], dataset: str) -> str:
    """", data fingerprint X" for the build the dataset's rows record (rows made before rows recorded it: '')."""
    found = next((r["dataset_fingerprint"] for r in rows if r["dataset"] == dataset and r.get("dataset_fingerprint")),
                 None)
    return f", data fingerprint {found[:12]}" if found else ""


def _teacher_data_note(rows: list[dict[str, Any]], dataset: str, teacher: str) -> str:
    """Whether ``teacher`` was trained on the build of ``dataset`` the rows ran on (its ``dataset_sha256``
    against the rows' ``dataset_fingerprint``); '' where either is not recorded."""
    for r in rows:
        trained_on, data = r.get("teacher_dataset_fingerprint"), r.get("dataset_fingerprint")
        if r["dataset"] == dataset and r["teacher"] == teacher and trained_on and data:
            return (" (trained on this build)" if trained_on == data else
                    f" (trained on another build of the data: {trained_on[:12]}; its labels and Q were fitted to "
                    "other states)")
    return ""


def render_table(rows: list[dict[str, Any]], commands: list[list[str]] | None = None) -> str:
    """Markdown: the table (methods x datasets, ours beside the paper's), then what produced it."""
    datasets, methods, cells = _grouped(rows)
    spec_of = {r["dataset"]: r["spec"] for r in rows}
    head = "| method | " + " | ".join(f"{d} (ours) | paper" for d in datasets) + " |"
    lines = [head, "| --- |" + " --- | --- |" * len(datasets)]
    for m in methods:
        cols = []
        for d in datasets:
            pub = PUBLISHED.get(m, {}).get(paper_column(spec_of[d]))  # a variant has no published number
            cols += [_cell(cells.get((d, m), [])), "" if pub is None else f"{pub:.1f}"]
        lines.append(f"| {method_label(m)} | " + " | ".join(cols) + " |")
    seeds = sorted({r["seed"] for r in rows})
    distill_rows = [r for r in rows if base_method(r["method"]) in OBJECTIVES]
    out = [
        "# OBD sweep: normalized return (D4RL score: 0 = random policy, 100 = expert)",
        "",
        f"*Ours*: mean ± std over seeds {seeds} (a cell without ± holds one seed). Each distillation trial scores "
        "the mean over its last checkpoints of fresh students trained on each checkpoint's synthetic set; random "
        "selection is scored the same way on its one set. *Paper*: Lei, Zhang, Tao (NeurIPS 2024), Table 1 "
        "(D4RL v2 data, Cal-QL teachers, 5 seeds x the last 5 of 20 checkpoints, 10 students x 10 episodes).",
        "",
        *lines,
        "",
        *render_iqm(rows),
        "## What ours used",
        "",
        "Data:",
        *[f"- `{d}`: `{spec_of[d]}`, task {r['task']}, {r['dataset_size']:,} transitions{_build_note(rows, d)}"
          for d, r in {r["dataset"]: r for r in rows}.items()],
        "",
        "Teachers:",
        *[f"- `{d}`: {_teacher_label(t)}{_teacher_data_note(rows, d, t)}"
          for d, t in _distinct([(r["dataset"], r["teacher"]) for r in rows if r["teacher"]])],
        "",
        "Budgets:",
        # grouped by the rendered line: rows recorded before a key was kept in budgets read the same
        *[f"- {ms}: {line}" for line, ms in _grouped_by(
            distill_rows, lambda r: _budget_line({k: v for k, v in r["budget"].items() if k != "objective"}))],
        "",
        "Evaluation:",
        *[f"- {ms}: {_eval_line(e)}" for e, ms in _grouped_by(
            rows, lambda r: {k: v for k, v in r["eval"].items() if k != "seed"})],
        "",
        "Compute: " + _compute_line(rows),
    ]
    if commands:
        out += ["", "Commands (in order):", "", "```", *(shlex.join(c) for c in commands), "```"]
    return "\n".join(out) + "\n"


def _students_by_seed(rows: list[dict[str, Any]]) -> tuple[list[list[float]], list[list[float]]] | None:
    """(scores per seed: every student of every evaluated checkpoint, scores per set: per checkpoint) of one
    cell's rows; None when a row predates per-student scores in ``results.jsonl``."""
    by_seed, by_set = [], []
    for r in sorted(rows, key=lambda r: r["seed"]):
        sets = [c.get("per_student") for c in r.get("checkpoints", [])]
        if not sets or any(s is None for s in sets):
            return None
        by_seed.append([x for s in sets for x in s])
        by_set += sets
    return by_seed, by_set


def render_iqm(rows: list[dict[str, Any]]) -> list[str]:
    """The robust statistics section: per cell the interquartile mean of all students' scores with its 95%
    stratified-bootstrap interval (:func:`obd.evaluate.stats.iqm`) and the spread between students of one
    set; per method the IQM over datasets of the trials' scores (:func:`obd.evaluate.stats.aggregate_iqm`)
    where it ran every dataset with the same seeds, and its mean share of the teacher's score."""
    from obd.evaluate.stats import aggregate_iqm, iqm, student_spread

    datasets, methods, cells = _grouped(rows)
    by_cell: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        by_cell.setdefault((r["dataset"], r["method"]), []).append(r)
    teacher = {d: float(np.mean(cells[(d, "teacher")])) for d in datasets if (d, "teacher") in cells}
    lines = []
    for m in methods:
        cols = []
        for d in datasets:
            found = _students_by_seed(by_cell.get((d, m), []))
            if not by_cell.get((d, m)) or found is None:
                cols.append("")
                continue
            cols.append(f"{iqm(found[0])} ± {student_spread(found[1]):.1f}")
        seeds = [sorted(r["seed"] for r in by_cell.get((d, m), [])) for d in datasets]
        overall = ""
        if all(seeds) and all(s == seeds[0] for s in seeds):
            matrix = np.array([[float(r["normalized_score_mean"])
                                for r in sorted(by_cell[(d, m)], key=lambda r: r["seed"])] for d in datasets]).T
            overall = str(aggregate_iqm(matrix))
        share = ""
        if m != "teacher" and teacher and all((d, m) in cells for d in teacher):
            share = f"{100 * np.mean([np.mean(cells[(d, m)]) / teacher[d] for d in teacher]):.0f}%"
        lines.append(f"| {method_label(m)} | " + " | ".join(cols) + f" | {overall} | {share} |")
    return [
        "## Interquartile mean and the spread between students",
        "",
        "Each cell: the interquartile mean (IQM) of every student's score (seeds x evaluated checkpoints x "
        "students) with its 95% stratified-bootstrap interval ([rliable](https://github.com/google-research/rliable), "
        "students resampled within each seed), ± the spread between students trained on the same set (the "
        "standard deviation over students, averaged over sets). *All*: the IQM over datasets of the trials' scores "
        "with its interval (seeds resampled within each dataset), where the method ran every dataset with the same "
        "seeds. *Of teacher*: the mean over datasets of the method's mean score divided by the teacher's.",
        "",
        "| method | " + " | ".join(datasets) + " | all | of teacher |",
        "| --- |" + " --- |" * (len(datasets) + 2),
        *lines,
        "",
    ]


def _eval_line(e: dict[str, Any]) -> str:
    if "arch" not in e:
        text = "the teacher's deterministic action"
    else:
        batch = f"minibatches of {e['batch_size']}" if e.get("batch_size") else "the full batch"
        text = (f"{e.get('students')} fresh {e.get('arch')} student(s), {e.get('steps')} {e.get('optimizer')} steps at "
                f"lr {e.get('lr')} on {batch}"
                + (f", mean over the last {e['last_k']} checkpoints" if "last_k" in e else ""))
    return (text + f"; {e.get('episodes')} episodes each"
            + (f", capped at {e['max_steps']} steps" if e.get("max_steps") else ""))


def _grouped_by(rows: list[dict[str, Any]], key: Any) -> list[tuple[Any, str]]:
    """Distinct ``key(row)`` values in order of appearance, each with the labels of the methods that had it."""
    groups: list[tuple[Any, list[str]]] = []
    for r in rows:
        k = key(r)
        for value, methods in groups:
            if value == k:
                if r["method"] not in methods:
                    methods.append(r["method"])
                break
        else:
            groups.append((k, [r["method"]]))
    return [(value, ", ".join(method_label(m) for m in methods)) for value, methods in groups]


def _compute_line(rows: list[dict[str, Any]]) -> str:
    nodes = {r.get("ray_node_id") for r in rows if r.get("ray_node_id")}
    devices = sorted({r.get("device", "?") for r in rows})
    return (f"{len(rows)} trials on {len(nodes)} Ray node(s), devices {devices}, "
            f"{sum(r['seconds'] for r in rows) / 60:.1f} min of trial wall time in all, of which "
            f"{sum(r.get('distill_seconds', 0) for r in rows) / 60:.1f} min of outer steps (each trial's own "
            "clock; trials ran side by side).")


def plot_table(rows: list[dict[str, Any]]) -> Any:
    """Grouped bars: datasets on x, one bar per method (mean, error bar std over seeds), paper values as x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets, methods, cells = _grouped(rows)
    spec_of = {r["dataset"]: r["spec"] for r in rows}
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(datasets) * max(1, len(methods)) / 2), 4))
    for j, m in enumerate(methods):
        xs = [i + (j - (len(methods) - 1) / 2) * width for i in range(len(datasets))]
        ys = [np.mean(cells[(d, m)]) if (d, m) in cells else np.nan for d in datasets]
        es = [np.std(cells[(d, m)]) if (d, m) in cells else 0.0 for d in datasets]
        ax.bar(xs, ys, width, yerr=es, capsize=2, label=method_label(m))
        pub = [PUBLISHED.get(m, {}).get(paper_column(spec_of[d]), np.nan) for d in datasets]
        ax.scatter(xs, pub, marker="x", color="black", zorder=3)
    ax.set_xticks(range(len(datasets)), datasets, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("normalized return")
    ax.set_title("Ours (bars: mean ± std over seeds) and the paper's (x)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, ncol=2)
    return fig


def write_outputs(out: Path, rows: list[dict[str, Any]], commands: list[list[str]] | None = None) -> None:
    """``OUT/table.md`` and ``OUT/table.png`` from ``rows``, each written atomically."""
    from obd.io import save_figure, write_text_atomic

    if not rows:
        return
    write_text_atomic(out / "table.md", render_table(rows, commands))
    save_figure(plot_table(rows), out / "table.png")
