"""Teachers: near-expert policies (and critics) from offline RL on the real dataset, for PBC and Av-PBC.

``Teacher`` is the interface the distillation objectives use; ``TD3BC`` and ``IQL`` train one
(``train_teacher``), ``import_corl`` converts the CORL Cal-QL checkpoints the OBD paper used.
"""

from obd.teachers.base import Teacher
from obd.teachers.corl import import_corl
from obd.teachers.iql import IQL, IQLConfig
from obd.teachers.protocol import TeacherLike
from obd.teachers.td3bc import TD3BC, TD3BCConfig
from obd.teachers.training import RunConfig, evaluate_teacher, train_teacher

ALGOS = {"td3bc": (TD3BC, TD3BCConfig), "iql": (IQL, IQLConfig)}

__all__ = ["Teacher", "TeacherLike", "TD3BC", "TD3BCConfig", "IQL", "IQLConfig", "RunConfig", "train_teacher",
           "evaluate_teacher", "import_corl", "ALGOS"]
