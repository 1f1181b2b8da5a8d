"""Evaluation: fresh students trained on a synthetic set and rolled out, plus baselines and variants.

``evaluate_synthetic`` is the OBD protocol (train the distillation's own student like its inner loop, roll
out ``tanh(mean)``); ``random_selection``, ``evaluate_bc`` and ``evaluate_teacher`` are the baselines under
the same rollout. Every result carries the normalized score with the mean episode length and forward
progress beside it, and the student record (``student``) saying which student was trained and how.
"""

from obd.evaluate.architectures import ARCHITECTURES, ResidualStudent, StudentArch, make_eval_student, parse_arch
from obd.evaluate.baselines import evaluate_bc, evaluate_teacher, random_selection
from obd.evaluate.protocol import evaluate_synthetic, rollout_students, train_students
from obd.evaluate.student_spec import (BC_STUDENT, PAPER_STUDENT, StudentSpec, config_student, distilled_student,
                                      resolve_student)
from obd.evaluate.students import DEFAULT_LR, OPTIMIZERS, StudentBatch, build_optimizer

__all__ = [
    "ARCHITECTURES", "OPTIMIZERS", "DEFAULT_LR", "ResidualStudent", "StudentArch", "make_eval_student", "parse_arch",
    "StudentBatch", "build_optimizer", "StudentSpec", "PAPER_STUDENT", "BC_STUDENT", "distilled_student",
    "config_student", "resolve_student", "evaluate_synthetic", "rollout_students", "train_students", "random_selection",
    "evaluate_bc", "evaluate_teacher",
]
