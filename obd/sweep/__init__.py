"""Sweeps: grids of (dataset, method, seed) trials run as Ray tasks, resumable, scored by the paper's protocol.

The top layer of obd (nothing else imports it): :mod:`obd.sweep.grid` builds and checks the trials,
:mod:`obd.sweep.trial` runs one (an ordinary ``obd.distill`` run folder, then ``obd.report``'s checkpoint
evaluation), :mod:`obd.sweep.driver` hands them to Ray and records results, :mod:`obd.sweep.table` writes
the table and figure from ``results.jsonl``. The command line is ``python -m obd.sweep``.
"""

from obd.sweep.grid import METHODS, EvalConfig, Trial, build_grid, load_settings, shipped_teacher
from obd.sweep.driver import run_sweep
from obd.sweep.table import render_table
from obd.sweep.trial import run_trial

__all__ = ["METHODS", "EvalConfig", "Trial", "build_grid", "load_settings", "shipped_teacher", "run_sweep",
           "run_trial", "render_table"]
