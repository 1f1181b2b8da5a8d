"""Time SDW density estimators on N x d normalized states and extrapolate to 1M states.

    python scripts/bench_density.py --n 200000 --estimators knn,gmm,kde,flow --threads 2
    python scripts/bench_density.py --states buffer.npz --n 200000     # real states, resampled with jitter

Without ``--states`` the states lie near a 4-d manifold in d dimensions (a random tanh map plus noise),
shaped like locomotion states. Fitting cost does not grow with N and scoring is linear in N, so timing
N/4 and N states separates the two and extrapolates to 1M: ``t(N) + (t(N) - t(N/4)) / (3N/4) * (1M - N)``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from obd.distill.density import ESTIMATORS, DensityConfig, log_density, weights_from_log_density
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
        # fitting cost does not depend on N (once N >= fit_samples), so two sizes separate it from scoring
        quarter = x[: len(x) // 4]
        t0 = time.perf_counter()
        log_density(quarter, cfg)
        t_quarter = time.perf_counter() - t0
        t0 = time.perf_counter()
        lp = log_density(x, cfg)
        total = time.perf_counter() - t0
        w = weights_from_log_density(lp, cfg.alpha, cfg.clip_quantile)
        per_state = max(total - t_quarter, 0.0) / (len(x) - len(quarter))
        est_1m = total + per_state * (1_000_000 - len(x))
        print(f"{est:5s} N={len(x)}: {total:7.1f} s (N/4: {t_quarter:6.1f} s; scoring {1e6 * per_state:6.1f} us/state)"
              f" -> 1M x {x.shape[1]} about {est_1m:5.0f} s | log p 1-99% "
              f"[{np.quantile(lp, 0.01):.1f}, {np.quantile(lp, 0.99):.1f}], w max {w.max():.2f}, "
              f"ESS {100 / np.mean(w.astype(np.float64) ** 2):.1f}%", flush=True)
    return 0


main = cli_entry(_main)

if __name__ == "__main__":
    raise SystemExit(main())
