"""Evaluation: fresh students trained on a synthetic set and rolled out, plus baselines and variants.

``evaluate_synthetic`` is the OBD protocol (train the distillation's own student like its inner loop, roll
out ``tanh(mean)``); ``random_selection``, ``evaluate_bc`` and ``evaluate_teacher`` are the baselines under
the same rollout. Every result carries the normalized score with the mean episode length and forward
progress beside it, and the student record (``student``) saying which student was trained and how.
Names are imported on first use, so ``obd evaluate --help`` does not import torch.
"""

from obd.lazy import lazy_exports

_MODULES = {
    "obd.distill.student_config": ("StudentConfig",),
    "obd.evaluate.architectures": ("ARCHITECTURES", "ResidualStudent", "make_eval_student", "parse_arch"),
    "obd.evaluate.baselines": ("evaluate_bc", "random_selection"),
    "obd.teachers.evaluation": ("evaluate_teacher",),
    "obd.evaluate.protocol": ("evaluate_synthetic", "rollout_students", "train_students"),
    "obd.evaluate.student_spec": ("BC_STUDENT", "PAPER_STUDENT", "StudentSpec", "config_student",
                                  "distilled_student", "resolve_student"),
    "obd.evaluate.students": ("DEFAULT_LR", "OPTIMIZERS", "StudentBatch", "build_optimizer"),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
