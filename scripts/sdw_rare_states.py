"""Which states does SDW's weighting favour? Their place in the dataset and their value to the teacher.

    python scripts/sdw_rare_states.py halfcheetah-medium-replay-v5 halfcheetah-medium-v5 [--density gmm]

For each dataset: log p(s) of every state under one density fit on all its normalized states
(obd.distill.density, ``--density`` with its defaults and ``--seed``), and on ``--states`` of them drawn
uniformly, the teacher's Q(s, a*(s)) (the dataset's shipped teacher, or ``--teacher``). Prints one JSON
line per dataset: the Spearman correlation of log p with the transition's position in the file (0 = first,
1 = last: for a medium-replay buffer, the order in which the behavior policy's training visited them) and
with Q, and the rarest quarter's mean position and mean Q beside the rest's. SDW gives the rarest states
the most weight, so on data where they are the early, low-value states of a replay buffer it spends the
outer loop on states the teacher's good behavior never visits.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from scipy.stats import spearmanr

from obd.assets import resolve_asset
from obd.data import load_dataset
from obd.distill.density import log_density
from obd.distill.density_config import ESTIMATORS, DensityConfig
from obd.teachers import Teacher


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", nargs="+", help="dataset specs")
    p.add_argument("--teacher", default=None, help="teacher file (default: each dataset's shipped teacher)")
    p.add_argument("--density", default="gmm", choices=ESTIMATORS)
    p.add_argument("--states", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for spec in args.datasets:
        ds = load_dataset(spec)
        n = len(ds.observations)
        states = ds.normalizer.normalize(torch.as_tensor(ds.observations, dtype=torch.float32))
        log_p = log_density(states, DensityConfig(estimator=args.density, seed=args.seed), progress=False)
        teacher = Teacher.load(resolve_asset("teacher", args.teacher or spec))
        idx = np.sort(np.random.default_rng(args.seed).choice(n, min(n, args.states), replace=False))
        obs = ds.observations[idx]
        with torch.no_grad():
            q = torch.as_tensor(teacher.q(obs, teacher.act(obs))).reshape(-1).double().numpy()
        position = idx / max(1, n - 1)
        rare = log_p[idx] <= np.quantile(log_p, 0.25)
        print(json.dumps({
            "dataset": spec, "states": int(idx.size), "density": args.density,
            "spearman_logp_position": round(float(spearmanr(log_p[idx], position)[0]), 3),
            "spearman_logp_q": round(float(spearmanr(log_p[idx], q)[0]), 3),
            "rarest_quarter_position": round(float(position[rare].mean()), 3),
            "rest_position": round(float(position[~rare].mean()), 3),
            "rarest_quarter_q": round(float(q[rare].mean()), 2), "rest_q": round(float(q[~rare].mean()), 2),
        }), flush=True)


if __name__ == "__main__":
    main()
