"""What the value-aware action error (``value_metric``) weighs on a dataset under its teacher's critic.

    python scripts/value_metric_stats.py --dataset hopper-medium-v5 --teacher hopper-medium-v5 [--step 0.3]

For ``--states`` random dataset states s: the critic's curvature m_j(s) along each action dimension at the
teacher's action (:func:`obd.distill.value_metric.q_curvature`), and of the metric M with ``--floor``
(:func:`obd.distill.value_metric.value_metric`): its mean per action dimension, the quantiles of a state's
weight (the mean of M over dimensions), the effective sample size (sum w)^2 / (n sum w^2) of those state
weights, the share of (state, dimension) pairs with no curvature, and the correlation of a state's weight
with the teacher's Q there (Av-PBC's weight is beta Q). ``--noise 0.3,1,2``: also the mean and median over
states of the curvature (averaged over dimensions, the ``trace`` metric's state weight before normalizing) at
the same states moved by Gaussian noise of each standard deviation in normalized space (state coverage's
perturbation), to see how the critic's curvature changes off the data. One JSON line.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from obd.distill.value_metric import q_curvature, value_metric
from obd.errors import ObdError, cli_entry


def metric_stats(curvature: torch.Tensor, q: torch.Tensor, floor: float) -> dict[str, object]:
    """Summary of the metric for ``curvature`` m (n, act) (:func:`q_curvature`) and Q (n,) at the same states."""
    metric = value_metric(curvature, floor)
    w = metric.mean(1).double()
    return {
        "dimension_weight": [round(float(x), 3) for x in metric.mean(0)],
        "state_weight_quantiles_5_25_50_75_95": [round(float(x), 3) for x in
                                                  np.percentile(w.numpy(), [5, 25, 50, 75, 95])],
        "state_weight_ess": round(float(w.sum() ** 2 / (len(w) * (w ** 2).sum())), 3),
        "zero_curvature_share": round(float((curvature == 0).float().mean()), 3),
        # undefined (None) when either is constant
        "corr_state_weight_q": (round(float(np.corrcoef(w.numpy(), q.double().numpy())[0, 1]), 3)
                                if float(w.std()) > 0 and float(q.double().std()) > 0 else None),
    }


def curvature_off_data(teacher: object, raw: torch.Tensor, normalizer: object, sigmas: list[float], step: float,
                       seed: int) -> dict[str, dict[str, float]]:
    """{sigma: mean and median over the n states of mean_j m_j} at ``raw`` (n, obs) moved by N(0, sigma^2) in
    normalized space (sigma 0: the states themselves), the teacher acting at each moved state."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.as_tensor(normalizer.normalize(raw))
    out = {}
    for sigma in [0.0, *sigmas]:
        moved = torch.as_tensor(normalizer.denormalize(z + sigma * torch.randn(z.shape, generator=generator)))
        with torch.no_grad():
            m = q_curvature(teacher, moved, teacher.act(moved), step).mean(1)
        out[f"{sigma:g}"] = {"mean": round(float(m.mean()), 3), "median": round(float(m.median()), 3)}
    return out


@cli_entry
def main(argv: list[str] | None = None) -> int:
    from obd.assets import resolve_asset
    from obd.data import load_dataset
    from obd.teachers import Teacher

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--teacher", required=True, help="teacher file or shipped name")
    p.add_argument("--step", type=float, default=0.3)
    p.add_argument("--floor", type=float, default=0.1)
    p.add_argument("--states", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", default="", help="comma-separated standard deviations in normalized units")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        sigmas = [float(x) for x in a.noise.split(",") if x.strip()]
    except ValueError:
        raise ObdError(f"--noise: expected comma-separated numbers, got {a.noise!r}") from None
    if any(not np.isfinite(x) or x <= 0 for x in sigmas):
        raise ObdError(f"--noise: expected positive standard deviations, got {a.noise!r}")
    ds = load_dataset(a.dataset)
    if not 0 < a.states <= len(ds):
        raise ObdError(f"--states: expected 1 to {len(ds)}, got {a.states}")
    teacher = Teacher.load(resolve_asset("teacher", a.teacher))
    if teacher.critic is None:
        raise ObdError(f"--teacher {a.teacher}: has no critic, so there is no value metric")
    rows = np.random.default_rng(a.seed).choice(len(ds), a.states, replace=False)
    raw = torch.as_tensor(ds.observations[rows])
    with torch.no_grad():
        actions = teacher.act(raw)
        q = teacher.q(raw, actions)
    curvature = q_curvature(teacher, raw, actions, a.step)
    extra = {"curvature_by_noise": curvature_off_data(teacher, raw, ds.normalizer, sigmas, a.step, a.seed)} \
        if sigmas else {}
    print(json.dumps({"dataset": a.dataset, "step": a.step, "floor": a.floor, "states": a.states,
                      **metric_stats(curvature, q, a.floor), **extra}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
