"""Env steps per second of obd's lean SAC trainer vs stable-baselines3 SAC on Hopper-v5, side by side.

    python scripts/bench_sac.py [--steps 2000] [--threads 1]

obd: default ``SACConfig`` (one update every ``update_every`` = 2 env steps, batch 128), timed with
``SACTrainer.steps_per_second`` after its ``start_steps`` random warm-up. SB3: ``SAC("MlpPolicy", env)``
with default settings (one update per env step, batch 256), timed after ``learning_starts`` plus a short
warm-up. Both on the CPU with the same torch thread count, in one process, one after the other.
Needs the optional extra: ``pip install stable-baselines3`` (``obd[bench]``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from obd.collect.sac import SACConfig, SACTrainer  # noqa: E402
from obd.envs import make_env  # noqa: E402


def bench_obd(steps: int) -> tuple[float, float]:
    """(env steps/s, gradient updates/s) of the obd trainer after start_steps."""
    cfg = SACConfig(task="hopper")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = SACTrainer(cfg, out_dir=Path(tmp) / "run", policy_dir=tmp)
        trainer.steps_per_second(cfg.start_steps)  # uniform-action warm-up, no updates
        sps = trainer.steps_per_second(steps)
    return sps, sps / cfg.update_every


def bench_sb3(steps: int) -> tuple[float, float]:
    """(env steps/s, gradient updates/s) of SB3 SAC with default settings after learning_starts."""
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", make_env("hopper"), device="cpu", seed=0, verbose=0)
    model.learn(total_timesteps=model.learning_starts + 200)
    t = time.perf_counter()
    model.learn(total_timesteps=steps, reset_num_timesteps=False)
    sps = steps / (time.perf_counter() - t)
    return sps, sps * model.gradient_steps / model.train_freq.frequency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="timed env steps per trainer")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import stable_baselines3
    except ImportError:
        sys.exit("error: stable-baselines3 is not installed (pip install stable-baselines3)")
    ours, ours_up = bench_obd(args.steps)
    sb3, sb3_up = bench_sb3(args.steps)
    print(f"torch {torch.__version__}, {args.threads} thread(s), stable-baselines3 {stable_baselines3.__version__}, "
          f"{args.steps} timed steps each")
    print(f"obd SACTrainer : {ours:8.1f} env steps/s  ({ours_up:.1f} updates/s, batch 128, update every 2 steps)")
    print(f"SB3 SAC        : {sb3:8.1f} env steps/s  ({sb3_up:.1f} updates/s, batch 256, update every step)")
    print(f"ratio obd / SB3: {ours / sb3:.2f}x env steps/s, {ours_up / sb3_up:.2f}x updates/s")


if __name__ == "__main__":
    main()
