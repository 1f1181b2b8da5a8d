"""Teachers: near-expert policies (and critics) from offline RL on the real dataset, for PBC and Av-PBC.

``Teacher`` is the interface the distillation objectives use; ``TD3BC``, ``IQL`` and ``CalQL`` train one
(``train_teacher``), ``import_corl`` converts the CORL Cal-QL checkpoints the OBD paper used. The command
line is ``obd teacher`` (``python -m obd.teachers``).

Names are imported on first use, so ``obd teacher --help`` does not import torch.
"""

from obd.lazy import lazy_exports

_EXPORTS = {
    "Teacher": "obd.teachers.base", "TeacherLike": "obd.teachers.protocol",
    "TD3BC": "obd.teachers.td3bc", "TD3BCConfig": "obd.teachers.td3bc",
    "IQL": "obd.teachers.iql", "IQLConfig": "obd.teachers.iql",
    "CalQL": "obd.teachers.calql", "CalQLConfig": "obd.teachers.calql",
    "RunConfig": "obd.teachers.training", "train_teacher": "obd.teachers.training",
    "evaluate_teacher": "obd.teachers.training", "import_corl": "obd.teachers.corl",
    "ALGOS": "obd.teachers.algos",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
