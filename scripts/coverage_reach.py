"""How far does state coverage's noise reach beyond a dataset, and how much does the teacher's action change there?

    python scripts/coverage_reach.py --dataset hopper-medium-v5 --teacher hopper-medium-v5 [--scale 0.3 --states 2000]

In normalized state space (the distillation's), for ``--states`` random dataset states s: the distance from s to
its nearest *other* dataset state (how densely the data cover their own neighbourhood), the distance from the
perturbed state s + scale * eps (``coverage.kind=gaussian``, isotropic) to the nearest dataset state (how far
coverage leaves the data), their ratio, and the teacher's mean squared action change between s and the
perturbed state. The neighbours are searched among at most ``--reference`` dataset states (scikit-learn's
NearestNeighbors). One JSON line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from obd.errors import ObdError, cli_entry


def coverage_reach(states: np.ndarray, scale: float, n: int, reference: int, seed: int = 0,
                   act: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, float]:
    """``states`` (N, obs) normalized dataset states -> the medians of the data's nearest-neighbour gap and of
    the perturbed states' distance to the data (normalized units), their ratio, and, with ``act`` (raw or
    normalized states in, (n, act) out, the caller's choice), the mean squared change of ``act`` under the
    perturbation."""
    if not 0 < n <= len(states):
        raise ObdError(f"--states: expected 1 to {len(states)}, got {n}")
    rng = np.random.default_rng(seed)
    ref = states[rng.choice(len(states), min(len(states), reference), replace=False)]
    nn = NearestNeighbors(n_neighbors=2).fit(ref)
    query = states[rng.choice(len(states), n, replace=False)]
    dist, _ = nn.kneighbors(query)
    # a query drawn into the reference finds itself first; one outside it does not
    gap = np.where(dist[:, 0] < 1e-9, dist[:, 1], dist[:, 0])
    perturbed = query + scale * rng.standard_normal(query.shape)
    reach = nn.kneighbors(perturbed, n_neighbors=1)[0][:, 0]
    out = {"data_gap": float(np.median(gap)), "perturbed_distance": float(np.median(reach))}
    out["ratio"] = out["perturbed_distance"] / max(out["data_gap"], 1e-12)
    if act is not None:
        out["action_change"] = float(((act(query) - act(perturbed)) ** 2).mean())
    return out


@cli_entry
def main(argv: list[str] | None = None) -> int:
    from obd.assets import resolve_asset
    from obd.data import load_dataset
    from obd.teachers import Teacher

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--teacher", required=True, help="teacher file or shipped name")
    p.add_argument("--scale", type=float, default=0.3)
    p.add_argument("--states", type=int, default=2000)
    p.add_argument("--reference", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    ds = load_dataset(a.dataset)
    teacher = Teacher.load(resolve_asset("teacher", a.teacher))
    norm = ds.normalizer

    def act(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return teacher.act(np.asarray(norm.denormalize(z), dtype=np.float32)).cpu().numpy()

    states = np.asarray(norm.normalize(ds.observations), dtype=np.float64)
    row = coverage_reach(states, a.scale, a.states, a.reference, a.seed, act)
    print(json.dumps({"dataset": a.dataset, "scale": a.scale, **{k: round(v, 4) for k, v in row.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
