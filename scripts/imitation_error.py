"""How well do a run's synthetic sets teach the teacher's actions, checkpoint by checkpoint, and where not?

    python scripts/imitation_error.py RUN                     # the run's own dataset, teacher and beta
    python scripts/imitation_error.py RUN --dataset FILE --teacher T.pt --states 50000 --students 10

For every checkpoint of the run (``DistillFolder.checkpoint_sets``) it trains ``--students`` fresh students on the
set exactly as its distillation's inner loop did (the set's own student and steps) and measures, on
``--states`` held-out real states drawn uniformly from the dataset, the squared error
e(s) = mean_j (tanh(mu(s))_j - a*(s)_j)^2 to the teacher's deterministic action a*, averaged over students:

* ``mse``: the mean of e(s) (PBC's outer loss with a deterministic teacher);
* ``avpbc``: the mean of beta Q(s, a*) e(s) (Av-PBC's outer loss, with the run's beta);
* ``by_q_quartile``: the mean of e(s) within each quarter of the states ranked by the teacher's Q, lowest first;
* ``by_density_quartile``: the same within each quarter of the states ranked by their log-density, rarest
  first, under one density fit on all of the dataset's normalized states (``--density``, obd.distill.density
  with its defaults and ``--seed``), so an SDW run and an Av-PBC run on the same data share the quarters: it
  shows whether SDW's weighting bought accuracy on rare states and what it cost on common ones;
* ``out_of_bounds``: the share of the set's action entries outside [-1, 1].

One JSON line per checkpoint. No rollouts: this is what the outer objective sees, for comparison with the
checkpoints' rollout scores (``obd evaluate synthetic`` or a sweep's ``eval_cache.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from obd.assets import resolve_asset
from obd.data import load_dataset
from obd.distill.config import load_run_config
from obd.distill.density import log_density
from obd.distill.density_config import ESTIMATORS, DensityConfig
from obd.distill.folder import DistillFolder
from obd.distill.objectives import build_objective
from obd.distill.synthetic import SyntheticDataset
from obd.errors import ObdError, cli_entry
from obd.evaluate.protocol import train_students
from obd.evaluate.student_spec import distilled_student
from obd.teachers import Teacher


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="an obd.distill run folder (with checkpoints/)")
    p.add_argument("--dataset", default=None, help="dataset spec (default: the run's, from its config.yaml)")
    p.add_argument("--teacher", default=None, help="teacher file or shipped name (default: the run's)")
    p.add_argument("--states", type=int, default=20_000)
    p.add_argument("--students", type=int, default=10)
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--last", type=int, default=None, metavar="K",
                   help="only the last K checkpoints (a sweep scores its last 5); default all")
    p.add_argument("--density", default="gmm", choices=ESTIMATORS,
                   help="density estimator for by_density_quartile (default gmm)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.last is not None and args.last < 1:
        raise ObdError(f"--last: expected an integer >= 1, got {args.last}")
    torch.set_num_threads(args.threads)

    folder = DistillFolder(args.run)
    checkpoints = folder.checkpoint_sets()
    if not checkpoints:
        raise ObdError(f"{folder.checkpoints_dir}: no checkpoints (step_XXXXXXX.hdf5)")
    if args.last is not None:
        checkpoints = checkpoints[-args.last:]
    cfg, inputs = load_run_config(folder.config_path)
    ds = load_dataset(args.dataset or inputs.dataset)
    teacher = Teacher.load(resolve_asset("teacher", args.teacher or inputs.teacher))
    idx = np.random.default_rng(args.seed).choice(len(ds.observations), min(args.states, len(ds.observations)),
                                                  replace=False)
    obs = torch.as_tensor(ds.observations[idx], dtype=torch.float32)
    obj = build_objective("avpbc", ds.observations[idx], ds.actions[idx], teacher, torch.device("cpu"),
                          beta=cfg.beta, progress=False)
    # the deterministic action a*: a tanh-Gaussian teacher's objective keeps its mean, not the action
    a_star = obj.teacher_action if obj.teacher_action is not None else torch.tanh(obj.teacher_mean)
    q = obj.q_values.reshape(-1)
    states = ds.normalizer.normalize(obs)
    quartile = _quartiles(q)
    all_states = ds.normalizer.normalize(torch.as_tensor(ds.observations, dtype=torch.float32))
    log_p = log_density(all_states, DensityConfig(estimator=args.density, seed=args.seed), progress=False)
    density_quartile = _quartiles(torch.as_tensor(log_p[idx]))
    for path in checkpoints:
        syn = SyntheticDataset.load(path)
        spec = distilled_student(syn.metadata, str(path))
        if spec is None:
            raise ObdError(f"{path}: no distillation student in its metadata")
        batch, _, _ = train_students(spec, syn.states, syn.actions, args.students, args.seed)
        with torch.no_grad():
            mean, _ = batch.forward(states)
            err = ((torch.tanh(mean) - a_star) ** 2).mean(-1).mean(0)
        print(json.dumps({
            "checkpoint": path.name, "mse": round(err.mean().item(), 5),
            "avpbc": round((obj.beta * q * err).mean().item(), 5),
            "by_q_quartile": [round(err[quartile == b].mean().item(), 5) for b in range(4)],
            "by_density_quartile": [round(err[density_quartile == b].mean().item(), 5) for b in range(4)],
            "out_of_bounds": round((syn.actions.abs() > 1).float().mean().item(), 4),
        }), flush=True)
    return 0


def _quartiles(values: torch.Tensor) -> torch.Tensor:
    """The quarter (0 = lowest) of each of ``values`` (M,) among them, as (M,) int64."""
    values = values.double()
    return torch.bucketize(values, torch.quantile(values, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)))


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
