"""The SAC behavior-policy trainer's hyperparameters, importable without torch (the CLI builds its flags
from these fields)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SACConfig:
    """SAC hyperparameters (Haarnoja et al. 2018 defaults, as used for D4RL's behavior policies)."""

    task: str = "hopper"
    total_steps: int = 1_000_000
    start_steps: int = 10_000      # uniform random actions before the first update
    batch_size: int = 128
    hidden: int = 256
    update_every: int = 2          # env steps per gradient update; D4RL's buffers (0.2-0.4M to medium) suggest < 1
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    eval_every: int = 10_000
    eval_episodes: int = 5
    confirm_episodes: int = 10     # extra episodes that confirm a medium/expert candidate
    checkpoint_every: int = 25_000
    medium_band: tuple[float, float] = (25.0, 45.0)
    seed: int = 0
