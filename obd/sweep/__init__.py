"""Sweeps: grids of (dataset, method, seed) trials run as Ray tasks, resumable, scored by the paper's protocol.

The top layer of obd (nothing else imports it): :mod:`obd.sweep.grid` builds and checks the trials,
:mod:`obd.sweep.trial` runs one (an ordinary ``obd.distill`` run folder, then ``obd.report``'s checkpoint
evaluation), :mod:`obd.sweep.driver` hands them to Ray and records results, :mod:`obd.sweep.table` writes
the table and figure from ``results.jsonl``. The command line is ``obd sweep`` (``python -m obd.sweep``).
Names are imported on first use, so ``obd sweep --help`` does not import torch.
"""

from obd.lazy import lazy_exports

_EXPORTS = {
    "METHODS": "obd.sweep.grid", "EvalConfig": "obd.sweep.grid", "Trial": "obd.sweep.grid",
    "build_grid": "obd.sweep.grid", "load_settings": "obd.sweep.grid", "shipped_teacher": "obd.sweep.grid",
    "run_sweep": "obd.sweep.driver", "run_trial": "obd.sweep.trial", "render_table": "obd.sweep.table",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
