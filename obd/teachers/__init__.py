"""Teachers: near-expert policies (and critics) from offline RL on the real dataset, for PBC and Av-PBC.

``Teacher`` is the interface the distillation objectives use; ``TD3BC``, ``IQL`` and ``CalQL`` train one
(``train_teacher``), ``import_corl`` converts the CORL Cal-QL checkpoints the OBD paper used. The command
line is ``obd teacher`` (``python -m obd.teachers``).

Names are imported on first use, so ``obd teacher --help`` does not import torch.
"""

from obd.lazy import lazy_exports

_MODULES = {
    "obd.teachers.base": ("Teacher",),
    "obd.teachers.protocol": ("TeacherLike",),
    "obd.teachers.td3bc": ("TD3BC", "TD3BCConfig"),
    "obd.teachers.iql": ("IQL", "IQLConfig"),
    "obd.teachers.calql": ("CalQL", "CalQLConfig"),
    "obd.teachers.training": ("RunConfig", "train_teacher"),
    "obd.teachers.evaluation": ("evaluate_teacher",),
    "obd.teachers.corl": ("import_corl",),
    "obd.teachers.algos": ("ALGOS",),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
