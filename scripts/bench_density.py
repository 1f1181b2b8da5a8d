"""Time SDW density estimators on N x d normalized states and extrapolate to 1M states.

    python scripts/bench_density.py --n 200000 --estimators knn,gmm,kde,flow --threads 2
    python scripts/bench_density.py --states buffer.npz --n 200000     # real states, resampled with jitter

Without ``--states`` the states lie near a 4-d manifold in d dimensions (a random tanh map plus noise),
shaped like locomotion states. Fitting cost does not grow with N; scoring is linear in N, so the
1M estimate is ``fit + score * 1e6 / N``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from obd.distill.density import ESTIMATORS, DensityConfig, _fit_indices, log_density, weights_from_log_density
from obd.config import load_config
from obd.errors import cli_entry


def make_states(n: int, dim: int, seed: int, source: str | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if source:
        base = np.load(source)["observations"].astype(np.float64)
        base = base[rng.integers(0, len(base), n)]
        base = base + 0.01 * base.std(0) * rng.standard_normal(base.shape)
    else:
        latent = rng.uniform(-2, 2, (n, 4))
        proj = rng.standard_normal((4, dim))
        base = np.tanh(latent @ proj) + 0.05 * rng.standard_normal((n, dim))
    return (base - base.mean(0)) / (base.std(0) + 1e-3)


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=17)
    p.add_argument("--states", default=None, help="npz with an 'observations' array")
    p.add_argument("--estimators", default=",".join(ESTIMATORS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", nargs="*", default=[], help="DensityConfig overrides key=value")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    x = make_states(args.n, args.dim, 0, args.states)
    print(f"states {x.shape}, torch threads {args.threads}")
    for est in args.estimators.split(","):
        cfg = load_config(DensityConfig, None, [*args.set, f"estimator={est}"])
        # fit-only time: the same estimator on just its fitted subsample
        fit_x = x[_fit_indices(len(x), cfg)]
        t0 = time.perf_counter()
        log_density(fit_x, dataclasses.replace(cfg, chunk_size=len(fit_x)))
        t_small = time.perf_counter() - t0
        t0 = time.perf_counter()
        lp = log_density(x, cfg)
        total = time.perf_counter() - t0
        w = weights_from_log_density(lp, cfg.alpha, cfg.clip_quantile)
        per_state = max(total - t_small, 0.0) / max(len(x) - len(fit_x), 1)
        est_1m = total + per_state * (1_000_000 - len(x))
        print(f"{est:5s} N={len(x)}: {total:7.1f} s (fit+score of the {len(fit_x)} fitted states alone "
              f"{t_small:5.1f} s) -> 1M x {x.shape[1]} about {est_1m:6.0f} s | log p 1-99% "
              f"[{np.quantile(lp, 0.01):.1f}, {np.quantile(lp, 0.99):.1f}], w max {w.max():.2f}, "
              f"ESS {100 / np.mean(w.astype(np.float64) ** 2):.1f}%", flush=True)
    return 0


main = cli_entry(_main)

if __name__ == "__main__":
    raise SystemExit(main())
