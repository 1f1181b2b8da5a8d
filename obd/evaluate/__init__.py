"""Evaluation: fresh students trained on a synthetic set and rolled out, plus baselines and variants.

``evaluate_synthetic`` is the OBD protocol (train like the inner loop, roll out ``tanh(mean)``);
``random_selection``, ``evaluate_bc`` and ``evaluate_teacher`` are the baselines under the same rollout.
Names are imported on first use, so ``obd evaluate --help`` does not import torch.
"""

from obd.lazy import lazy_exports

_EXPORTS = {
    "ARCHITECTURES": "obd.evaluate.architectures", "ResidualStudent": "obd.evaluate.architectures",
    "make_eval_student": "obd.evaluate.architectures", "evaluate_bc": "obd.evaluate.baselines",
    "evaluate_teacher": "obd.evaluate.baselines", "random_selection": "obd.evaluate.baselines",
    "evaluate_synthetic": "obd.evaluate.protocol", "rollout_students": "obd.evaluate.protocol",
    "DEFAULT_LR": "obd.evaluate.students", "OPTIMIZERS": "obd.evaluate.students", "StudentBatch": "obd.evaluate.students",
    "build_optimizer": "obd.evaluate.students",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
