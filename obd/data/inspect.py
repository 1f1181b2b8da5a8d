"""``python -m obd.data inspect SPEC [--json]``: what a dataset holds (counts, returns, scores, ranges)."""

from __future__ import annotations

import argparse
import json

import numpy as np

from obd.data.loader import load_dataset


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in values) + "]"


def format_summary(summary: dict) -> str:
    """Human-readable rendering of :meth:`TransitionDataset.summary`."""
    lines = [f"source       {summary['source']}", f"task         {summary['task']}",
             f"transitions  {summary['transitions']}  (terminals {summary['terminals']})",
             f"episodes     {summary['episodes']}  (mean length {summary['episode_length_mean']:.1f})",
             f"dims         obs {summary['obs_dim']}, act {summary['act_dim']}",
             f"return       mean {summary['return_mean']:.2f}  std {summary['return_std']:.2f}  "
             f"min {summary['return_min']:.2f}  max {summary['return_max']:.2f}"]
    if "normalized_score_mean" in summary:
        lines.append(f"normalized   mean {summary['normalized_score_mean']:.2f}  "
                     f"std {summary['normalized_score_std']:.2f}  min {summary['normalized_score_min']:.2f}  "
                     f"max {summary['normalized_score_max']:.2f}")
    lines += [f"obs min      {_fmt(summary['obs_min'])}", f"obs max      {_fmt(summary['obs_max'])}",
              f"act min      {_fmt(summary['act_min'])}", f"act max      {_fmt(summary['act_max'])}",
              f"norm mean    {_fmt(summary['normalizer']['mean'])}",
              f"norm std     {_fmt(summary['normalizer']['std'])}"]
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="summarize a dataset (D4RL file/id or Minari id/folder)")
    p.add_argument("spec", help="path to a .hdf5 file, a D4RL id, a Minari id or a Minari dataset folder")
    p.add_argument("--task", default=None, help="task name when it cannot be inferred")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    from obd.cli import add_common

    add_common(p, out=None, threads=False, device=False, seed=False, progress=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ds = load_dataset(args.spec, task=args.task)
    summary = ds.summary()
    if args.json:
        print(json.dumps(summary, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
    else:
        print(format_summary(summary))
    return 0
