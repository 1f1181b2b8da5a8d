"""Offline behavior distillation: synthetic sets learned by bi-level optimization (DBC, PBC, Av-PBC, SDW).

    syn = DistillConfig(objective="avpbc", n_syn=256).create(dataset, teacher).fit(outer_steps=1000)
"""

from obd.distill.engine import DistillConfig, Distiller, InnerConfig, OuterConfig, StudentConfig
from obd.distill.init import INITS
from obd.distill.objectives import OBJECTIVES
from obd.distill.synthetic import SyntheticDataset

load_synthetic = SyntheticDataset.load

__all__ = ["DistillConfig", "Distiller", "StudentConfig", "InnerConfig", "OuterConfig", "SyntheticDataset",
           "load_synthetic", "OBJECTIVES", "INITS"]
