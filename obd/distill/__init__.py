"""Offline behavior distillation: synthetic sets learned by bi-level optimization (DBC, PBC, Av-PBC, SDW).

    syn = DistillConfig(objective="avpbc", n_syn=256).create(dataset, teacher).fit(outer_steps=1000)
    syn = start_run(DistillConfig(...), "runs/x", dataset, teacher)   # run folder, checkpoints, resumable

``DistillConfig`` holds hyperparameters only; the dataset and teacher are given as objects (or specs) to
``create``/``start_run``, and a run folder records their specs beside the config (``RunInputs``).

Names are imported on first use, so ``obd distill --help`` does not import torch.
"""

from obd.lazy import lazy_exports

_EXPORTS = {
    "DistillConfig": "obd.distill.config", "Distiller": "obd.distill.engine",
    "StudentConfig": "obd.distill.student_config",
    "InnerConfig": "obd.distill.config", "OuterConfig": "obd.distill.config", "RunInputs": "obd.distill.config",
    "load_run_config": "obd.distill.config", "INITS": "obd.distill.init",
    "OBJECTIVES": "obd.distill.registry", "resume_run": "obd.distill.run:resume",
    "start_run": "obd.distill.run:start", "SyntheticDataset": "obd.distill.synthetic",
    "load_synthetic": "obd.distill.synthetic:SyntheticDataset.load",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
