"""Evaluation: fresh students trained on a synthetic set and rolled out, plus baselines and variants.

``evaluate_synthetic`` is the OBD protocol (train like the inner loop, roll out ``tanh(mean)``);
``random_selection``, ``evaluate_bc`` and ``evaluate_teacher`` are the baselines under the same rollout.
"""

from obd.evaluate.architectures import ARCHITECTURES, ResidualStudent, make_eval_student
from obd.evaluate.baselines import evaluate_bc, evaluate_teacher, random_selection
from obd.evaluate.protocol import evaluate_synthetic, rollout_students
from obd.evaluate.students import DEFAULT_LR, OPTIMIZERS, StudentBatch, build_optimizer

__all__ = [
    "ARCHITECTURES", "OPTIMIZERS", "DEFAULT_LR", "ResidualStudent", "make_eval_student", "StudentBatch",
    "build_optimizer", "evaluate_synthetic", "rollout_students", "random_selection", "evaluate_bc",
    "evaluate_teacher",
]
