"""Gradient updates per second of the teacher algorithms with hopper dims (11 / 3), batch 256, 2 x 256 nets.

    python scripts/bench_teacher.py [--algo td3bc|iql|all] [--device cpu|cuda|auto] [--steps N] [--threads T] [--json]

The data is 100k random transitions already on the device, sampled exactly as in training
(``OfflineData.sample``), so the figure is the update step's cost alone. ``updates_per_cpu_sec`` divides by
the process's CPU time instead of wall time: on a shared machine it shows what an idle core would do.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from obd.data import TransitionDataset  # noqa: E402
from obd.errors import ObdError, cli_entry  # noqa: E402
from obd.teachers import ALGOS  # noqa: E402
from obd.device import resolve_device  # noqa: E402
from obd.teachers.training import OfflineData  # noqa: E402


def bench(algo_name: str, device: torch.device, steps: int, warmup: int = 20, n: int = 100_000) -> dict:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(n, 11)).astype(np.float32)
    data = TransitionDataset(obs, np.tanh(rng.normal(size=(n, 3))), rng.normal(size=n), obs + 0.1,
                             np.zeros(n, bool), np.arange(0, n, 1000), task="hopper", source="bench")
    algo_cls, cfg_cls = ALGOS[algo_name]
    cfg = cfg_cls()
    torch.manual_seed(0)
    algo = algo_cls(cfg, 11, 3, device, steps + warmup)
    batches = OfflineData(data, device)
    gen = torch.Generator(device=device).manual_seed(0)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        algo.update(*batches.sample(cfg.batch_size, gen))
    sync()
    t, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        algo.update(*batches.sample(cfg.batch_size, gen))
    sync()
    dt, dc = time.perf_counter() - t, time.process_time() - c
    return {"algo": algo_name, "device": str(device), "threads": torch.get_num_threads(), "batch": cfg.batch_size,
            "hidden": list(cfg.hidden), "updates": steps, "seconds": dt, "updates_per_sec": steps / dt,
            "updates_per_cpu_sec": steps / dc,
            "hours_per_1M_updates": 1e6 / (steps / dt) / 3600}


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algo", choices=[*sorted(ALGOS), "all"], default="all")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.steps < 1:
        raise ObdError(f"--steps: expected a positive integer, got {args.steps}")
    device = resolve_device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ObdError("--device cuda: no CUDA device available")
    torch.set_num_threads(args.threads)
    results = [bench(a, device, args.steps) for a in (sorted(ALGOS) if args.algo == "all" else [args.algo])]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"{r['algo']:6s} {r['device']:5s} threads={r['threads']} batch={r['batch']}: "
                  f"{r['updates_per_sec']:8.1f} updates/s wall, {r['updates_per_cpu_sec']:8.1f} per CPU-second "
                  f"({r['hours_per_1M_updates']:.2f} h per 1M updates)")
    return 0


if __name__ == "__main__":
    sys.exit(cli_entry(_main)())
