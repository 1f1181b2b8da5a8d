"""The outer objectives, declared once: each one's config name, its name in the papers and what it needs.

Everything that lists or tests objectives reads :data:`OBJECTIVES`: the values ``DistillConfig.objective``
accepts (:data:`ObjectiveName`), whether a run needs a teacher, which objectives weight the error by the
teacher's Q (:mod:`obd.distill.objectives`), and the distillation methods of a sweep. A new objective is
one line here plus its targets in :func:`obd.distill.objectives.build_objective`.

This module imports nothing (no torch), so config checks and ``--help`` stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ObjectiveSpec:
    """``name``: the config value; ``label``: the papers' name; ``needs_teacher``: False when the targets are
    the dataset's own actions; ``q_weighted``: each state's error is weighted by beta * Q(s, a*)."""

    name: str
    label: str
    needs_teacher: bool
    q_weighted: bool


OBJECTIVES: dict[str, ObjectiveSpec] = {spec.name: spec for spec in (
    ObjectiveSpec("dbc", "DBC", needs_teacher=False, q_weighted=False),
    ObjectiveSpec("pbc", "PBC", needs_teacher=True, q_weighted=False),
    ObjectiveSpec("avpbc", "Av-PBC", needs_teacher=True, q_weighted=True),
    # Av-PBC with state-density weights on top (obd.distill.sdw)
    ObjectiveSpec("sdw", "SDW", needs_teacher=True, q_weighted=True),
)}

#: the values of ``DistillConfig.objective`` (checked by ``DistillConfig.validate`` like every ``Literal``)
ObjectiveName = Literal[tuple(OBJECTIVES)]
