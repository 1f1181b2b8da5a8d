"""Benchmark SDW density estimators: fit + score time, peak memory, held-out log-likelihood, weights.

    python scripts/bench_density.py --n 200000 --threads 1                  # synthetic Hopper-like states
    python scripts/bench_density.py --dataset hopper-medium-v2 --threads 1   # a dataset's normalized states
    python scripts/bench_density.py --states buffer.npz --n 1000000          # an npz 'observations' array, resampled
    python scripts/bench_density.py --estimators flow --set flow_steps=5000 --json out.json

Without ``--states``/``--dataset`` the states (default 1M x 11, Hopper's observation size) lie near a 4-d
manifold (a random tanh map of a uniform latent plus noise), shaped like locomotion states; ``--states``
resamples the given observations with 1% jitter up to ``--n``. All states are normalized by their mean and
std, as distillation does. Each estimator runs in a fresh process (which builds the states itself) and
reports: wall time of ``fit_log_density`` (fit and score every state), the peak resident memory it adds
over the process with its states loaded (Linux ``VmHWM`` after resetting it through
``/proc/self/clear_refs``, with glibc told to return every freed block over 128 KiB to the system so
earlier frees do not hide new allocations; GPU peak allocation too when the flow runs on cuda), its held-out
log-likelihood (mean log p of states the model did not fit on; see ``obd.distill.density``), and the
weights SDW would use: alpha solved for ``--target-ess`` and the share of weight the rarest 5% hold.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from obd.config import load_config  # noqa: E402
from obd.distill.density import fit_log_density  # noqa: E402
from obd.distill.density_config import ESTIMATORS, DensityConfig  # noqa: E402
from obd.distill.sdw import solve_alpha, weight_stats, weights_from_log_density  # noqa: E402
from obd.errors import ObdError, cli_entry  # noqa: E402
from obd.io import write_json_atomic  # noqa: E402


def make_states(n: int, dim: int, seed: int, source: str | None) -> np.ndarray:
    """(n, dim) float64 states normalized by their mean and std: synthetic, or resampled from ``source``."""
    rng = np.random.default_rng(seed)
    if source:
        path = Path(source)
        if not path.is_file():
            raise ObdError(f"--states: {path} not found")
        with np.load(path) as f:
            if "observations" not in f:
                raise ObdError(f"--states: {path} has no 'observations' array")
            base = np.asarray(f["observations"], dtype=np.float64)
        base = base[rng.integers(0, len(base), n)]
        base = base + 0.01 * base.std(0) * rng.standard_normal(base.shape)
    else:
        latent = rng.uniform(-2, 2, (n, 4))
        proj = rng.standard_normal((4, dim))
        base = np.tanh(latent @ proj) + 0.05 * rng.standard_normal((n, dim))
    return (base - base.mean(0)) / (base.std(0) + 1e-3)


def dataset_states(spec: str) -> np.ndarray:
    from obd.data import load_dataset

    data = load_dataset(spec)
    return np.asarray(data.normalizer.normalize(data.observations), dtype=np.float64)


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise OSError(f"no {key} in /proc/self/status")


def load_states(args: argparse.Namespace) -> np.ndarray:
    return dataset_states(args.dataset) if args.dataset else make_states(args.n, args.dim, 0, args.states)


def measure_in_child(args: argparse.Namespace, cfg: DensityConfig) -> dict:
    """Runs in a spawned process: build the states, then :func:`measure`."""
    torch.set_num_threads(args.threads)
    return measure(load_states(args), cfg, args.target_ess)


def measure(x: np.ndarray, cfg: DensityConfig, target_ess: float) -> dict:
    """Time, peak memory and fit report of ``fit_log_density(x, cfg)``, plus the weights' key numbers."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident size
        base_kb = _status_kb("VmRSS")
    except OSError:
        base_kb = None
    cuda = cfg.estimator == "flow" and cfg.device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    log_p, info = fit_log_density(x, cfg, progress=False)
    seconds = time.perf_counter() - t0
    alpha = solve_alpha(log_p, target_ess, cfg.clip_quantile, cfg.floor)
    stats = weight_stats(weights_from_log_density(log_p, alpha, cfg.clip_quantile, cfg.floor), log_p)
    out = {"estimator": cfg.estimator, "n": len(x), "dim": x.shape[1], "seconds": round(seconds, 2),
           "peak_rss_mb": None if base_kb is None else round((_status_kb("VmHWM") - base_kb) / 1024, 1),
           "heldout_log_likelihood": round(info["heldout_log_likelihood"], 3), "heldout_states": info["heldout_states"],
           "log_p_q01": round(stats.log_density_q01, 2), "log_p_q99": round(stats.log_density_q99, 2),
           "alpha_for_target_ess": round(alpha, 4), "rare5_share": round(stats.rare5_share, 4),
           "max_weight": round(stats.max_weight, 3)}
    if cuda:
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    for key in ("flow_steps_run", "flow_best_step", "flow_early_stopped"):
        if key in info:
            out[key] = info[key]
    return out


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000, help="states (synthetic or resampled; default 1M)")
    p.add_argument("--dim", type=int, default=11, help="state size of synthetic states (default 11, Hopper's)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--states", default=None, help="npz with an 'observations' array, resampled to --n")
    src.add_argument("--dataset", default=None, help="a dataset id or file for obd.data.load_dataset (all states)")
    p.add_argument("--estimators", default=",".join(ESTIMATORS))
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--target-ess", type=float, default=0.5, help="ESS fraction alpha is solved for (default 0.5)")
    p.add_argument("--set", nargs="*", default=[], help="DensityConfig overrides key=value, for every estimator")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.threads < 1 or args.n < 2:
        raise ObdError(f"--threads and --n: expected >= 1 and >= 2, got {args.threads} and {args.n}")
    configs = [load_config(DensityConfig, None, [*args.set, f"estimator={est}"])
               for est in args.estimators.split(",")]
    # read by glibc when each spawned child starts
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(128 * 1024))
    ctx = multiprocessing.get_context("spawn")
    print(f"torch threads {args.threads}", flush=True)
    results = []
    for cfg in configs:
        est = cfg.estimator
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            r = pool.submit(measure_in_child, args, cfg).result()
        results.append(r)
        flow = (f", {r['flow_steps_run']} steps (best {r['flow_best_step']}, "
                f"{'early-stopped' if r['flow_early_stopped'] else 'step cap'})" if "flow_steps_run" in r else "")
        print(f"{est:5s} N={r['n']} d={r['dim']}: {r['seconds']:7.1f} s, peak +{r['peak_rss_mb']} MB RSS"
              f"{', cuda ' + str(r['peak_cuda_mb']) + ' MB' if 'peak_cuda_mb' in r else ''} | held-out log-lik "
              f"{r['heldout_log_likelihood']:.2f} nats ({r['heldout_states']} states){flow} | log p 1-99% "
              f"[{r['log_p_q01']}, {r['log_p_q99']}] | ESS {args.target_ess}: alpha {r['alpha_for_target_ess']}, "
              f"rarest 5% hold {100 * r['rare5_share']:.1f}%", flush=True)
    if args.json:
        write_json_atomic(args.json, results)
    return 0


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
