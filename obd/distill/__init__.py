"""Offline behavior distillation: synthetic sets learned by bi-level optimization (DBC, PBC, Av-PBC, SDW).

    syn = DistillConfig(objective="avpbc", n_syn=256).create(dataset, teacher).fit(outer_steps=1000)
    syn = start_run(DistillConfig(...), "runs/x", dataset, teacher)   # run folder, checkpoints, resumable
"""

from obd.distill.engine import DistillConfig, Distiller, InnerConfig, OuterConfig, StudentConfig
from obd.distill.init import INITS
from obd.distill.objectives import OBJECTIVES
from obd.distill.run import resume as resume_run
from obd.distill.run import start as start_run
from obd.distill.synthetic import SyntheticDataset

load_synthetic = SyntheticDataset.load

__all__ = ["DistillConfig", "Distiller", "StudentConfig", "InnerConfig", "OuterConfig", "SyntheticDataset",
           "load_synthetic", "start_run", "resume_run", "OBJECTIVES", "INITS"]
