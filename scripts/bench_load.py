"""Time ``load_d4rl`` against plain h5py reads of the same file's arrays (goal: at most 2x).

    python scripts/bench_load.py [--transitions 1000000] [--repeats 3]

Writes a hopper-shaped D4RL-layout file (float32, 1000-step episodes with timeouts, some terminals) to a
temp folder, then reports the best of ``--repeats`` interleaved timings of each reader and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from obd.data import load_d4rl, write_d4rl  # noqa: E402


def make_file(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n + 1, 11)).astype(np.float32)
    terminals = rng.random(n) < 1e-3
    timeouts = np.zeros(n, bool)
    timeouts[999::1000] = True
    timeouts &= ~terminals
    write_d4rl(path, obs[:-1], rng.uniform(-1, 1, (n, 3)), rng.normal(size=n), terminals, timeouts, obs[1:],
               metadata={"task": "hopper", "level": "bench"})


def read_plain(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ("observations", "actions", "rewards", "terminals", "timeouts",
                                      "next_observations")}


def best_of(fns, repeats: int) -> list[float]:
    """Best wall time of each function, run interleaved so load changes on a shared machine hit both alike."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return [min(ts) for ts in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hopper_bench-v5.hdf5"
        make_file(path, args.transitions)
        ds = load_d4rl(path)
        plain, ours = best_of([lambda: read_plain(path), lambda: load_d4rl(path)], args.repeats)
    print(f"file: {args.transitions} rows -> {len(ds)} transitions, {ds.num_episodes} episodes")
    print(f"plain h5py read of all arrays: {plain:.3f} s")
    print(f"load_d4rl (qlearning, checks):  {ours:.3f} s")
    print(f"ratio load_d4rl / plain: {ours / plain:.2f}x (goal <= 2x)")


if __name__ == "__main__":
    main()
